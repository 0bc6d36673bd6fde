"""The command line end to end: a real model, a real SAE, real files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

CLI = [sys.executable, "-m", "service.cli"]
OUTPUT_FILES = ["themes.json", "themes.csv", "theme_tree.csv", "document_themes.csv", "document_nodes.csv",
                "span_themes.csv", "documents.csv"]  # fmt: skip


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
    assert meta["smoothing"] == {"n_neighbors": 15, "weight": 0.8}
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
    # every other column of the file is kept as metadata, after the fixed columns
    assert list(docs.columns)[-2:] == ["theme", "mood"]
    assert [(c["name"], c["type"]) for c in meta["columns"]] == [("theme", "category"), ("mood", "category")]
    # themes group comments about one subject: the best theme for each fixture subject is mostly about it
    truth = pd.read_csv(sample_csv, dtype={"id": str}).set_index("id")["theme"]
    purity = [long[long.theme_id == t["id"]]["doc_id"].map(truth).value_counts(normalize=True).iloc[0]
              for t in first["themes"]]  # fmt: skip
    assert sum(purity) / len(purity) > 0.6
    # the tree (schema version 2): every theme under one category, some with sub-themes, every node named
    assert meta["schema_version"] == 2 and "groups" not in first and "n_groups" not in meta
    categories, sub_themes = first["categories"], first["sub_themes"]
    assert 2 <= meta["n_categories"] == len(categories) <= 15 and meta["n_sub_themes"] == len(sub_themes)
    nodes = {n["id"]: n for n in (*categories, *first["themes"], *sub_themes)}
    assert len(nodes) == len(categories) + len(first["themes"]) + len(sub_themes)
    assert all(n["name"] and n["label"] == n["name"] for n in nodes.values())
    assert sorted(t for c in categories for t in c["children"]) == sorted(t["id"] for t in first["themes"])
    nodes_csv = pd.read_csv(tmp_path / "a" / "document_nodes.csv", dtype={"doc_id": str})
    assert list(nodes_csv.columns) == ["doc_id", "node_id", "level", "activation"]
    members = nodes_csv.groupby("node_id")["doc_id"].agg(set).to_dict()
    for category in categories:
        assert category["level"] == 1 and category["parent"] is None and category["id"] > 1_000_000
        assert all(nodes[t]["parent"] == category["id"] for t in category["children"])
        assert members[category["id"]] == set(long[long.theme_id.isin(category["children"])]["doc_id"])
        assert category["size"] == len(members[category["id"]])
    for sub_theme in sub_themes:
        parent = nodes[sub_theme["parent"]]
        assert sub_theme["level"] == 3 and sub_theme["id"] > 2_000_000 and sub_theme["id"] in parent["children"]
        assert parent["level"] == 2 and members[sub_theme["id"]] <= members[parent["id"]]
    tree_csv = pd.read_csv(tmp_path / "a" / "theme_tree.csv")
    assert set(tree_csv["node_id"]) == set(nodes) and set(tree_csv["name"]) == {n["name"] for n in nodes.values()}
    assert list(pd.read_csv(tmp_path / "a" / "themes.csv").columns[-2:]) == ["name", "parent_id"]
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == sorted(OUTPUT_FILES)
    # printed: the themes by name and the tree; the files written, in order, their paths unbroken
    assert "themes in" in result.stdout and all(c["name"] in result.stdout for c in categories)
    assert f"{len(categories)} categories, {len(first['themes'])} themes, {len(sub_themes)} sub-themes" in result.stdout
    wrote = next(line for line in result.stdout.splitlines() if line.startswith("Wrote "))
    assert [Path(p).name for p in wrote.removeprefix("Wrote ").split(", ")] == OUTPUT_FILES


@pytest.mark.slow
def test_analyze_cp1252_semicolon_bom(tmp_path, sample_frame, monkeypatch):
    monkeypatch.setenv("FEEDBACK_THEMES_THEME_LEVELS", "false")  # and without the sub-theme SAE
    frame = sample_frame.head(60).assign(text=lambda f: f["text"] + " – café €")
    path = tmp_path / "export.csv"
    path.write_bytes(b"\xef\xbb\xbf" + frame.to_csv(sep=";", index=False).encode("cp1252"))
    result = run("analyze", str(path), "--text-column", "text", "--out", str(tmp_path / "out"),
                 "--keep-columns", "mood,rating")  # fmt: skip
    assert result.returncode == 0, result.stderr
    docs = pd.read_csv(tmp_path / "out" / "documents.csv")
    assert docs["text"].str.endswith("– café €").all()
    # the unmapped rating is metadata here, named like a fixed column: suffixed
    assert list(docs.columns)[-2:] == ["rating (metadata)", "mood"] and docs["rating"].isna().all()
    document = json.loads((tmp_path / "out" / "themes.json").read_text(encoding="utf-8"))
    assert document["metadata"]["tree"]["sub_themes"] is False and document["sub_themes"] == []
    assert document["categories"] and all(c["children"] for c in document["categories"])


def test_missing_column_is_one_line(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("Review Text,Rating\nnice,5\n")
    result = run("analyze", str(path), "--text-column", "comment")
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "'comment' not found" in lines[0] and "'Review Text', 'Rating'" in lines[0]
    assert "Traceback" not in result.stderr


def test_unknown_kept_column_is_one_line(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("text,Store\nnice,Paris\nslow,Lyon\n")
    result = run("analyze", str(path), "--keep-columns", "Store,Country")
    assert result.returncode == 2 and "'Country' not found" in result.stderr and "Traceback" not in result.stderr


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


def _node(node_id: int, level: int, name: str, size: int, mood: float, parent: int | None = None,
          children: list[int] | None = None) -> dict:  # fmt: skip
    """A themes.json node record (schema version 2) whose label is its keywords, to tell name and label apart."""
    return {"id": node_id, "level": level, "name": name, "label": f"kw{node_id}, other", "keywords": [f"kw{node_id}"],
            "size": size, "share": size / 200, "span_count": size,
            "sentiment": {"mean": mood, "negative": 0.3, "neutral": 0.3, "positive": 0.4},
            "rating": None, "cohesion": 0.5, "examples": [], "features": [], "parent": parent,
            "children": children or []}  # fmt: skip


def _small_result(n_categories: int = 3) -> dict:
    """Categories of 1, 3 and 0 themes (the largest listed last), one theme with 3 sub-themes, hostile markup in a name;
    then ``n_categories - 3`` more one-theme categories."""
    cats = [_node(1_000_001, 1, "Fit and sizing", 80, 0.12, children=[4]),
            _node(1_000_002, 1, "Delivery [red]and[/] shipping", 120, -0.42, children=[7, 3, 5]),
            _node(1_000_003, 1, "Empty", 0, 0.0)]  # fmt: skip
    themes = [_node(4, 2, "Runs small", 80, 0.12, 1_000_001), _node(7, 2, "Courier rude", 20, -0.3, 1_000_002),
              _node(3, 2, "Late parcels", 60, -0.6, 1_000_002, [2_000_001, 2_000_002, 2_000_003]),
              _node(5, 2, "Lost <b>bags</b>", 40, -0.5, 1_000_002)]  # fmt: skip
    subs = [_node(2_000_001 + i, 3, f"Late part {i}", 30 - i, -0.1, 3) for i in range(3)]
    for n in range(3, n_categories):
        cats.append(_node(1_000_001 + n, 1, f"Category {n}", 10, 0.0, children=[100 + n]))
        themes.append(_node(100 + n, 2, f"Theme {n}", 10, 0.0, 1_000_001 + n))
    meta = {"schema_version": 2, "n_documents": 200, "n_categories": len(cats), "n_themes": len(themes),
            "n_sub_themes": len(subs), "sae": {"n_latents": 64, "k": 4, "fvu": 0.5}}  # fmt: skip
    return {"metadata": meta, "categories": cats, "themes": themes, "sub_themes": subs}


@pytest.fixture
def printed(monkeypatch):
    """What the CLI's console printed (plain text, 100 columns)."""
    from rich.console import Console

    from service import cli

    console = Console(record=True, width=100, color_system=None, force_terminal=False)
    monkeypatch.setattr(cli, "console", console)
    return lambda: console.export_text()


