"""Output stage: themes, groups and documents → the ``themes.json`` object and the output files (``themes.json``,
``themes.csv``, ``document_themes.csv``, ``documents.csv``, ``theme_groups.csv``).

The column sets here are the product's output schema (see README). Text cells that a spreadsheet would evaluate as a
formula are neutralised by the same rule as the API's CSV reports (:mod:`worker.pipeline.csv_cells`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from worker.pipeline.csv_cells import safe_cell
from worker.pipeline.themes import Theme

DIGITS = 4
THEMES_COLUMNS = [
    "theme_id", "label", "keywords", "size", "share", "sentiment_mean", "negative", "neutral", "positive",
    "rating_mean", "rating_count", "cohesion",
]  # fmt: skip
DOCUMENT_THEMES_COLUMNS = ["doc_id", "theme_id", "activation"]
DOCUMENTS_COLUMNS = ["doc_id", "text", "sentiment_score", "sentiment_label", "rating", "date"]


def _round(value: float) -> float:
    return round(float(value), DIGITS)


def theme_record(theme: Theme, documents: pd.DataFrame, n_documents: int) -> dict[str, Any]:
    """One theme in the ``themes.json`` schema."""
    activation_of = dict(zip(theme.members.tolist(), theme.activations.tolist()))
    return {
        "id": int(theme.id),
        "label": theme.label,
        "keywords": list(theme.keywords),
        "size": theme.size,
        "share": _round(theme.size / max(1, n_documents)),
        "sentiment": {k: _round(v) for k, v in theme.sentiment.items()},
        "rating": None if theme.rating is None else {"mean": _round(theme.rating["mean"]), "count": theme.rating["count"]},
        "cohesion": None if theme.cohesion is None else _round(theme.cohesion),
        "examples": [
            {"doc_id": str(documents["doc_id"].iat[d]), "text": documents["text"].iat[d], "activation": _round(activation_of[d])}
            for d in theme.examples
        ],
        "features": [int(f) for f in theme.features],
    }


def group_record(group: Theme, documents: pd.DataFrame, n_documents: int) -> dict[str, Any]:
    """One theme group in the ``themes.json`` schema: a theme record plus its ``level``, ``kind`` and its ``themes``'
    ids."""
    record = theme_record(group, documents, n_documents)
    return {**record, "level": int(group.level), "kind": group.kind, "themes": [int(t) for t in group.themes]}


def themes_document(
    themes: Iterable[Theme], documents: pd.DataFrame, metadata: dict[str, Any], groups: Iterable[Theme] = ()
) -> dict[str, Any]:
    """The whole ``themes.json`` object: metadata, themes sorted by size, theme groups sorted by size."""
    records = [theme_record(t, documents, len(documents)) for t in themes]
    records.sort(key=lambda r: (-r["size"], r["id"]))
    group_records = [group_record(g, documents, len(documents)) for g in groups]
    group_records.sort(key=lambda r: (-r["size"], r["id"]))
    meta = {"n_documents": len(documents), "n_themes": len(records), "n_groups": len(group_records), **metadata}
    return {"metadata": meta, "themes": records, "groups": group_records}


def themes_table(records: list[dict[str, Any]]) -> pd.DataFrame:
    """``themes.csv``: one row per theme, keywords joined by ``; ``."""
    rows = [
        {
            "theme_id": r["id"],
            "label": r["label"],
            "keywords": "; ".join(r["keywords"]),
            "size": r["size"],
            "share": r["share"],
            "sentiment_mean": r["sentiment"]["mean"],
            "negative": r["sentiment"]["negative"],
            "neutral": r["sentiment"]["neutral"],
            "positive": r["sentiment"]["positive"],
            "rating_mean": None if r["rating"] is None else r["rating"]["mean"],
            "rating_count": 0 if r["rating"] is None else r["rating"]["count"],
            "cohesion": r.get("cohesion"),
        }
        for r in records
    ]
    return pd.DataFrame(rows, columns=THEMES_COLUMNS)


def document_themes_table(themes: Iterable[Theme], documents: pd.DataFrame) -> pd.DataFrame:
    """``document_themes.csv``: long format, one row per (document, theme) membership."""
    parts = [
        pd.DataFrame(
            {
                "doc_id": documents["doc_id"].to_numpy()[t.members],
                "theme_id": np.full(t.size, t.id, dtype=np.int64),
                "activation": np.round(t.activations.astype(np.float64), DIGITS),
            }
        )
        for t in themes
    ]
    if not parts:
        return pd.DataFrame(columns=DOCUMENT_THEMES_COLUMNS)
    table = pd.concat(parts, ignore_index=True)
    return table.sort_values(["theme_id", "activation", "doc_id"], ascending=[True, False, True], kind="stable")


def documents_table(documents: pd.DataFrame) -> pd.DataFrame:
    """``documents.csv``: one row per document with its sentiment and rating."""
    table = documents.reindex(columns=DOCUMENTS_COLUMNS).copy()
    table["sentiment_score"] = table["sentiment_score"].astype(float).round(DIGITS)
    if "date" in table and pd.api.types.is_datetime64_any_dtype(table["date"]):
        table["date"] = table["date"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    return table


def groups_table(records: list[dict[str, Any]]) -> pd.DataFrame:
    """``theme_groups.csv``: the columns of ``themes.csv`` (``group_id`` for ``theme_id``), its level, its themes' ids
    joined by ``; `` and its kind (as in ``reporting.theme_groups``)."""
    table = themes_table(records).rename(columns={"theme_id": "group_id"})
    table.insert(1, "level", [r["level"] for r in records])
    table["theme_ids"] = ["; ".join(str(t) for t in r["themes"]) for r in records]
    table["kind"] = [r.get("kind", "union") for r in records]
    return table


def write_output_files(out_dir: str | Path, document: dict[str, Any], themes: list[Theme], documents: pd.DataFrame) -> list[Path]:
    """Write the five output files; return their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "themes.json", out / "themes.csv", out / "document_themes.csv", out / "documents.csv",
             out / "theme_groups.csv"]  # fmt: skip
    paths[0].write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tables = (themes_table(document["themes"]), document_themes_table(themes, documents), documents_table(documents),
              groups_table(document.get("groups", [])))  # fmt: skip
    for path, table in zip(paths[1:], tables):
        spreadsheet_safe(table).to_csv(path, index=False)
    return paths


def spreadsheet_safe(table: pd.DataFrame) -> pd.DataFrame:
    """The table with its text cells neutralised for spreadsheets (``worker.pipeline.csv_cells.safe_cell``)."""
    text = [c for c in table.columns if not pd.api.types.is_numeric_dtype(table[c])]
    return table.assign(**{c: table[c].map(safe_cell) for c in text}) if text else table
