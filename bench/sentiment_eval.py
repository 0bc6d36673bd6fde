"""Per-comment 3-class sentiment accuracy of offline scorers against airline / clothing / SemEval gold.

    python -m bench sentiment [--dataset airline|clothing|semeval|laptops|restaurants16|hotels] [--json OUT]

(``laptops``, ``restaurants16`` and ``hotels``: SemEval 2015/16 sets held out from the lexicon's design.)

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

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench import datasets, metrics
from worker.pipeline.sentiment import ANCHORS, label_scores

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
    rng = np.random.default_rng(seed)
    train = rng.random(len(ratings)) < 0.5
    r = ratings.copy()
    r[~train] = np.nan
    pred = calibrate_on_ratings(X, vader, r)["labels"]
    test = np.flatnonzero(~train)
    return metrics.accuracy(pred[test], [gold[i] for i in test])[0]


#: Rated rows needed (and at least two classes among them) before :func:`calibrate_on_ratings` trains a head.
MIN_RATED = 50


def rating_classes(ratings: np.ndarray) -> np.ndarray:
    """3-class labels from numeric ratings on their own scale: the bottom 40 % of the range negative, the top
    40 % positive, the middle neutral (1–5 stars: 1–2 negative, 3 neutral, 4–5 positive); NaN → ``None``."""
    r = np.asarray(ratings, dtype=float)
    out = np.full(len(r), None, dtype=object)
    ok = ~np.isnan(r)
    if not ok.any():
        return out
    lo, hi = float(np.nanmin(r)), float(np.nanmax(r))
    span = max(hi - lo, 1e-9)
    pos = (r[ok] - lo) / span
    out[ok] = np.where(pos < 0.4, "negative", np.where(pos > 0.6, "positive", "neutral"))
    return out


def calibrate_on_ratings(
    embeddings: np.ndarray, vader_scores: np.ndarray, ratings: np.ndarray, min_rated: int = MIN_RATED
) -> dict[str, np.ndarray | bool]:
    """Sentiment calibrated on an upload's own rating column.

    A logistic head on ``[embedding, VADER compound]`` is trained on the rows that have a rating (classes from
    :func:`rating_classes`) and scores every row: ``scores`` = P(positive) − P(negative) in [-1, 1], ``labels``
    the most probable class. With fewer than ``min_rated`` rated rows or a single class among them, the VADER
    scores and labels are returned unchanged (``calibrated`` False).
    """
    vader_scores = np.asarray(vader_scores, dtype=np.float32)
    classes = rating_classes(ratings)
    rated = np.flatnonzero(classes != None)  # noqa: E711
    if len(rated) < min_rated or len(set(classes[rated])) < 2:
        return {"scores": vader_scores, "labels": label_scores(vader_scores), "calibrated": False}
    from sklearn.linear_model import LogisticRegression

    features = np.hstack([np.asarray(embeddings, dtype=np.float32), vader_scores[:, None]])
    head = LogisticRegression(C=1.0, max_iter=1000).fit(features[rated], classes[rated].astype(str))
    proba = head.predict_proba(features)
    col = {c: i for i, c in enumerate(head.classes_)}
    p_pos = proba[:, col["positive"]] if "positive" in col else 0.0
    p_neg = proba[:, col["negative"]] if "negative" in col else 0.0
    scores = np.clip(p_pos - p_neg, -1, 1).astype(np.float32)
    labels = head.classes_[proba.argmax(axis=1)].astype(object)
    return {"scores": scores, "labels": labels, "calibrated": True}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="airline", help=f"one of {', '.join(SETS)} (default airline)")
    parser.add_argument("--cache-dir", type=Path, help="embedding cache folder (default data/bench-cache)")
    parser.add_argument("--json", dest="json_out", type=Path, help="write the figures as JSON here")
    args = parser.parse_args(argv)
    try:
        result = evaluate_dataset(args.dataset, args.cache_dir)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for name, value in result["accuracy"].items():
        print(f"{args.dataset} {name}: {value:.3f}")
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps(result, indent=1, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
