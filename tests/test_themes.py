"""Themes stage: per-feature membership, merging near-duplicates, descriptions and examples."""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from worker.pipeline.themes import (
    DocumentVectors,
    Theme,
    ThemeOptions,
    Units,
    build_themes,
    cohesion,
    describe_themes,
    feature_memberships,
    member_sentiment,
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
    themes = describe_themes(build_themes(acts, decoder, OPTIONS), docs, Units.of_documents(docs, vectors),
                             ThemeOptions(min_size=2, n_examples=3))  # fmt: skip
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
    themes = describe_themes(build_themes(acts, np.eye(2, 1), ThemeOptions(min_size=1, rel_threshold=0.1)), docs,
                             Units.of_documents(docs, unique))  # fmt: skip
    assert themes[0].examples == [0, 3]
    assert themes[0].rating is None


def test_cohesion_is_the_share_of_members_neighbours_inside():
    neighbours = np.array([[1, 2], [0, 2], [0, 3], [4, 2], [3, 2]])
    assert cohesion(np.array([0, 1, 2]), neighbours) == 5 / 6  # row 2's neighbour 3 is outside
    assert cohesion(np.array([0, 1, 1, 2]), neighbours) == 5 / 6  # repeated rows (duplicate texts) count once
    assert cohesion(np.array([3, 4]), neighbours) == 0.5
    assert cohesion(np.array([], dtype=int), neighbours) == 0.0
    assert cohesion(np.array([0]), np.zeros((5, 0), dtype=int)) == 0.0


# ---------------------------------------------------------------- themes over spans


def _span_fixture():
    """Three comments with two, one and two spans: span rows 0-1 → comment 0, 2 → 1, 3-4 → 2."""
    owner = np.array([0, 0, 1, 2, 2])
    dense = np.zeros((5, 2), dtype=np.float32)
    dense[[0, 2, 3], 0] = [0.9, 0.8, 1.0]  # feature 0: delivery, one span of each comment
    dense[[1, 4], 1] = [1.0, 0.7]  # feature 1: sizing, in comments 0 and 2
    dense[0, 1] = 0.6
    return sp.csr_matrix(dense), owner


def test_span_themes_lift_to_comments_with_their_highest_activation():
    acts, owner = _span_fixture()
    themes = build_themes(acts, np.eye(4, 2, dtype=np.float32), ThemeOptions(min_size=2), owner, n_docs=3)
    by_id = {t.id: t for t in themes}
    delivery, sizing = by_id[0], by_id[1]
    assert delivery.members.tolist() == [0, 1, 2] and np.allclose(delivery.activations, [0.9, 0.8, 1.0])
    assert delivery.spans.tolist() == [0, 2, 3] and delivery.span_count == 3
    # comment 0 carries sizing in two spans: once as a member, with its higher activation
    assert sizing.spans.tolist() == [0, 1, 4] and sizing.members.tolist() == [0, 2]
    assert np.allclose(sizing.activations, [1.0, 0.7]) and sizing.size == 2


def test_min_size_counts_comments_not_spans():
    # feature 0 fires in three spans of one comment: a theme of one comment, below a smallest size of two
    acts = sp.csr_matrix(np.array([[1.0], [0.9], [0.8], [0.0]], dtype=np.float32))
    owner = np.array([0, 0, 0, 1])
    assert build_themes(acts, np.eye(2, 1), ThemeOptions(min_size=2), owner, n_docs=2) == []
    assert len(build_themes(acts, np.eye(2, 1), ThemeOptions(min_size=2))) == 1  # as comments: three of them


def test_member_sentiment_weighs_the_spans_that_carry_the_theme_against_the_comment():
    theme = Theme(id=0, features=[0], members=np.array([0, 2]), activations=np.ones(2), spans=np.array([0, 1, 4]),
                  span_activations=np.ones(3))  # fmt: skip
    units = Units(np.array([0, 0, 1, 2, 2]), np.eye(5), ["a"] * 5, scores=np.array([-1.0, 0.0, 0.5, 0.9, 0.2]))
    comment = np.array([0.4, 0.0, -0.6])
    assert np.allclose(member_sentiment(theme, units, comment, 1.0), [-0.5, 0.2])  # the spans alone
    assert np.allclose(member_sentiment(theme, units, comment, 0.0), [0.4, -0.6])  # the comments alone
    assert np.allclose(member_sentiment(theme, units, comment, 0.5), [-0.05, -0.2])
    assert np.allclose(member_sentiment(theme, Units(units.doc, np.eye(5), ["a"] * 5), comment, 0.5), [0.4, -0.6])


def test_span_examples_show_one_span_per_comment_and_keywords_come_from_the_spans():
    acts, owner = _span_fixture()
    texts = ["parcel came late", "runs small size up", "late parcel delivery", "parcel delivery late again",
             "runs small in the waist"]  # fmt: skip
    docs = pd.DataFrame({"doc_id": ["a", "b", "c"], "text": ["whole a", "whole b", "whole c"],
                         "sentiment_score": [0.0, 0.0, 0.0], "sentiment_label": ["neutral"] * 3,
                         "rating": [np.nan] * 3})  # fmt: skip
    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(5, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    units = Units(owner, vectors, texts)
    themes = describe_themes(build_themes(acts, np.eye(4, 2, dtype=np.float32), ThemeOptions(min_size=2), owner, 3),
                             docs, units, ThemeOptions(min_size=2))  # fmt: skip
    sizing = next(t for t in themes if t.id == 1)
    assert sizing.examples == [1, 4]  # span 0 (comment 0's other span, lower activation) is left out
    assert "runs small" in sizing.keywords and "whole" not in " ".join(sizing.keywords)  # the spans', not comments'
    delivery = next(t for t in themes if t.id == 0)
    assert "parcel" in delivery.keywords and "runs small" not in delivery.keywords
