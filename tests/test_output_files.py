"""Output stage: the themes.json schema and the CSV files the CLI writes."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from worker.pipeline.output import (
    DOCUMENT_THEMES_COLUMNS,
    DOCUMENTS_COLUMNS,
    SPAN_THEMES_COLUMNS,
    THEMES_COLUMNS,
    themes_document,
    write_output_files,
)
from worker.pipeline.themes import Theme


def _fixture():
    docs = pd.DataFrame({
        "doc_id": ["a", "b", "c"], "text": ["late parcel", "lost parcel", "=SUM(A1)"],
        "sentiment_score": [-0.51234, -0.2, 0.3], "sentiment_label": ["negative", "negative", "positive"],
        "rating": [1.0, np.nan, 5.0], "date": pd.to_datetime(["2026-01-01", None, "2026-02-03"], utc=True),
    })  # fmt: skip
    theme = Theme(id=7, features=[7, 9], members=np.array([0, 1]), activations=np.array([0.8, 0.612345], dtype=np.float32),
                  label="parcel, late", keywords=["parcel", "late", "lost"],
                  sentiment={"mean": -0.356, "negative": 1.0, "neutral": 0.0, "positive": 0.0},
                  rating={"mean": 1.0, "count": 1}, examples=[0, 1], cohesion=0.712345)  # fmt: skip
    return docs, [theme]


def test_themes_document_schema():
    docs, themes = _fixture()
    sae = {"n_latents": 64, "k": 4, "fvu": 0.3, "l0": 4.0, "dead_fraction": 0.0}
    doc = themes_document(themes, docs, {"model": "m", "sae": sae, "seed": 0, "created_at": "2026-01-01T00:00:00Z"})
    assert set(doc["metadata"]) >= {"n_documents", "n_themes", "model", "sae", "seed", "created_at"}
    assert doc["metadata"]["n_documents"] == 3 and doc["metadata"]["n_themes"] == 1
    theme = doc["themes"][0]
    assert set(theme) >= {"id", "label", "keywords", "size", "share", "sentiment", "rating", "examples"}
    assert theme["share"] == 0.6667 and theme["size"] == 2 and theme["cohesion"] == 0.7123
    assert theme["examples"][1] == {"doc_id": "b", "text": "lost parcel", "activation": 0.6123,
                                    "span": {"index": 0, "start": 0, "end": 11, "text": "lost parcel"}}
    assert theme["span_count"] == 2  # without spans, each comment is its one span


def test_examples_and_span_table_point_into_their_comments(tmp_path):
    from worker.pipeline.spans import SpanOptions, split_spans

    docs, _ = _fixture()
    docs["text"] = ["The parcel came late. The dress is lovely though.", "Lost parcel, nobody answers the phone.",
                    "Lovely fabric and colour. Late parcel again, third time now."]  # fmt: skip
    spans = split_spans(docs["text"].tolist(), SpanOptions(whole_words=0))
    assert spans.doc.tolist() == [0, 0, 1, 2, 2] and spans.index.tolist() == [0, 1, 0, 0, 1]
    theme = Theme(id=4, features=[4], members=np.array([0, 1, 2]), activations=np.array([0.9, 0.7, 0.8]),
                  spans=np.array([0, 2, 4]), span_activations=np.array([0.9, 0.7, 0.8]), label="parcel",
                  keywords=["parcel"], sentiment={"mean": -0.5, "negative": 1.0, "neutral": 0.0, "positive": 0.0},
                  examples=[0, 4])  # fmt: skip
    doc = themes_document([theme], docs, {}, spans=spans)
    first, second = doc["themes"][0]["examples"]
    assert first["span"] == {"index": 0, "start": 0, "end": 21, "text": "The parcel came late."}
    assert second["doc_id"] == "c" and second["span"]["text"] == "Late parcel again, third time now."
    assert second["text"][second["span"]["start"] : second["span"]["end"]] == second["span"]["text"]
    assert doc["themes"][0]["span_count"] == 3 and doc["themes"][0]["size"] == 3
    paths = write_output_files(tmp_path, doc, [theme], docs, spans)
    table = pd.read_csv(paths[3], dtype={"doc_id": str})
    assert list(table.columns) == SPAN_THEMES_COLUMNS
    assert table.values.tolist() == [["a", 0, 0, 21, 4, 0.9], ["c", 1, 26, 60, 4, 0.8], ["b", 0, 0, 38, 4, 0.7]]


def test_write_output_files(tmp_path):
    docs, themes = _fixture()
    doc = themes_document(themes, docs, {"model": "m", "sae": {}, "seed": 0, "created_at": "x"})
    paths = write_output_files(tmp_path, doc, themes, docs)
    names = ["themes.json", "themes.csv", "document_themes.csv", "span_themes.csv", "documents.csv", "theme_groups.csv"]
    assert [p.name for p in paths] == names
    assert json.loads(paths[0].read_text()) == doc
    themes_csv = pd.read_csv(paths[1])
    assert list(themes_csv.columns) == THEMES_COLUMNS and themes_csv["keywords"][0] == "parcel; late; lost"
    assert themes_csv["cohesion"][0] == 0.7123
    long = pd.read_csv(paths[2], dtype={"doc_id": str})
    assert list(long.columns) == DOCUMENT_THEMES_COLUMNS
    assert long.values.tolist() == [["a", 7, 0.8], ["b", 7, 0.6123]]
    assert pd.read_csv(paths[3], dtype={"doc_id": str}).values.tolist() == [["a", 0, 0, 11, 7, 0.8],
                                                                             ["b", 0, 0, 11, 7, 0.6123]]
    documents = pd.read_csv(paths[4], dtype={"doc_id": str}, keep_default_na=False)
    assert list(documents.columns) == DOCUMENTS_COLUMNS
    assert documents["date"].tolist() == ["2026-01-01T00:00:00Z", "", "2026-02-03T00:00:00Z"]
    assert documents["sentiment_score"][0] == -0.5123


def test_groups_in_the_document_and_their_csv(tmp_path):
    docs, themes = _fixture()
    group = Theme(id=1, features=[7, 9, 11], members=np.array([0, 1, 2]), activations=np.array([0.8, 0.6, 0.5]),
                  label="parcel, sum", keywords=["parcel", "sum"], examples=[2, 0],
                  sentiment={"mean": -0.1, "negative": 0.6667, "neutral": 0.0, "positive": 0.3333},
                  rating={"mean": 3.0, "count": 2}, themes=[7, 11], level=2, kind="union")  # fmt: skip
    doc = themes_document(themes, docs, {"model": "m"}, groups=[group])
    assert doc["metadata"]["n_groups"] == 1
    [record] = doc["groups"]
    assert record["id"] == 1 and record["level"] == 2 and record["themes"] == [7, 11] and record["size"] == 3
    assert record["kind"] == "union"
    assert record["share"] == 1.0 and record["examples"][0]["text"] == "=SUM(A1)" and record["rating"]["mean"] == 3.0
    paths = write_output_files(tmp_path, doc, themes, docs)
    table = pd.read_csv(paths[5])
    assert list(table.columns) == ["group_id", "level", *THEMES_COLUMNS[1:], "theme_ids", "kind"]
    assert table.loc[0, ["group_id", "level", "size", "theme_ids", "kind"]].tolist() == [1, 2, 3, "7; 11", "union"]
    assert record["cohesion"] is None and pd.isna(table.loc[0, "cohesion"])  # not rated: null, an empty cell
    assert themes_document(themes, docs, {})["groups"] == []  # no groups: an empty list, not a missing key


FORMULAS = ["=cmd|' /C calc'!A0", "@SUM(1+1)*cmd|' /C calc'!A0", "-2+3+cmd|' /C calc'!A0", '+HYPERLINK("http://x")',
            "\t=1+1"]  # fmt: skip
ORDINARY = ["@jetblue thanks for the upgrade", "- fast delivery", "-0.5", "late parcel"]


def test_output_files_neutralise_formula_cells(tmp_path):
    """The CLI's CSVs follow the API's rule (worker/pipeline/csv_cells.py): formulas get a leading ', ordinary text stays."""
    texts = FORMULAS + ORDINARY
    docs = pd.DataFrame({"doc_id": ["=1+1", *(f"d{i}" for i in range(1, len(texts)))], "text": texts,
                         "sentiment_score": [-0.5] * len(texts), "sentiment_label": ["negative"] * len(texts),
                         "rating": [1.0] * len(texts), "date": [None] * len(texts)})  # fmt: skip
    n = len(texts)
    theme = Theme(id=3, features=[3], members=np.arange(n), activations=np.ones(n, dtype=np.float32),
                  label="-2+3+cmd|' /C calc'!A0", keywords=["@jetblue", "upgrade"],
                  sentiment={"mean": -0.5, "negative": 1.0, "neutral": 0.0, "positive": 0.0},
                  rating={"mean": 1.0, "count": 1}, examples=[0, 5])  # fmt: skip
    paths = write_output_files(tmp_path, themes_document([theme], docs, {}), [theme], docs)

    documents = pd.read_csv(paths[4], dtype=str, keep_default_na=False)
    assert documents["text"].tolist() == ["'" + t for t in FORMULAS] + ORDINARY
    assert documents["doc_id"][0] == "'=1+1" and documents["sentiment_score"][0] == "-0.5"  # numbers stay numbers
    themes_csv = pd.read_csv(paths[1], dtype=str, keep_default_na=False)
    assert themes_csv.loc[0, "label"] == "'-2+3+cmd|' /C calc'!A0"
    assert themes_csv.loc[0, "keywords"] == "@jetblue; upgrade"
    assert themes_csv.loc[0, "sentiment_mean"] == "-0.5"
    assert pd.read_csv(paths[2], dtype=str)["doc_id"][0] == "'=1+1"
    assert json.loads(paths[0].read_text())["themes"][0]["label"] == "-2+3+cmd|' /C calc'!A0"  # JSON as written