def test_tree_prints_categories_with_their_largest_themes_by_name(printed):
    from service.cli import print_tree

    print_tree(_small_result(), top=2)
    lines = printed().splitlines()
    assert lines[0] == "3 categories, 4 themes, 3 sub-themes in 200 comments"
    # categories in the document's order, each with size, share and mean sentiment; names as text, never markup
    categories = [line for line in lines if line[:4] in ("├── ", "└── ")]
    assert categories == ["├── Fit and sizing  80 comments · 40.0% · mood +0.12 · 1 theme",
                          "├── Delivery [red]and[/] shipping  120 comments · 60.0% · mood -0.42 · 3 themes",
                          "└── Empty  0 comments · 0.0% · mood +0.00 · 0 themes"]  # fmt: skip
    delivery = lines[lines.index(categories[1]) + 1 : lines.index(categories[2])]
    # its two largest themes (size, mood), the third counted; under a theme its two largest sub-themes, one counted
    assert [line.strip("│├└─ ") for line in delivery] == [
        "Late parcels  60 comments · mood -0.60", "Late part 0  30 comments · mood -0.10",
        "Late part 1  29 comments · mood -0.10", "+1 more sub-theme", "Lost <b>bags</b>  40 comments · mood -0.50",
        "+1 more theme"]  # fmt: skip
    assert "kw3" not in printed() and "Courier rude" not in printed()


def test_tree_category_level_fits_one_screen(printed):
    from service.cli import MAX_CATEGORIES, print_tree

    print_tree(_small_result(n_categories=20), top=0)
    lines = printed().splitlines()
    # top 0: the categories alone, one line each, the 16th on counted
    assert MAX_CATEGORIES == 15 and len(lines) == 1 + 15 + 1 and lines[-1] == "└── +5 more categories"
    assert lines[1] == "├── Fit and sizing  80 comments · 40.0% · mood +0.12 · 1 theme"


def test_themes_table_shows_names_and_keywords(printed):
    from service.cli import print_themes

    print_themes(_small_result(), top=10)
    text = printed()
    assert "Late parcels" in text and "Lost <b>bags</b>" in text and "kw3" in text and "kw3, other" not in text


def test_analyze_help_lists_the_output_files():
    result = subprocess.run([*CLI, "analyze", "--help"], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1"})  # fmt: skip
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    assert OUTPUT_FILES == ["themes.json", "themes.csv", "theme_tree.csv", "document_themes.csv", "document_nodes.csv",
                            "span_themes.csv", "documents.csv"]  # fmt: skip
    assert all(name in text for name in OUTPUT_FILES) and "theme_groups" not in text
    assert "--tree-top" in text
