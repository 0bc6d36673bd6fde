"""Sentiment stage: VADER scores, labels and aggregates."""

import numpy as np
import pytest

from worker.stages.sentiment import aggregate, label_scores, score_texts


def test_scores_follow_mood(sample_frame):
    frame = sample_frame
    scores = score_texts(frame["text"].tolist())
    assert scores.dtype == np.float32 and np.all((scores >= -1) & (scores <= 1))
    by_mood = {mood: scores[frame["mood"] == mood].mean() for mood in ("negative", "neutral", "positive")}
    assert by_mood["negative"] < by_mood["neutral"] < by_mood["positive"]
    labels = label_scores(scores)
    agreement = np.mean(labels[frame["mood"] != "neutral"] == frame["mood"][frame["mood"] != "neutral"].to_numpy())
    assert agreement > 0.5  # VADER misses domain phrases such as "runs small"; see the sentiment benchmark


def test_labels_and_aggregate():
    labels = label_scores(np.array([-0.5, -0.05, 0.0, 0.049, 0.05, 0.9]))
    assert labels.tolist() == ["negative", "negative", "neutral", "neutral", "positive", "positive"]
    agg = aggregate(np.array([-0.5, 0.0, 0.9, 0.8]), label_scores(np.array([-0.5, 0.0, 0.9, 0.8])))
    assert agg == pytest.approx({"mean": 0.3, "negative": 0.25, "neutral": 0.25, "positive": 0.5})
