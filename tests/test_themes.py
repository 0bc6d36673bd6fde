"""Themes stage: per-feature membership, merging near-duplicates, descriptions and examples."""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from worker.pipeline.themes import (
    DocumentVectors,
    ThemeOptions,
    build_themes,
    cohesion,
    describe_themes,
    feature_memberships,
)
from worker.pipeline.train import activation_matrix

OPTIONS = ThemeOptions(min_size=2)


def test_activation_matrix_from_topk():
    values = np.array([[0.9, 0.0], [0.5, 0.2]], dtype=np.float32)
    indices = np.array([[3, 1], [0, 3]])
    matrix = activation_matrix(values, indices, 4)
    assert matrix.shape == (2, 4) and matrix.nnz == 3
    assert matrix[1, 3] == np.float32(0.2) and matrix[0, 1] == 0


def test_membership_uses_per_feature_threshold():
    acts = sp.csr_matrix(np.array([[1.0, 0.1], [0.6, 0.09], [0.4, 0.0], [0.0, 0.02]], dtype=np.float32))
    members = feature_memberships(acts, 0.5).toarray()
    assert (members[:, 0] > 0).tolist() == [True, True, False, False]
    assert (members[:, 1] > 0).tolist() == [True, True, False, False]


def _two_clusters() -> tuple[sp.csr_matrix, np.ndarray]:
    """Docs 0-3 fire feature 0, docs 4-7 feature 2 and its near-copy 5; feature 1 fires once."""
    dense = np.zeros((9, 6), dtype=np.float32)
    dense[0:4, 0] = [1.0, 0.9, 0.8, 0.7]
    dense[4:8, 2] = [1.0, 0.8, 0.9, 0.6]
    dense[4:8, 5] = [0.5, 0.9, 0.7, 0.8]
    dense[8, 1] = 1.0
    decoder = np.eye(8, 6, dtype=np.float32)
    decoder[:, 5] = decoder[:, 2] * 0.99 + decoder[:, 4] * 0.01
    return sp.csr_matrix(dense), decoder


def test_build_themes_merges_and_drops_small():
    acts, decoder = _two_clusters()
    themes = build_themes(acts, decoder, OPTIONS)
    assert [(t.id, t.features) for t in themes] == [(0, [0]), (2, [2, 5])]
    assert themes[1].members.tolist() == [4, 5, 6, 7]
    assert np.allclose(themes[1].activations, [1.0, 0.9, 0.9, 0.8])


def test_describe_themes_fills_every_field():
    acts, decoder = _two_clusters()
    texts = ["late delivery, parcel lost", "delivery was late", "parcel delivery slow", "late parcel delivery",
             "runs small, size up", "the dress runs small", "size up, it runs small", "runs small in the waist",
             "nice colour"]  # fmt: skip
    docs = pd.DataFrame({
        "doc_id": [f"d{i}" for i in range(9)], "text": texts,
        "sentiment_score": [-0.5, -0.4, -0.3, -0.6, 0.1, 0.0, -0.1, 0.2, 0.9],
        "sentiment_label": ["negative"] * 4 + ["positive", "neutral", "negative", "positive", "positive"],
        "rating": [1, 2, np.nan, 1, 3, 4, 3, 4, 5],
    })  # fmt: skip
    rng = np.random.default_rng(0)
    unique = rng.normal(size=(8, 16)).astype(np.float32)
    unique /= np.linalg.norm(unique, axis=1, keepdims=True)
    vectors = DocumentVectors(unique, np.array([0, 1, 2, 3, 4, 5, 6, 7, 7]))
    themes = describe_themes(build_themes(acts, decoder, OPTIONS), docs, vectors, ThemeOptions(min_size=2, n_examples=3))
    first, second = themes
    assert "delivery" in first.label and "runs small" in second.keywords
    assert first.sentiment["negative"] == 1.0 and first.sentiment["mean"] < 0
    assert first.rating == {"mean": 4 / 3, "count": 3}
    assert first.examples == [0, 1, 2]  # by activation, all distinct
    assert second.examples[0] == 4


def test_examples_skip_near_duplicates():
    acts = sp.csr_matrix(np.array([[1.0], [0.9], [0.8], [0.7]], dtype=np.float32))
    docs = pd.DataFrame({"doc_id": list("abcd"), "text": ["Same text", "same text", "near copy", "other"],
                         "sentiment_score": [0.0] * 4, "sentiment_label": ["neutral"] * 4, "rating": [np.nan] * 4})
    unique = np.array([[1, 0], [1, 0], [0.99995, 0.01], [0, 1]], dtype=np.float32)
    themes = describe_themes(build_themes(acts, np.eye(2, 1), ThemeOptions(min_size=1, rel_threshold=0.1)), docs, unique)
    assert themes[0].examples == [0, 3]
    assert themes[0].rating is None


def test_group_themes_numbers_and_describes_groups_of_close_themes():
    from worker.pipeline.themes import Theme, group_themes

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=16), rng.normal(size=16)
    # themes 10-13 point near a (delivery), 20-23 near b (sizing); each has 3 members of its own
    decoder = np.zeros((16, 24))
    for f in range(10, 14):
        decoder[:, f] = a + 0.05 * rng.normal(size=16)
    for f in range(20, 24):
        decoder[:, f] = b + 0.05 * rng.normal(size=16)
    texts = [f"late parcel delivery {i}" for i in range(12)] + [f"runs small size up {i}" for i in range(12)]
    docs = pd.DataFrame({"doc_id": [str(i) for i in range(24)], "text": texts, "sentiment_score": 0.0,
                         "sentiment_label": "neutral", "rating": np.nan})  # fmt: skip
    ids = [10, 11, 12, 13, 20, 21, 22, 23]
    themes = [Theme(id=f, features=[f], members=np.arange(3 * i, 3 * i + 3), activations=np.full(3, 0.5 + 0.01 * i))
              for i, f in enumerate(ids)]  # fmt: skip
    embeddings = np.eye(24, dtype=np.float32)
    groups = group_themes(themes, decoder, docs, embeddings, ThemeOptions(parent_levels=(4,)))
    assert sorted(g.id for g in groups) == [1, 2]
    by_themes = {tuple(g.themes): g for g in groups}
    assert set(by_themes) == {(10, 11, 12, 13), (20, 21, 22, 23)}
    delivery, sizing = by_themes[(10, 11, 12, 13)], by_themes[(20, 21, 22, 23)]
    assert delivery.members.tolist() == list(range(12)) and sizing.members.tolist() == list(range(12, 24))
    assert delivery.level == 4 and "delivery" in delivery.keywords and any("small" in k for k in sizing.keywords)
    assert delivery.label and len(delivery.examples) == 5 and delivery.sentiment["neutral"] == 1.0
    # fewer than four themes: no groups
    assert group_themes(themes[:3], decoder, docs, embeddings) == []


def test_cohesion_is_the_share_of_members_neighbours_inside():
    neighbours = np.array([[1, 2], [0, 2], [0, 3], [4, 2], [3, 2]])
    assert cohesion(np.array([0, 1, 2]), neighbours) == 5 / 6  # row 2's neighbour 3 is outside
    assert cohesion(np.array([0, 1, 1, 2]), neighbours) == 5 / 6  # repeated rows (duplicate texts) count once
    assert cohesion(np.array([3, 4]), neighbours) == 0.5
    assert cohesion(np.array([], dtype=int), neighbours) == 0.0
    assert cohesion(np.array([0]), np.zeros((5, 0), dtype=int)) == 0.0
