"""Impact: a joint ridge regression of the rating on all themes, with a bootstrap interval."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.linear_model import Ridge

from worker.pipeline.impact import ImpactOptions, ridge_fit, theme_impact


def synthetic(n: int = 1500, seed: int = 1) -> tuple[sp.csr_matrix, np.ndarray]:
    """Theme 0 costs 1.5 stars, theme 1 adds 1.0; theme 2 has no effect but nearly always comes with theme 0."""
    rng = np.random.default_rng(seed)
    a = rng.random(n) < 0.3
    b = rng.random(n) < 0.3
    c = a & (rng.random(n) < 0.8) | (rng.random(n) < 0.05)
    strength = rng.uniform(0.5, 1.0, size=(n, 3))
    x = np.column_stack([a, b, c]) * strength
    y = 3.5 - 1.5 * x[:, 0] + 1.0 * x[:, 1] + rng.normal(0, 0.5, n)
    return sp.csr_matrix(x), y


def test_recovers_effects_where_the_shortcut_is_fooled():
    x, y = synthetic()
    result = theme_impact(x, y)
    truth = [-1.5, 1.0, 0.0]
    for estimate, true in zip(result, truth):
        assert estimate["low"] <= true <= estimate["high"], (estimate, true)
        assert estimate["low"] <= estimate["coef"] <= estimate["high"]
        assert abs(estimate["coef"] - true) < 0.25
    assert result[0]["high"] < 0 < result[1]["low"]
    # "remove the theme's comments" would call theme 2 harmful: its members' mean is far below the others'
    members = x[:, 2].toarray().ravel() > 0
    assert y[members].mean() - y[~members].mean() < -0.7


def test_matches_scikit_learn_ridge_with_sample_weights():
    x, y = synthetic(300)
    weights = np.random.default_rng(0).integers(0, 3, len(y)).astype(float)
    ours = ridge_fit(x, y, alpha=2.0, weights=weights)
    reference = Ridge(alpha=2.0).fit(x.toarray(), y, sample_weight=weights).coef_
    np.testing.assert_allclose(ours, reference, atol=1e-8)


def test_unrated_comments_are_left_out_and_too_few_ratings_give_none():
    x, y = synthetic(600)
    with_gaps = y.copy()
    with_gaps[::3] = np.nan
    assert all(r is not None and r["n"] > 0 for r in theme_impact(x, with_gaps))
    assert theme_impact(x, np.full(len(y), np.nan)) == [None, None, None]
    assert theme_impact(x, np.full(len(y), 4.0)) == [None, None, None]
    few = np.full(len(y), np.nan)
    few[:10] = y[:10]
    assert theme_impact(x, few, ImpactOptions(min_rated=20)) == [None, None, None]


def test_deterministic_for_a_seed_and_scale_free():
    x, y = synthetic(400)
    assert theme_impact(x, y) == theme_impact(x, y)
    scaled = theme_impact(x @ sp.diags([10.0, 3.0, 0.5]), y)  # columns are scaled by their maximum anyway
    for a, b in zip(theme_impact(x, y), scaled):
        assert a["coef"] == pytest.approx(b["coef"], abs=1e-6)
