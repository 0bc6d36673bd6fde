"""Sentiment stage: VADER scores, labels and aggregates."""

import numpy as np
import pytest

from worker.pipeline.sentiment import aggregate, label_scores, score_texts


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


def test_feedback_reading_of_vader():
    texts = [
        "@united please help, thanks",  # a handle and request words: no praise
        "@SouthwestAir my flight was delayed 3 hours and then cancelled",  # service failure
        "Lost my bag, still waiting for a refund",
        "The staff were lovely and the seat was great https://t.co/xyz",
    ]
    plain = score_texts(texts, feedback_lexicon=False)
    read = score_texts(texts)
    assert plain[0] > 0.5 and abs(read[0]) < 0.05
    assert read[1] < plain[1] - 0.2 and read[1] < -0.5
    assert read[2] < plain[2] and read[2] < -0.3
    assert read[3] > 0.5 and label_scores(read).tolist() == ["neutral", "negative", "negative", "positive"]


def test_handles_and_links_do_not_score():
    assert score_texts(["@united"])[0] == 0.0 and score_texts(["united we stand"], feedback_lexicon=False)[0] > 0
    assert score_texts(["see www.great-love.com and http://happy.example"])[0] == 0.0


def test_anchor_scores_and_blend():
    from worker.pipeline.sentiment import ANCHORS, POSITIVE_ANCHORS, anchor_scores, blend

    n = len(POSITIVE_ANCHORS)
    anchors = np.zeros((len(ANCHORS), 3), dtype=np.float32)
    anchors[:n, 0] = 1.0  # positive anchors point along x, negative ones along y
    anchors[n:, 1] = 1.0
    scores = anchor_scores(np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=np.float32), anchors)
    assert scores == pytest.approx([np.tanh(4), -np.tanh(4), 0.0], abs=1e-6)
    assert blend(np.array([0.8, 0.0]), np.array([-1.0, 0.4])).tolist() == pytest.approx([-0.1, 0.2])
