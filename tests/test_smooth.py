"""Smooth stage: nearest neighbours and neighbourhood averaging of embeddings before the SAE."""

from __future__ import annotations

import numpy as np
import pytest

from worker.pipeline.smooth import (
    MIN_REFERENCE,
    SmoothOptions,
    nearest_neighbors,
    reference_rows,
    smooth_embeddings,
)


def _unit(X: np.ndarray) -> np.ndarray:
    return (X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32)


def _clusters(n_per: int = 60, d: int = 16, spread: float = 0.6, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = _unit(rng.normal(size=(3, d)))
    labels = np.repeat(np.arange(3), n_per)
    return _unit(centres[labels] + spread * rng.normal(size=(len(labels), d)) / np.sqrt(d)), labels


def test_nearest_neighbors_are_the_exact_cosine_neighbours_without_oneself():
    X = _unit(np.random.default_rng(1).normal(size=(120, 8)))
    got = nearest_neighbors(X, 5)
    sims = X @ X.T
    np.fill_diagonal(sims, -np.inf)
    want = np.argsort(-sims, axis=1)[:, :5]
    assert got.shape == (120, 5)
    assert (np.sort(got, axis=1) == np.sort(want, axis=1)).all()
    assert not (got == np.arange(120)[:, None]).any()


def test_nearest_neighbors_within_a_reference_sample():
    X = _unit(np.random.default_rng(2).normal(size=(200, 8)))
    reference = np.arange(0, 200, 4)
    got = nearest_neighbors(X, 3, reference)
    assert np.isin(got, reference).all()
    assert not (got == np.arange(200)[:, None]).any()  # a row in the sample is not its own neighbour
    sims = X @ X[reference].T
    sims[reference, np.arange(len(reference))] = -np.inf
    assert (np.sort(got, axis=1) == np.sort(reference[np.argsort(-sims, axis=1)[:, :3]], axis=1)).all()


def test_fewer_rows_than_neighbours():
    X = _unit(np.random.default_rng(3).normal(size=(3, 4)))
    assert nearest_neighbors(X, 15).shape == (3, 2)
    assert nearest_neighbors(X[:1], 15).shape == (1, 0)


def test_reference_rows_exact_below_budget_sampled_above():
    options = SmoothOptions(pair_budget=10_000)
    assert reference_rows(100, options) is None
    sample = reference_rows(50_000, options)
    assert len(sample) == MIN_REFERENCE and len(np.unique(sample)) == MIN_REFERENCE
    assert (np.diff(sample) > 0).all()
    assert (sample == reference_rows(50_000, options)).all()  # seeded
    assert not (sample == reference_rows(50_000, SmoothOptions(pair_budget=10_000, seed=1))).all()
    big = SmoothOptions(pair_budget=50_000 * 5_000)
    assert len(reference_rows(50_000, big)) == 5_000


def test_smoothing_tightens_clusters_and_keeps_them_apart():
    X, labels = _clusters()
    Y = smooth_embeddings(X)
    assert Y.dtype == np.float32 and np.allclose(np.linalg.norm(Y, axis=1), 1, atol=1e-5)

    def within(Z: np.ndarray) -> float:
        return float(np.mean([(_unit(Z[labels == c].mean(0, keepdims=True)) @ Z[labels == c].T).mean()
                              for c in range(3)]))  # fmt: skip

    assert within(Y) > within(X) + 0.05
    centres = _unit(np.stack([X[labels == c].mean(0) for c in range(3)]))
    assert ((Y @ centres.T).argmax(axis=1) == labels).mean() >= ((X @ centres.T).argmax(axis=1) == labels).mean()


@pytest.mark.parametrize("options", [SmoothOptions(n_neighbors=0), SmoothOptions(weight=0.0)])
def test_smoothing_off_returns_unit_rows(options):
    X = np.random.default_rng(4).normal(size=(30, 6)).astype(np.float32) * 3
    assert np.allclose(smooth_embeddings(X, options), _unit(X), atol=1e-6)


def test_sampled_smoothing_matches_shapes_and_moves_rows():
    X, _ = _clusters(n_per=800)
    options = SmoothOptions(pair_budget=1_000_000)  # 2,400 rows: neighbours among a sample of MIN_REFERENCE rows
    assert len(reference_rows(len(X), options)) == MIN_REFERENCE < len(X)
    Y = smooth_embeddings(X, options)
    assert Y.shape == X.shape
    assert not np.allclose(X, Y)


def test_settings_defaults_are_the_stage_defaults(monkeypatch):
    from service.settings import Settings
    from worker.analysis_options import from_settings
    from worker.pipeline.analyze import AnalysisOptions

    for name in ("SMOOTHING_NEIGHBORS", "SMOOTHING_WEIGHT", "THEME_LEVELS", "EMBEDDING_BACKEND", "SEED"):
        monkeypatch.delenv(f"FEEDBACK_THEMES_{name}", raising=False)
    options, defaults = from_settings(Settings()), AnalysisOptions()
    smoothing = options.smoothing
    assert (smoothing.n_neighbors, smoothing.weight) == (SmoothOptions().n_neighbors, SmoothOptions().weight)
    assert (options.model, options.seed, options.tree, options.backend) == (
        defaults.model, defaults.seed, defaults.tree, defaults.backend)
    monkeypatch.setenv("FEEDBACK_THEMES_SMOOTHING_NEIGHBORS", "0")
    monkeypatch.setenv("FEEDBACK_THEMES_THEME_LEVELS", "false")
    options = from_settings(Settings())
    assert not options.smoothing.enabled and not options.tree.sub_themes


@pytest.mark.gpu
def test_neighbours_on_cuda_match_the_cpu():
    X = _unit(np.random.default_rng(5).normal(size=(3_000, 32)))
    cpu, cuda = nearest_neighbors(X, 10), nearest_neighbors(X, 10, device="cuda")
    same = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(cpu, cuda)])
    assert same >= 0.99, same
    assert np.allclose(smooth_embeddings(X, device="cuda"), smooth_embeddings(X), atol=1e-3)


def test_small_corpora_average_few_neighbours():
    X, _ = _clusters(n_per=20)  # 60 rows: 3 neighbours each (5 %), not 15 of 59
    mixed = 0.2 * X + 0.8 * X[nearest_neighbors(X, 3)].mean(axis=1)
    assert np.allclose(smooth_embeddings(X), _unit(mixed), atol=1e-5)
