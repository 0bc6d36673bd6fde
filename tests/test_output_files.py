"""Output stage: the themes.json schema and the CSV files the CLI writes."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from worker.pipeline.output import (
    DOCUMENT_NODES_COLUMNS,
    DOCUMENT_THEMES_COLUMNS,
    DOCUMENTS_COLUMNS,
    SPAN_THEMES_COLUMNS,
    THEMES_COLUMNS,
    TREE_COLUMNS,
    themes_document,
    write_output_files,
)
from worker.pipeline.themes import Theme
from worker.pipeline.tree import Tree


def _tree(themes, categories=(), sub_themes=()) -> Tree:
    return Tree(list(categories), list(themes), list(sub_themes))


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
    doc = themes_document(_tree(themes), docs, {"model": "m", "sae": sae, "seed": 0,
                                                "created_at": "2026-01-01T00:00:00Z"})  # fmt: skip
    assert set(doc["metadata"]) >= {"n_documents", "n_themes", "model", "sae", "seed", "created_at"}
    assert doc["metadata"]["n_documents"] == 3 and doc["metadata"]["n_themes"] == 1
    assert doc["metadata"]["schema_version"] == 2 and "groups" not in doc
    assert doc["categories"] == [] and doc["sub_themes"] == []  # empty levels: empty lists, not missing keys
    theme = doc["themes"][0]
    assert set(theme) >= {"id", "level", "parent", "children", "name", "label", "keywords", "size", "share",
                          "sentiment", "rating", "examples"}  # fmt: skip
    assert theme["name"] == theme["label"] == "parcel, late" and theme["level"] == 2
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
    doc = themes_document(_tree([theme]), docs, {}, spans=spans)
    first, second = doc["themes"][0]["examples"]
    assert first["span"] == {"index": 0, "start": 0, "end": 21, "text": "The parcel came late."}
    assert second["doc_id"] == "c" and second["span"]["text"] == "Late parcel again, third time now."
    assert second["text"][second["span"]["start"] : second["span"]["end"]] == second["span"]["text"]
    assert doc["themes"][0]["span_count"] == 3 and doc["themes"][0]["size"] == 3
    paths = write_output_files(tmp_path, doc, [theme], docs, spans)
    table = pd.read_csv(paths[5], dtype={"doc_id": str})
    assert list(table.columns) == SPAN_THEMES_COLUMNS
    assert table.values.tolist() == [["a", 0, 0, 21, 4, 0.9], ["c", 1, 26, 60, 4, 0.8], ["b", 0, 0, 38, 4, 0.7]]


def test_write_output_files(tmp_path):
    docs, themes = _fixture()
    doc = themes_document(_tree(themes), docs, {"model": "m", "sae": {}, "seed": 0, "created_at": "x"})
    paths = write_output_files(tmp_path, doc, themes, docs)
    names = ["themes.json", "themes.csv", "theme_tree.csv", "document_themes.csv", "document_nodes.csv",
             "span_themes.csv", "documents.csv"]  # fmt: skip
    assert [p.name for p in paths] == names
    assert json.loads(paths[0].read_text()) == doc
    themes_csv = pd.read_csv(paths[1])
    assert list(themes_csv.columns) == THEMES_COLUMNS and themes_csv["keywords"][0] == "parcel; late; lost"
    assert themes_csv["cohesion"][0] == 0.7123
    long = pd.read_csv(paths[3], dtype={"doc_id": str})
    assert list(long.columns) == DOCUMENT_THEMES_COLUMNS
    assert long.values.tolist() == [["a", 7, 0.8], ["b", 7, 0.6123]]
    assert pd.read_csv(paths[5], dtype={"doc_id": str}).values.tolist() == [["a", 0, 0, 11, 7, 0.8],
                                                                             ["b", 0, 0, 11, 7, 0.6123]]
    documents = pd.read_csv(paths[6], dtype={"doc_id": str}, keep_default_na=False)
    assert list(documents.columns) == DOCUMENTS_COLUMNS
    assert documents["date"].tolist() == ["2026-01-01T00:00:00Z", "", "2026-02-03T00:00:00Z"]
    assert documents["sentiment_score"][0] == -0.5123


def test_the_tree_in_the_document_and_its_csv_files(tmp_path):
    docs, [theme] = _fixture()
    other = Theme(id=11, features=[11], members=np.array([2]), activations=np.array([0.5]), keywords=["sum"],
                  sentiment={"mean": 0.3, "negative": 0.0, "neutral": 0.0, "positive": 1.0}, examples=[2],
                  level=2, parent=1_000_001, name="Spreadsheet formulas")  # fmt: skip
    theme.parent, theme.children, theme.name = 1_000_001, [2_000_001], "Late or lost parcels"
    category = Theme(id=1_000_001, features=[7, 9, 11], members=np.array([0, 1, 2]),
                     activations=np.array([0.8, 0.6, 0.5]), keywords=["parcel", "sum"], examples=[2, 0],
                     sentiment={"mean": -0.1, "negative": 0.6667, "neutral": 0.0, "positive": 0.3333},
                     rating={"mean": 3.0, "count": 2}, level=1, children=[7, 11], name="Parcels")  # fmt: skip
    sub = Theme(id=2_000_001, features=[], members=np.array([1]), activations=np.array([0.7]), keywords=["lost"],
                sentiment={"mean": -0.2, "negative": 1.0, "neutral": 0.0, "positive": 0.0}, examples=[1], level=3,
                parent=7, name="Lost parcels")  # fmt: skip
    nodes = [category, theme, other, sub]
    doc = themes_document(_tree([theme, other], [category], [sub]), docs, {"model": "m"})
    meta = doc["metadata"]
    assert (meta["n_categories"], meta["n_themes"], meta["n_sub_themes"]) == (1, 2, 1)
    [record] = doc["categories"]
    assert record["id"] == 1_000_001 and record["level"] == 1 and record["parent"] is None
    assert record["children"] == [7, 11] and record["name"] == record["label"] == "Parcels" and record["size"] == 3
    assert record["share"] == 1.0 and record["examples"][0]["text"] == "=SUM(A1)" and record["rating"]["mean"] == 3.0
    assert doc["sub_themes"][0]["parent"] == 7 and doc["themes"][0]["children"] == [2_000_001]
    paths = write_output_files(tmp_path, doc, nodes, docs)
    tree = pd.read_csv(paths[2])
    assert list(tree.columns) == TREE_COLUMNS
    assert tree[["node_id", "level", "parent_id", "size"]].astype("Int64").values.tolist() == [
        [1_000_001, 1, pd.NA, 3], [7, 2, 1_000_001, 2], [11, 2, 1_000_001, 1], [2_000_001, 3, 7, 1]]
    assert tree["name"].tolist() == ["Parcels", "Late or lost parcels", "Spreadsheet formulas", "Lost parcels"]
    assert pd.isna(tree.loc[0, "cohesion"])  # not rated: null, an empty cell
    themes_csv = pd.read_csv(paths[1])
    assert themes_csv[["theme_id", "parent_id"]].values.tolist() == [[7, 1_000_001], [11, 1_000_001]]
    links = pd.read_csv(paths[4], dtype={"doc_id": str})
    assert list(links.columns) == DOCUMENT_NODES_COLUMNS
    by_node = links.groupby("node_id")["doc_id"].apply(sorted).to_dict()
    assert by_node == {7: ["a", "b"], 11: ["c"], 1_000_001: ["a", "b", "c"], 2_000_001: ["b"]}
    assert set(zip(links["node_id"], links["level"])) == {(7, 2), (11, 2), (1_000_001, 1), (2_000_001, 3)}
    assert pd.read_csv(paths[3])["theme_id"].unique().tolist() == [7, 11]  # document_themes: themes only


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
    paths = write_output_files(tmp_path, themes_document(_tree([theme]), docs, {}), [theme], docs)

    documents = pd.read_csv(paths[6], dtype=str, keep_default_na=False)
    assert documents["text"].tolist() == ["'" + t for t in FORMULAS] + ORDINARY
    assert documents["doc_id"][0] == "'=1+1" and documents["sentiment_score"][0] == "-0.5"  # numbers stay numbers
    themes_csv = pd.read_csv(paths[1], dtype=str, keep_default_na=False)
    assert themes_csv.loc[0, "label"] == "'-2+3+cmd|' /C calc'!A0"
    assert themes_csv.loc[0, "keywords"] == "@jetblue; upgrade"
    assert themes_csv.loc[0, "sentiment_mean"] == "-0.5"
    assert pd.read_csv(paths[2], dtype=str, keep_default_na=False).loc[0, "name"] == "'-2+3+cmd|' /C calc'!A0"
    assert pd.read_csv(paths[3], dtype=str)["doc_id"][0] == "'=1+1"
    assert json.loads(paths[0].read_text())["themes"][0]["label"] == "-2+3+cmd|' /C calc'!A0"  # JSON as written
