"""c-TF-IDF keywords and labels."""

import numpy as np
import scipy.sparse as sp

from worker.pipeline.keywords import class_tfidf, make_label, term_counts, top_keywords

TEXTS = [
    "the delivery was late and the parcel was lost",
    "late delivery again, parcel never came",
    "slow delivery, parcel arrived late",
    "the dress runs small, order a size up",
    "runs small in the waist, size up",
    "sizing runs small, size up for sure",
    "great price and good value",
]


def test_keywords_describe_their_class():
    counts, vocab = term_counts(TEXTS)
    membership = sp.csr_matrix(np.array([[1, 0]] * 3 + [[0, 1]] * 3 + [[0, 0]], dtype=np.float32))
    weights = class_tfidf(membership, counts)
    delivery = top_keywords(weights[0], vocab, 5)
    sizing = top_keywords(weights[1], vocab, 5)
    assert {"delivery", "parcel"} <= set(" ".join(delivery).split())
    assert "runs small" in sizing or "size" in sizing
    assert not set(delivery) & set(sizing)
    assert "the" not in delivery


def test_phrases_cover_their_words():
    vocab = np.array(["runs small", "runs", "small", "size"])
    assert top_keywords(np.array([3.0, 2.0, 1.0, 0.5]), vocab, 5) == ["runs small", "size"]
    assert top_keywords(np.array([1.0, 3.0, 2.0, 0.5]), vocab, 5) == ["runs", "small", "size"]


def test_label():
    assert make_label(["late delivery", "parcel", "tracking", "courier"]) == "late delivery, parcel, tracking"
    assert make_label([]) == "(no keywords)"
