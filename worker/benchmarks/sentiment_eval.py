"""Per-comment 3-class sentiment accuracy of offline scorers against airline / clothing / SemEval gold.

Scorers compared (all offline, VADER + MiniLM only):

- ``vader``: plain VADER (compound, ±0.05 band) on the text as it is: the baseline.
- ``feedback_vader``: VADER read for feedback (``worker.pipeline.sentiment``: handles and links
  dropped, request words neutral, service-failure words negative).
- ``vader_band``: VADER with a wider neutral band (0.3).
- ``anchors``: MiniLM similarity to positive minus negative anchor sentences (``worker.pipeline.sentiment``).
- ``feedback_vader+anchors (product)``: the product default, the mean of ``feedback_vader`` and ``anchors``
  labelled with VADER's ±0.05 (no training, same rule on every set).
- ``rating_calibrated`` (sets with ratings only): a logistic head on [MiniLM, VADER] trained on half of the
  rated rows, scored on the other half (the "upload has a rating column" case).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from worker.benchmarks import datasets, metrics
from worker.pipeline.sentiment import ANCHORS

SETS = ("airline", "clothing", "semeval", *datasets.ABSA_SENTIMENT_FILES)


def load_sentiment_set(name: str) -> datasets.LabelledSet:
    if name == "airline":
        return datasets.airline_sentiment()
    if name == "clothing":
        return datasets.clothing()
    if name == "semeval":
        return datasets.semeval()
    if name in datasets.ABSA_SENTIMENT_FILES:
        return datasets.absa_sentiment(name)
    raise ValueError(f"no sentiment gold for {name!r}: {', '.join(SETS)}")


def anchor_scores(X: np.ndarray, cache_dir: str | Path | None = None) -> np.ndarray:
    """The product's anchor score (``worker.pipeline.sentiment.anchor_scores``) with the anchors embedded as ``X`` was."""
    from worker.pipeline.sentiment import anchor_scores as score

    return score(X, datasets.embed(list(ANCHORS), cache_dir))


def labels_for(scores: np.ndarray, band: float) -> np.ndarray:
    from worker.pipeline.sentiment import label_scores

    return label_scores(scores, band)


def evaluate_dataset(name: str, cache_dir: str | Path | None = None) -> dict[str, Any]:
    from worker.pipeline.sentiment import blend, score_texts

    data = load_sentiment_set(name)
    gold = data.sentiment
    X = datasets.embed(data.texts, cache_dir)
    vader = score_texts(data.texts, feedback_lexicon=False)
    feedback = score_texts(data.texts)
    anchors = anchor_scores(X, cache_dir)
    acc: dict[str, float] = {}
    acc["vader"] = metrics.accuracy(labels_for(vader, 0.05), gold)[0]
    acc["feedback_vader"] = metrics.accuracy(labels_for(feedback, 0.05), gold)[0]
    acc["vader_band0.3"] = metrics.accuracy(labels_for(vader, 0.3), gold)[0]
    acc["anchors"] = metrics.accuracy(labels_for(anchors, 0.2), gold)[0]
    acc["feedback_vader+anchors (product)"] = metrics.accuracy(labels_for(blend(feedback, anchors), 0.05), gold)[0]
    if data.ratings is not None:
        acc["rating_calibrated"] = rating_calibrated_accuracy(X, feedback, data.ratings, gold)
    return {"dataset": name, "n": metrics.accuracy(labels_for(vader, 0.05), gold)[1], "accuracy": acc}


def rating_calibrated_accuracy(X: np.ndarray, vader: np.ndarray, ratings: np.ndarray, gold: list, seed: int = 0) -> float:
    """Train the rating-calibrated scorer on a random half of the rows, accuracy on the other half."""
    from worker.pipeline.sentiment import calibrate_on_ratings

    rng = np.random.default_rng(seed)
    train = rng.random(len(ratings)) < 0.5
    r = ratings.copy()
    r[~train] = np.nan
    pred = calibrate_on_ratings(X, vader, r)["labels"]
    test = np.flatnonzero(~train)
    return metrics.accuracy(pred[test], [gold[i] for i in test])[0]
