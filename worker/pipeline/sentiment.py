"""Sentiment stage: a score in [-1, 1] and a label (negative / neutral / positive) per comment.

The offline default is the mean of two scores, labelled with VADER's published ±0.05 cut-offs:

- VADER's compound score read for customer feedback: @handles and links are dropped before scoring (``@united``,
  ``@SouthwestAir`` and the like are no praise), request words (please, help, thanks, ...) carry no polarity, and
  words of service failure (delayed, cancelled, lost, refund, ...) are negative;
- the comment's embedding's similarity to positive minus negative anchor sentences (:func:`anchor_scores`).

Accuracy against plain VADER: ``python -m bench sentiment`` and ``python -m bench theme-sentiment``
(docs/benchmarks.md).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

LABELS = ("negative", "neutral", "positive")
NEUTRAL_BAND = 0.05

#: Social-media handles and links: names, not words (VADER's lexicon scores "united" +1.8, for one).
HANDLES_AND_LINKS = re.compile(r"(?<!\w)@\w+|https?://\S+|www\.\S+")
#: Words that in feedback ask for something ("please help", "thanks in advance") rather than praise: no polarity.
REQUEST_WORDS = ("please", "pls", "plz", "help", "thanks", "thank", "thx", "hope", "hoping")
#: Words of service failure VADER's general lexicon lacks or scores mildly, on its −4 … +4 scale.
SERVICE_FAILURE_WORDS = {
    "delayed": -1.5, "delay": -1.3, "delays": -1.3, "cancelled": -1.5, "canceled": -1.5, "cancellation": -1.2,
    "late": -1.0, "lost": -1.5, "missing": -1.3, "stuck": -1.5, "stranded": -2.0, "waiting": -0.8, "waited": -1.0,
    "hold": -0.5, "hours": -0.5, "refund": -1.0, "return": -0.6, "returned": -1.0, "returning": -1.0,
    "rude": -2.0, "broken": -1.8, "broke": -1.8, "overbooked": -1.5, "defective": -2.0, "unacceptable": -2.5,
    "never": -0.8, "still": -0.4,
}  # fmt: skip


#: Anchor sentences: a comment's anchor score is its cosine to the positive ones minus that to the negative ones.
POSITIVE_ANCHORS = ("I love it, it is great.", "Excellent, thank you so much!", "Very happy with this, wonderful.",
                    "Perfect, works well and I recommend it.", "Amazing service, best experience.")  # fmt: skip
NEGATIVE_ANCHORS = ("This is terrible, I hate it.", "Very disappointed, awful experience.",
                    "It broke and nobody helped, worst ever.", "Poor quality, I want a refund.",
                    "Delayed again and rude staff, unacceptable.")  # fmt: skip
ANCHORS = POSITIVE_ANCHORS + NEGATIVE_ANCHORS
#: Weight of the anchor score in a comment's score (the rest is VADER's): the plain mean.
ANCHOR_WEIGHT = 0.5


def anchor_scores(vectors: np.ndarray, anchor_vectors: np.ndarray) -> np.ndarray:
    """tanh(4 × (mean cosine to the positive anchors − mean cosine to the negative ones)) per unit row of ``vectors``;
    ``anchor_vectors``: the embeddings of :data:`ANCHORS`, in that order, from the same model."""
    n = len(POSITIVE_ANCHORS)
    anchor_vectors = np.asarray(anchor_vectors, dtype=np.float32)
    direction = anchor_vectors[:n].mean(axis=0) - anchor_vectors[n:].mean(axis=0)
    return np.tanh(4 * (np.asarray(vectors, dtype=np.float32) @ direction)).astype(np.float32)


def blend(vader_scores: np.ndarray, anchors: np.ndarray, weight: float = ANCHOR_WEIGHT) -> np.ndarray:
    """A comment's score from its VADER and anchor scores, float32 in [-1, 1]."""
    return np.clip((1 - weight) * np.asarray(vader_scores) + weight * np.asarray(anchors), -1, 1).astype(np.float32)


@lru_cache(maxsize=2)
def _analyzer(feedback_lexicon: bool = True):
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    analyzer = SentimentIntensityAnalyzer()
    if feedback_lexicon:
        for word in REQUEST_WORDS:
            analyzer.lexicon.pop(word, None)
        analyzer.lexicon.update(SERVICE_FAILURE_WORDS)
    return analyzer


def score_texts(texts: Sequence[str], feedback_lexicon: bool = True) -> np.ndarray:
    """VADER compound score per text, float32 in [-1, 1]: with ``feedback_lexicon`` (the default) read for customer
    feedback as the module says, else plain VADER on the text as it is."""
    analyzer = _analyzer(feedback_lexicon)
    if feedback_lexicon:
        texts = [HANDLES_AND_LINKS.sub(" ", t) for t in texts]
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
