"""Output stage: the theme tree, documents and spans → the ``themes.json`` object and the output files
(``themes.json``, ``themes.csv``, ``theme_tree.csv``, ``document_themes.csv``, ``document_nodes.csv``,
``span_themes.csv``, ``documents.csv``).

The column sets here are the product's output schema (see README), for the CLI's files and the BI report tables
(``service.storage.report_tables``) alike. Text cells that a spreadsheet would evaluate as a formula are neutralised
by the same rule as the API's CSV reports (:mod:`worker.pipeline.csv_cells`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from worker.pipeline.csv_cells import safe_cell

if TYPE_CHECKING:
    from worker.pipeline.spans import Spans
    from worker.pipeline.themes import Theme
    from worker.pipeline.tree import Tree

DIGITS = 4
#: themes.json's version: 2 has the tree (``categories``, ``themes``, ``sub_themes`` with ``level``, ``parent``,
#: ``children``, ``name``); 1 had ``themes`` and ``groups``.
SCHEMA_VERSION = 2

# ---------------------------------------------------------------- the output schema

# column → type: int, float, str, bool, date or datetime (the report tables' CSV, Parquet and SQL follow it)
COLUMN_TYPES: dict[str, str] = {
    "theme_id": "int", "level": "int", "label": "str", "keywords": "str", "size": "int",
    "share": "float", "sentiment_mean": "float", "negative": "float", "neutral": "float", "positive": "float",
    "rating_mean": "float", "rating_count": "int", "cohesion": "float",
    "emerging": "bool", "impact_coef": "float", "impact_low": "float", "impact_high": "float",
    "merged_theme_ids": "str", "original_label": "str",
    "doc_id": "str", "activation": "float",
    "text": "str", "sentiment_score": "float", "sentiment_label": "str", "rating": "float", "date": "datetime",
    "period": "str", "period_start": "date", "documents": "int", "period_documents": "int",
    "coef": "float", "low": "float", "high": "float", "rated_documents": "int",
    "span_count": "int", "span_index": "int", "span_start": "int", "span_end": "int",
    "node_id": "int", "parent_id": "int", "name": "str", "original_name": "str",
    "attribute": "str", "attribute_type": "str", "value": "str", "number_value": "float",
    "date_value": "datetime", "alert_id": "int", "created_at": "datetime", "job_id": "str", "kind": "str",
    "window": "str", "title": "str", "count": "int", "baseline_share": "float", "baseline_sentiment": "float",
    "p_value": "float",
}  # fmt: skip
# what the rows of every level share: label … rating_count
SUMMARY_COLUMNS = ["label", "keywords", "size", "share", "sentiment_mean", "negative", "neutral", "positive",
                   "rating_mean", "rating_count"]  # fmt: skip
THEMES_COLUMNS = ["theme_id", *SUMMARY_COLUMNS, "cohesion", "span_count", "name", "parent_id"]
# every node of the tree: categories (level 1), themes (2), sub-themes (3)
TREE_COLUMNS = ["node_id", "level", "parent_id", "name", "keywords", "size", "share", "sentiment_mean", "negative",
                "neutral", "positive", "rating_mean", "rating_count", "cohesion", "span_count"]  # fmt: skip
DOCUMENT_THEMES_COLUMNS = ["doc_id", "theme_id", "activation"]
DOCUMENT_NODES_COLUMNS = ["doc_id", "node_id", "level", "activation"]
# one row per (span, theme): the span's index in its comment and its character offsets [span_start, span_end)
SPAN_THEMES_COLUMNS = ["doc_id", "span_index", "span_start", "span_end", "theme_id", "activation"]
DOCUMENTS_COLUMNS = ["doc_id", "text", "sentiment_score", "sentiment_label", "rating", "date"]
# a comment's metadata, one row per (comment, column): the cell as text, and as a number or a date where it reads as
# one; ``attribute_type`` is the column's type in the project (category, number, date or text)
DOCUMENT_ATTRIBUTES_COLUMNS = ["doc_id", "attribute", "attribute_type", "value", "number_value", "date_value"]
# an alert: what fired (kind, window), for which node, its figures in the window and before it
ALERTS_COLUMNS = ["alert_id", "created_at", "job_id", "kind", "window", "node_id", "level", "name", "title", "count",
                  "share", "baseline_share", "sentiment_mean", "baseline_sentiment", "p_value"]  # fmt: skip

# Report tables: a CLI file's columns (none for trends and impact), then the report's own ones; columns added to the
# files after version 1's tables were made (cohesion by migration 0004, span_count in version 2, name and parent_id
# in version 3) go last, as ALTER TABLE appends them.
APPENDED_COLUMNS = ["cohesion", "span_count", "name", "parent_id"]


def _report(file_columns: list[str], own: Sequence[str] = ()) -> list[tuple[str, str]]:
    """A report table's typed columns: the file's (those added later held back), its own, then the later ones."""
    appended = [c for c in APPENDED_COLUMNS if c in file_columns]
    names = [*(c for c in file_columns if c not in appended), *own, *appended]
    return [(c, COLUMN_TYPES[c]) for c in names]


# report table → [(column, type)], in the tables' column order
REPORT_COLUMNS: dict[str, list[tuple[str, str]]] = {
    "themes": _report(THEMES_COLUMNS, ["emerging", "impact_coef", "impact_low", "impact_high", "merged_theme_ids",
                                       "original_label"]),
    "document_themes": _report(DOCUMENT_THEMES_COLUMNS),
    "span_themes": _report(SPAN_THEMES_COLUMNS),
    "documents": _report(DOCUMENTS_COLUMNS),
    "theme_trends": _report([], ["theme_id", "label", "period", "period_start", "documents", "period_documents",
                                 "share", "emerging"]),
    "theme_impact": _report([], ["theme_id", "label", "coef", "low", "high", "rated_documents"]),
    "theme_tree": [(c, COLUMN_TYPES[c]) for c in [*TREE_COLUMNS, "emerging", "impact_coef", "impact_low",
                                                    "impact_high", "merged_theme_ids", "original_name"]],
    "document_nodes": [(c, COLUMN_TYPES[c]) for c in DOCUMENT_NODES_COLUMNS],
    "document_attributes": [(c, COLUMN_TYPES[c]) for c in DOCUMENT_ATTRIBUTES_COLUMNS],
    "alerts": [(c, COLUMN_TYPES[c]) for c in ALERTS_COLUMNS],
}  # fmt: skip


def _round(value: float) -> float:
    return round(float(value), DIGITS)


def example_record(row: int, activation: float, documents: pd.DataFrame, spans: Spans | None) -> dict[str, Any]:
    """One example: the comment (``doc_id``, ``text``), the activation, and the span that carries the theme
    (``index`` in the comment, character offsets ``start``/``end``, its ``text``). ``row`` is a unit row (a
    document row when ``spans`` is ``None``)."""
    doc = int(row if spans is None else spans.doc[row])
    text = str(documents["text"].iat[doc])
    start, end, index = (0, len(text), 0) if spans is None else (int(spans.start[row]), int(spans.end[row]),
                                                                 int(spans.index[row]))  # fmt: skip
    return {"doc_id": str(documents["doc_id"].iat[doc]), "text": text, "activation": _round(activation),
            "span": {"index": index, "start": start, "end": end, "text": text[start:end]}}  # fmt: skip


def theme_record(theme: Theme, documents: pd.DataFrame, n_documents: int, spans: Spans | None = None) -> dict[str, Any]:
    """One node of the tree in the ``themes.json`` schema (``size`` and ``share`` count comments, ``span_count``
    spans; ``label`` equals ``name``, for readers of version 1)."""
    activation_of = dict(zip(theme.unit_rows.tolist(), theme.unit_activations.tolist()))
    return {
        "id": int(theme.id),
        "level": int(theme.level),
        "parent": None if theme.parent is None else int(theme.parent),
        "children": [int(c) for c in theme.children],
        "name": theme.name or theme.label,
        "label": theme.name or theme.label,
        "keywords": list(theme.keywords),
        "size": theme.size,
        "share": _round(theme.size / max(1, n_documents)),
        "span_count": theme.span_count,
        "sentiment": {k: _round(v) for k, v in theme.sentiment.items()},
        "rating": None if theme.rating is None else {"mean": _round(theme.rating["mean"]), "count": theme.rating["count"]},
        "cohesion": None if theme.cohesion is None else _round(theme.cohesion),
        "examples": [example_record(u, activation_of[u], documents, spans) for u in theme.examples],
        "features": [int(f) for f in theme.features],
    }


def themes_document(tree: Tree, documents: pd.DataFrame, metadata: dict[str, Any],
                    spans: Spans | None = None) -> dict[str, Any]:  # fmt: skip
    """The whole ``themes.json`` object: metadata, then the tree's ``categories``, ``themes`` and ``sub_themes``,
    each level sorted by size. ``spans``: the units the examples are rows of (``None``: the documents)."""
    levels = {}
    for key, nodes in (("categories", tree.categories), ("themes", tree.themes), ("sub_themes", tree.sub_themes)):
        records = [theme_record(n, documents, len(documents), spans) for n in nodes]
        levels[key] = sorted(records, key=lambda r: (-r["size"], r["id"]))
    meta = {"schema_version": SCHEMA_VERSION, "n_documents": len(documents), "n_categories": len(tree.categories),
            "n_themes": len(tree.themes), "n_sub_themes": len(tree.sub_themes), **metadata}  # fmt: skip
    return {"metadata": meta, **levels}


def summary_cells(record: dict[str, Any]) -> tuple:
    """``SUMMARY_COLUMNS`` (label … rating_count) of a node record, keywords joined by ``; ``."""
    sentiment, rating = record["sentiment"], record["rating"]
    return (record["label"], "; ".join(record["keywords"]), record["size"], record["share"], sentiment["mean"],
            sentiment["negative"], sentiment["neutral"], sentiment["positive"],
            None if rating is None else rating["mean"], 0 if rating is None else rating["count"])  # fmt: skip


def themes_table(records: list[dict[str, Any]]) -> pd.DataFrame:
    """``themes.csv``: one row per theme."""
    rows = [(r["id"], *summary_cells(r), r.get("cohesion"), r.get("span_count", r["size"]), r.get("name", r["label"]),
             r.get("parent")) for r in records]  # fmt: skip
    return pd.DataFrame(rows, columns=THEMES_COLUMNS).astype({"parent_id": "Int64"})


def tree_table(document: dict[str, Any]) -> pd.DataFrame:
    """``theme_tree.csv``: one row per node, categories first, then themes, then sub-themes (each by size)."""
    rows = []
    for r in (*document["categories"], *document["themes"], *document["sub_themes"]):
        _, keywords, *figures = summary_cells(r)
        rows.append((r["id"], r["level"], r["parent"], r["name"], keywords, *figures, r.get("cohesion"),
                     r["span_count"]))  # fmt: skip
    return pd.DataFrame(rows, columns=TREE_COLUMNS).astype({"parent_id": "Int64"})


def document_themes_table(themes: Iterable[Theme], documents: pd.DataFrame) -> pd.DataFrame:
    """``document_themes.csv``: long format, one row per (document, theme) membership."""
    doc_ids = documents["doc_id"].to_numpy()
    return _long_table(themes, DOCUMENT_THEMES_COLUMNS, lambda t: (t.members, t.activations),
                       lambda t, rows: {"doc_id": doc_ids[rows]})  # fmt: skip


def document_nodes_table(nodes: Iterable[Theme], documents: pd.DataFrame) -> pd.DataFrame:
    """``document_nodes.csv``: long format, one row per (document, node) membership of every level."""
    table = document_themes_table(nodes, documents).rename(columns={"theme_id": "node_id"})
    level_of = {n.id: n.level for n in nodes}
    table.insert(2, "level", table["node_id"].map(level_of).astype("int64"))
    return table[DOCUMENT_NODES_COLUMNS]


def span_themes_table(themes: Iterable[Theme], documents: pd.DataFrame, spans: Spans) -> pd.DataFrame:
    """``span_themes.csv``: long format, one row per (span, theme) membership, with the span's offsets."""
    doc_ids = documents["doc_id"].to_numpy()
    return _long_table(themes, SPAN_THEMES_COLUMNS, lambda t: (t.unit_rows, t.unit_activations),
                       lambda t, rows: {"doc_id": doc_ids[spans.doc[rows]], "span_index": spans.index[rows],
                                        "span_start": spans.start[rows], "span_end": spans.end[rows]})  # fmt: skip


