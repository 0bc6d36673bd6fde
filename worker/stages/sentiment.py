"""Sentiment stage: a score in [-1, 1] and a label (negative / neutral / positive) per comment.

The offline default is VADER's compound score with its published ±0.05 cut-offs.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np

LABELS = ("negative", "neutral", "positive")
NEUTRAL_BAND = 0.05


@lru_cache(maxsize=1)
def _analyzer():
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


def score_texts(texts: Sequence[str]) -> np.ndarray:
    """VADER compound score per text, float32 in [-1, 1]."""
    analyzer = _analyzer()
    return np.array([analyzer.polarity_scores(t)["compound"] for t in texts], dtype=np.float32)


def label_scores(scores: np.ndarray, band: float = NEUTRAL_BAND) -> np.ndarray:
    """Labels for scores: below -band negative, above +band positive, else neutral."""
    scores = np.asarray(scores)
    return np.where(scores <= -band, "negative", np.where(scores >= band, "positive", "neutral")).astype(object)


def aggregate(scores: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Mean score and the share of each label over a set of comments."""
    n = max(1, len(scores))
    out = {"mean": float(np.mean(scores)) if len(scores) else 0.0}
    for name in LABELS:
        out[name] = float(np.sum(labels == name) / n)
    return out
