"""Benchmark metrics on hand-made fixtures, and a smoke test of the `python -m bench quality` harness."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bench import metrics as M

# 8 documents: labels a (0-3), b (4-5), c (6-7); document 3 also has label b (multi-label).
LABELS = [["a"], ["a"], ["a"], ["a", "b"], ["b"], ["b"], ["c"], ["c"]]
THEMES = [np.array([0, 1, 2]), np.array([3, 4, 5]), np.array([6])]


def test_label_recovery_best_f1_per_label():
    rec = M.label_recovery(THEMES, LABELS, min_support=1)
    # a: theme0 P=1 R=3/4 → F1=6/7; b: theme1 P=1 R=1 → 1; c: theme2 P=1 R=1/2 → 2/3.
    assert rec["per_label"] == pytest.approx({"a": 6 / 7, "b": 1.0, "c": 2 / 3})
    assert rec["mean_f1"] == pytest.approx((6 / 7 + 1 + 2 / 3) / 3)
    assert rec["share_recovered"] == 1.0
    assert M.label_recovery(THEMES, LABELS, min_support=3)["n_labels"] == 2  # c has 2 documents


def test_label_recovery_without_themes_is_zero():
    rec = M.label_recovery([], LABELS, min_support=1)
    assert rec["mean_f1"] == 0.0 and rec["share_recovered"] == 0.0


def test_theme_precision_is_size_weighted():
    themes = [np.array([0, 1, 4, 6]), np.array([6, 7])]  # best label a: 2/4; c: 2/2
    assert M.theme_precision(themes, LABELS) == pytest.approx((0.5 * 4 + 1.0 * 2) / 6)
    assert np.isnan(M.theme_precision([], LABELS))


def test_outliers_and_duplicates():
    assert M.outlier_share(THEMES, 8) == pytest.approx(1 / 8)
    assert M.outlier_share([np.array([0, 0, 1])], 4) == 0.5


def test_micro_f1_maps_each_theme_to_its_best_label():
    out = M.micro_f1(THEMES, LABELS)
    # predictions: 0,1,2→a; 3,4,5→b; 6→c. Gold pairs 9, predicted 7, all correct.
    assert out["precision"] == pytest.approx(1.0)
    assert out["recall"] == pytest.approx(7 / 9)
    assert out["f1"] == pytest.approx(2 * 7 / 9 / (1 + 7 / 9))


def test_stability_jaccard_matching():
    a = [np.array([0, 1, 2, 3]), np.array([4, 5])]
    b = [np.array([0, 1, 2]), np.array([5, 6, 7])]  # J=3/4 and J=1/4
    assert M.stability(a, b, 8) == 0.5
    assert M.stability(b, a, 8) == 0.5
    assert M.stability(a, a, 8) == 1.0
    assert M.mean_stability([a, b], 8) == 0.5
    assert np.isnan(M.stability([], b, 8))


def test_spearman_and_accuracy():
    assert M.spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert np.isnan(M.spearman([1, 2], [1, 2]))
    acc, n = M.accuracy(["positive", "negative", "neutral"], ["positive", None, "negative"])
    assert (acc, n) == (0.5, 2)


def test_harness_smoke_on_a_tiny_csv(tmp_path, monkeypatch, capsys):
    """`python -m bench quality --csv` with sae and kmeans on synthetic three-cluster data (embeddings stubbed)."""
    from bench import datasets
    from bench.__main__ import main

    rng = np.random.default_rng(0)
    rows = [f"{topic} complaint number {i}" for topic in ("refund", "delivery", "sizing") for i in range(30)]
    labels = [r.split()[0] + (";late" if r.startswith("delivery") and i % 2 else "") for i, r in enumerate(rows)]
    path = tmp_path / "tiny.csv"
    path.write_text("text,label\n" + "\n".join(f"{t},{lab}" for t, lab in zip(rows, labels)) + "\n")
    centres = rng.normal(size=(3, 16))

    def fake_embed(texts, cache_dir=None, model=None):
        topic = {"refund": 0, "delivery": 1, "sizing": 2}
        X = np.stack([centres[topic[t.split()[0]]] for t in texts]) + 0.1 * rng.normal(size=(len(texts), 16))
        return (X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32)

    monkeypatch.setattr(datasets, "embed", fake_embed)
    out = tmp_path / "out.json"
    code = main(["quality", "--csv", str(path), "--label-column", "label", "--label-sep", ";",
                 "--systems", "sae,kmeans", "--seeds", "0,1", "--json", str(out)])  # fmt: skip
    output = capsys.readouterr().out
    assert code == 0, output
    assert "| sae |" in output and "| kmeans |" in output
    data = json.loads(out.read_text())
    assert data["n_gold_labels"] == 4
    for system in ("sae", "kmeans"):
        s = data["systems"][system]
        assert 0.0 <= s["label_recovery"] <= 1.0 and s["n_themes"] >= 1
        assert s["micro_f1"] is not None  # the gold is multi-label
        assert 0.0 <= s["stability"] <= 1.0
    assert data["systems"]["kmeans"]["label_recovery"] > 0.5


def test_harness_research_options(tmp_path, monkeypatch):
    """``sae:levels=0`` leaves out the sub-themes of the double-size SAE; ``min_cohesion`` drops themes whose members'
    neighbours lie outside them."""
    from bench import quality
    from bench.datasets import LabelledSet

    rng = np.random.default_rng(1)
    centres = rng.normal(size=(3, 16))
    labels = np.repeat(np.arange(3), 40)
    X = centres[labels] + 0.15 * rng.normal(size=(120, 16))
    X = (X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32)
    data = LabelledSet("tiny", [f"t{i}" for i in range(120)], [[str(c)] for c in labels])
    spec = "sae:levels=0;min_cohesion=0.99"
    result = quality.run_quality(data, X, systems=["sae", spec], seeds=[0])["systems"]
    assert set(result) == {"sae", "sae+tree", spec, f"{spec}+tree"}
    assert result["sae+tree"]["n_themes"] > result["sae"]["n_themes"]
    assert result["sae"]["per_seed"][0]["info"]["n_sub_themes"] > 0
    assert result[spec]["per_seed"][0]["info"]["n_sub_themes"] == 0
    assert result[spec]["n_themes"] < result["sae"]["n_themes"]  # no theme is that cohesive


def test_calibrate_on_ratings_learns_from_rated_rows_and_falls_back():
    from bench.sentiment_eval import calibrate_on_ratings, rating_classes

    assert rating_classes(np.array([1, 2, 3, 4, 5, np.nan])).tolist() == [
        "negative", "negative", "neutral", "positive", "positive", None]
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 8)).astype(np.float32)
    ratings = np.where(X[:, 0] > 0, 5.0, 1.0)
    ratings[150:] = np.nan  # unrated rows get scored
    out = calibrate_on_ratings(X, np.zeros(200, np.float32), ratings)
    assert out["calibrated"]
    truth = np.where(X[150:, 0] > 0, "positive", "negative")
    assert np.mean(out["labels"][150:] == truth) > 0.9
    assert np.all(np.sign(out["scores"][150:]) == np.where(truth == "positive", 1, -1))
    few = calibrate_on_ratings(X[:10], np.full(10, 0.5, np.float32), ratings[:10])
    assert not few["calibrated"] and list(few["labels"]) == ["positive"] * 10


def test_kept_ids_compares_members_on_the_first_half_only():
    from bench.incremental import kept_ids

    first = {1: {0, 1, 2, 3}, 2: {4, 5}, 3: {6, 7}}
    after = {1: {0, 1, 2, 10, 11, 12}, 2: {9}, 4: {6, 7}}  # rows ≥ 8 are the second half's
    # theme 1 keeps its meaning (new rows do not count against it); 2 lost it; 3's members moved to another id
    assert kept_ids(first, after, set(range(8))) == 1


def test_theme_sentiment_pairs_use_the_members_carrying_the_best_category():
    from bench.theme_sentiment import theme_pairs

    labels = [["food"], ["food"], ["food", "service"], ["service"], ["service"], ["price"]]
    polarity = [{"food": "positive"}, {"food": "negative"}, {"food": "positive", "service": "conflict"},
                {"service": "negative"}, {"service": "negative"}, {"price": "neutral"}]  # fmt: skip
    scores = np.array([0.8, -0.2, 0.5, -0.6, -0.4, 0.0])
    themes = [np.array([0, 1, 2]), np.array([2, 3, 4]), np.array([5])]
    gold, predicted = theme_pairs(themes, labels, polarity, scores, min_rated=2)
    assert gold == pytest.approx([1 / 3, -2 / 3]) and predicted == pytest.approx([1.1 / 3, -0.5 / 3])