def _long_table(themes: Iterable[Theme], columns: list[str],
                members: Callable[[Theme], tuple[np.ndarray, np.ndarray]],
                described: Callable[[Theme, np.ndarray], dict[str, np.ndarray]]) -> pd.DataFrame:  # fmt: skip
    """One row per (member, theme): ``described`` columns of the member rows, ``theme_id`` and ``activation``;
    sorted by theme, activation (highest first), then the remaining columns in order."""
    parts = []
    for t in themes:
        rows, activations = members(t)
        parts.append(pd.DataFrame({**described(t, rows), "theme_id": np.full(len(rows), t.id, dtype=np.int64),
                                   "activation": np.round(activations.astype(np.float64), DIGITS)}))  # fmt: skip
    if not parts:
        return pd.DataFrame(columns=columns)
    rest = [c for c in columns if c not in ("theme_id", "activation")]
    table = pd.concat(parts, ignore_index=True)[columns]
    return table.sort_values(["theme_id", "activation", *rest], ascending=[True, False, *[True] * len(rest)],
                             kind="stable")  # fmt: skip


def documents_table(documents: pd.DataFrame, metadata: pd.DataFrame | None = None) -> pd.DataFrame:
    """``documents.csv``: one row per document with its sentiment and rating, then its metadata columns (a column
    named as one before it gets " (metadata)")."""
    table = documents.reindex(columns=DOCUMENTS_COLUMNS).copy()
    table["sentiment_score"] = table["sentiment_score"].astype(float).round(DIGITS)
    if "date" in table and pd.api.types.is_datetime64_any_dtype(table["date"]):
        table["date"] = table["date"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    if metadata is not None and metadata.shape[1]:
        extra = metadata.reset_index(drop=True).set_axis(table.index)
        extra.columns = [f"{c} (metadata)" if c in DOCUMENTS_COLUMNS else c for c in extra.columns]
        table = pd.concat([table, extra], axis=1)
    return table


def write_output_files(out_dir: str | Path, document: dict[str, Any], nodes: list[Theme], documents: pd.DataFrame,
                       spans: Spans | None = None, metadata: pd.DataFrame | None = None) -> list[Path]:  # fmt: skip
    """Write the seven output files; return their paths (``nodes``: every node of the tree; ``spans``: the units of
    the themes; ``None``: the comments; ``metadata``: the documents' metadata cells, for ``documents.csv``)."""
    from worker.pipeline.spans import Spans

    spans = spans if spans is not None else Spans.whole(documents["text"].tolist())
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "themes.json", out / "themes.csv", out / "theme_tree.csv", out / "document_themes.csv",
             out / "document_nodes.csv", out / "span_themes.csv", out / "documents.csv"]  # fmt: skip
    paths[0].write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    themes = [n for n in nodes if n.level == 2]
    tables = (themes_table(document["themes"]), tree_table(document), document_themes_table(themes, documents),
              document_nodes_table(nodes, documents), span_themes_table(themes, documents, spans),
              documents_table(documents, metadata))  # fmt: skip
    for path, table in zip(paths[1:], tables):
        spreadsheet_safe(table).to_csv(path, index=False)
    return paths


def spreadsheet_safe(table: pd.DataFrame) -> pd.DataFrame:
    """The table with its text cells neutralised for spreadsheets (``worker.pipeline.csv_cells.safe_cell``)."""
    text = [c for c in table.columns if not pd.api.types.is_numeric_dtype(table[c])]
    return table.assign(**{c: table[c].map(safe_cell) for c in text}) if text else table
