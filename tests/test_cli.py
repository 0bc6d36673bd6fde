"""The command line end to end: a real model, a real SAE, real files."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest

CLI = [sys.executable, "-m", "service.cli"]


def run(*args: str, cwd=None) -> subprocess.CompletedProcess:  # type: ignore[no-untyped-def]
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=600, cwd=cwd)


@pytest.mark.slow
def test_analyze_writes_every_output_deterministically(sample_csv, tmp_path, monkeypatch):
    monkeypatch.setenv("FEEDBACK_THEMES_DATA_DIR", str(tmp_path / "data"))  # a cold embedding cache, as on CI
    outputs = []
    for name in ("a", "b"):
        result = run("analyze", str(sample_csv), "--text-column", "text", "--rating-column", "rating",
                     "--date-column", "date", "--id-column", "id", "--out", str(tmp_path / name), "--seed", "3")  # fmt: skip
        assert result.returncode == 0, result.stderr
        outputs.append(json.loads((tmp_path / name / "themes.json").read_text()))
    first, second = outputs
    assert first["metadata"].pop("created_at") and second["metadata"].pop("created_at")
    # the second run finds every text in the embedding cache; nothing else may differ
    # every distinct text the model reads is embedded once; the sample's comments are short: each is one span
    assert first["metadata"]["counts"].pop("embedded") == first["metadata"]["counts"]["unique_texts"]
    assert second["metadata"]["counts"].pop("embedded") == 0
    assert first["metadata"]["units"] == "comments"
    assert first["metadata"]["counts"]["spans"] == len(pd.read_csv(sample_csv))
    assert first == second
    meta = first["metadata"]
    assert meta["n_documents"] == len(pd.read_csv(sample_csv)) and meta["seed"] == 3
    assert meta["sae"]["fvu"] < 0.6 and meta["sae"]["dead_fraction"] <= 0.05
    assert meta["n_themes"] == len(first["themes"]) >= 6
    sizes = [t["size"] for t in first["themes"]]
    assert sizes == sorted(sizes, reverse=True)
    for theme in first["themes"]:
        assert theme["label"] and theme["rating"]["count"] == theme["size"]
        assert len(theme["keywords"]) >= 5 and 1 <= len(theme["examples"]) <= 5
        assert abs(sum(theme["sentiment"][k] for k in ("negative", "neutral", "positive")) - 1) < 1e-3
        assert 0 < theme["cohesion"] <= 1 and theme["span_count"] >= theme["size"]
        for example in theme["examples"]:
            span = example["span"]
            assert example["text"][span["start"] : span["end"]] == span["text"] and span["text"]
    assert meta["smoothing"] == {"n_neighbors": 15, "weight": 0.8} and meta["levels"] == {"broader": 0.5, "finer": 2.0}
    long = pd.read_csv(tmp_path / "a" / "document_themes.csv", dtype={"doc_id": str})
    assert list(long.columns) == ["doc_id", "theme_id", "activation"]
    assert set(long["theme_id"]) == {t["id"] for t in first["themes"]}
    spans = pd.read_csv(tmp_path / "a" / "span_themes.csv", dtype={"doc_id": str})
    assert list(spans.columns) == ["doc_id", "span_index", "span_start", "span_end", "theme_id", "activation"]
    # a comment is in a theme exactly when one of its spans is
    assert set(zip(spans.doc_id, spans.theme_id)) == set(zip(long.doc_id, long.theme_id))
    texts = pd.read_csv(sample_csv, dtype={"id": str}).set_index("id")["text"]
    assert all(0 <= s < e <= len(texts[d]) for d, s, e in zip(spans.doc_id, spans.span_start, spans.span_end))
    docs = pd.read_csv(tmp_path / "a" / "documents.csv")
    assert len(docs) == meta["n_documents"] and docs["sentiment_label"].isin(["negative", "neutral", "positive"]).all()
    # themes group comments about one subject: the best theme for each fixture subject is mostly about it
    truth = pd.read_csv(sample_csv, dtype={"id": str}).set_index("id")["theme"]
    purity = [long[long.theme_id == t["id"]]["doc_id"].map(truth).value_counts(normalize=True).iloc[0]
              for t in first["themes"]]  # fmt: skip
    assert sum(purity) / len(purity) > 0.6
    # theme groups, listed in themes.json and theme_groups.csv: unions of whole themes, broader themes of a half-size
    # SAE and sub-themes of a double-size SAE, each naming the themes it spans (a sub-theme: its one parent)
    ids = {t["id"] for t in first["themes"]}
    assert meta["n_groups"] == len(first["groups"]) >= 2
    kinds = {g["kind"] for g in first["groups"]}
    assert {"union", "sub_theme"} <= kinds <= {"union", "broader", "sub_theme"}
    for group in first["groups"]:
        assert group["themes"] and set(group["themes"]) <= ids and 0 < group["cohesion"] <= 1
        if group["kind"] == "union":
            assert len(group["themes"]) >= 2 and group["level"] in (2, 4, 8, 16, 32)
            union = set(long[long.theme_id.isin(group["themes"])]["doc_id"])
            assert group["size"] == len(union) and {e["doc_id"] for e in group["examples"]} <= union
        else:
            assert group["level"] == {"broader": 2, "sub_theme": 1}[group["kind"]] and group["features"] == []
            assert group["kind"] == "broader" or len(group["themes"]) == 1
    groups_csv = pd.read_csv(tmp_path / "a" / "theme_groups.csv")
    assert groups_csv["group_id"].tolist() == [g["id"] for g in first["groups"]]
    assert "themes in" in result.stdout and "broader subjects" in result.stdout and "sub-themes" in result.stdout
    assert "Wrote" in result.stdout


@pytest.mark.slow
def test_analyze_cp1252_semicolon_bom(tmp_path, sample_frame, monkeypatch):
    monkeypatch.setenv("FEEDBACK_THEMES_THEME_LEVELS", "false")  # and without the level SAEs
    frame = sample_frame.head(60).assign(text=lambda f: f["text"] + " – café €")
    path = tmp_path / "export.csv"
    path.write_bytes(b"\xef\xbb\xbf" + frame.to_csv(sep=";", index=False).encode("cp1252"))
    result = run("analyze", str(path), "--text-column", "text", "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    docs = pd.read_csv(tmp_path / "out" / "documents.csv")
    assert docs["text"].str.endswith("– café €").all()
    document = json.loads((tmp_path / "out" / "themes.json").read_text(encoding="utf-8"))
    assert document["metadata"]["levels"] is None and {g["kind"] for g in document["groups"]} <= {"union"}


def test_missing_column_is_one_line(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("Review Text,Rating\nnice,5\n")
    result = run("analyze", str(path), "--text-column", "comment")
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "'comment' not found" in lines[0] and "'Review Text', 'Rating'" in lines[0]
    assert "Traceback" not in result.stderr


def test_missing_file(tmp_path):
    result = run("analyze", str(tmp_path / "nope.csv"))
    assert result.returncode == 2 and "no such file" in result.stderr


def test_one_distinct_comment_is_refused(tmp_path):
    path = tmp_path / "same.csv"
    path.write_text("text\nsame\nsame\n")
    result = run("analyze", str(path), "--out", str(tmp_path / "out"))
    assert result.returncode == 2 and "at least 2 different comments" in result.stderr
    assert not (tmp_path / "out").exists()


def test_comments_of_handles_only_are_refused(tmp_path):
    path = tmp_path / "handles.csv"
    path.write_text("text\n@united\n@delta\nhttps://t.co/x\n")
    result = run("analyze", str(path), "--out", str(tmp_path / "out"))
    assert result.returncode == 2 and "once handles, links and masks are taken out" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "out").exists()
