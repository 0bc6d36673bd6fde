"""Training behaviour of the SparseAutoencoder estimator on small synthetic data."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sae import SparseAutoencoder, metrics
from sae.trainer import NotFittedError, _generator


def synthetic(n=600, d=64, n_dirs=24, noise=0.05, max_active=3, seed=0):
    """Sparse non-negative combinations of ``n_dirs`` unit directions plus noise.

    Returns ``(X, directions, primary)`` where ``primary[i]`` is the direction with the
    largest coefficient in row ``i`` (its "cluster").
    """
    rng = np.random.default_rng(seed)
    D = rng.normal(size=(n_dirs, d))
    D /= np.linalg.norm(D, axis=1, keepdims=True)
    X = np.zeros((n, d))
    primary = np.zeros(n, dtype=int)
    for i in range(n):
        idx = rng.choice(n_dirs, rng.integers(1, max_active + 1), replace=False)
        coef = rng.uniform(0.5, 1.5, len(idx))
        coef[0] = rng.uniform(1.5, 2.0)
        X[i] = coef @ D[idx]
        primary[i] = idx[0]
    X += noise * rng.normal(size=X.shape)
    return X.astype(np.float32), D.astype(np.float32), primary


@pytest.fixture(scope="module")
def data():
    return synthetic()


@pytest.fixture(scope="module")
def fitted(data):
    X, _, _ = data
    return SparseAutoencoder(32, 4, random_state=0).fit(X)


def test_fit_learns_a_good_sparse_code(fitted):
    history = fitted.history_
    assert history[-1]["train_loss"] < 0.5 * history[0]["train_loss"]
    assert min(h["val_loss"] for h in history) < history[0]["val_loss"]
    m = fitted.metrics_
    assert m["fvu"] < 0.3
    assert m["dead_fraction"] <= 0.05
    assert m["l0"] <= 4
    assert fitted.n_features_in_ == 64 and fitted.n_latents_ == 32 and fitted.k_ == 4
    assert fitted.firing_frequency_.shape == (32,)
    assert fitted.n_steps_ > 0
    assert fitted.device_ == torch.device("cpu") or fitted.device_.type in ("cuda", "mps")


def test_decoder_columns_stay_unit_norm(fitted):
    norms = fitted.model_.W_dec.detach().norm(dim=0)
    assert torch.allclose(norms, torch.ones_like(norms), atol=1e-5)


def test_inference_outputs_agree(fitted, data):
    X, _, _ = data
    Z = fitted.transform(X)
    assert Z.shape == (600, 32) and Z.dtype == np.float32
    assert ((Z > 0).sum(1) <= 4).all() and (Z >= 0).all()
    values, indices = fitted.encode_topk(X)
    assert values.shape == indices.shape == (600, 4)
    assert values.dtype == np.float32 and indices.dtype == np.int64
    assert (np.diff(values, axis=1) <= 0).all()  # descending
    dense = np.zeros_like(Z)
    np.put_along_axis(dense, indices, values, axis=1)
    np.testing.assert_array_equal(dense, Z)
    X_hat = fitted.reconstruct(X)
    np.testing.assert_allclose(fitted.inverse_transform(Z), X_hat, atol=1e-5)
    score = fitted.score(X)
    assert score["fvu"] == pytest.approx(metrics.fvu(X, X_hat), rel=1e-4)
    assert score["l0"] == pytest.approx(metrics.l0(Z))
    assert score["dead_fraction"] == metrics.dead_fraction(Z)
    assert score["fvu"] == pytest.approx(fitted.metrics_["fvu"], rel=1e-6)
    np.testing.assert_allclose(fitted.firing_frequency_, metrics.firing_frequency(Z))


def test_input_validation(fitted):
    with pytest.raises(ValueError):
        fitted.transform(np.zeros((3, 5), dtype=np.float32))
    with pytest.raises(NotFittedError):
        SparseAutoencoder().transform(np.zeros((3, 5), dtype=np.float32))
    with pytest.raises(ValueError):
        SparseAutoencoder().fit(np.zeros(5, dtype=np.float32))


def test_same_seed_same_weights_different_seed_differs(data):
    X = data[0][:300]
    a = SparseAutoencoder(16, 4, epochs=5, random_state=1).fit(X)
    b = SparseAutoencoder(16, 4, epochs=5, random_state=1).fit(X)
    c = SparseAutoencoder(16, 4, epochs=5, random_state=2).fit(X)
    for name, tensor in a.model_.state_dict().items():
        assert torch.equal(tensor, b.model_.state_dict()[name]), name
    assert not torch.equal(a.model_.W_dec, c.model_.W_dec)
    assert [h["train_loss"] for h in a.history_] == [h["train_loss"] for h in b.history_]


def test_defaults_from_corpus_size_and_progress(data):
    X = data[0][:250]
    seen: list[float] = []
    sae = SparseAutoencoder(max_samples=5_000, progress=seen.append).fit(X)
    assert (sae.n_latents_, sae.k_) == (16, 3)  # default_size(250)
    assert sae.epochs_ == round(5_000 / 225)  # 225 training rows after the 10 % split
    assert seen[0] == 0.0 and seen[-1] == 1.0
    assert all(0.0 <= p <= 1.0 for p in seen)
    assert seen == sorted(seen)


def test_progress_exception_aborts(data):
    def cancel(fraction: float) -> None:
        if fraction > 0.1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        SparseAutoencoder(16, 4, epochs=50, progress=cancel).fit(data[0][:200])


def test_early_stopping_restores_best_state(data):
    X = data[0]
    sae = SparseAutoencoder(32, 4, epochs=400, patience=3, lr=3e-3, random_state=0).fit(X)
    val_losses = [h["val_loss"] for h in sae.history_]
    assert len(val_losses) < 400
    assert sae.best_epoch_ == int(np.argmin(val_losses)) + 1
    assert len(val_losses) == sae.best_epoch_ + 3
    # The restored weights are those of the best epoch: recompute its validation FVU.
    _, val_idx = sae._split(len(X), _generator(0))
    assert sae.score(X[val_idx.numpy()])["fvu"] == pytest.approx(min(val_losses), rel=1e-5)


def test_memmap_input(tmp_path, data):
    X = data[0][:200]
    path = tmp_path / "x.f32"
    mm = np.memmap(path, dtype=np.float32, mode="w+", shape=X.shape)
    mm[:] = X
    mm.flush()
    ro = np.memmap(path, dtype=np.float32, mode="r", shape=X.shape)
    a = SparseAutoencoder(16, 4, epochs=5).fit(ro)
    b = SparseAutoencoder(16, 4, epochs=5).fit(X)
    np.testing.assert_array_equal(a.transform(ro), b.transform(X))


def test_partial_fit_keeps_feature_indices(data):
    X, _, primary = data
    sae = SparseAutoencoder(32, 4, random_state=0).fit(X[:300])
    W_before = sae.model_.W_dec.detach().clone()
    alive = sae.firing_frequency_ > 0
    Z = sae.transform(X)
    top_before = np.array([Z[primary == j].mean(0).argmax() for j in range(24)])
    steps_before = sae.n_steps_

    sae.partial_fit(X)
    assert sae.n_steps_ > steps_before
    assert sae.history_[-1]["phase"] == "partial_fit"
    assert sae.n_latents_ == 36 and sae.model_.W_dec.shape[1] == 36  # default_size(600) is 32: grown by an eighth
    cos = (W_before * sae.model_.W_dec.detach()[:, :32]).sum(0).numpy()
    assert np.mean(cos[alive] >= 0.9) >= 0.75
    Z = sae.transform(X)
    top_after = np.array([Z[primary == j].mean(0).argmax() for j in range(24)])
    assert np.mean(top_before == top_after) >= 0.8
    assert sae.metrics_["fvu"] < 0.3


def test_partial_fit_grows_latents_for_new_concepts(data):
    X, _, primary = data
    old = primary < 18  # six of the 24 concepts are absent from the first fit
    sae = SparseAutoencoder(24, 2, random_state=0).fit(X[old])
    sae.partial_fit(X, grow=8)
    assert sae.n_latents_ == 32
    Z = sae.transform(X)
    top_new = np.array([Z[primary == j].mean(0).argmax() for j in range(18, 24)])
    assert np.mean(top_new >= 24) >= 0.5  # most new concepts are taken by the appended latents
    assert sae.score(X)["fvu"] < 0.3
    sae.partial_fit(X, grow=0)
    assert sae.n_latents_ == 32


def test_default_growth():
    from sae.sizing import default_growth

    assert default_growth(1000, 16) == 26  # up to the size the grown corpus calls for (42)
    assert default_growth(1000, 40) == 5  # at least an eighth of the current size
    assert default_growth(10_000, 64) == 353  # default_size(10_000) is 417
    assert default_growth(1000, 84) == 0  # never past twice the size the corpus calls for


def test_partial_fit_on_unfitted_estimator_fits(data):
    sae = SparseAutoencoder(16, 4, epochs=3).partial_fit(data[0][:200])
    assert sae.n_steps_ > 0 and len(sae.history_) == 3
    with pytest.raises(ValueError):
        sae.partial_fit(np.zeros((10, 7), dtype=np.float32))


def test_auxk_reduces_dead_latents():
    # 64 tight clusters, 64 randomly initialised latents, k=1: without AuxK about a
    # quarter of the latents never win a row; AuxK revives nearly all of them.
    X, _, _ = synthetic(n=600, d=128, n_dirs=64, max_active=1, noise=0.02)
    common = {"n_latents": 64, "k": 1, "init": "random", "epochs": 60, "random_state": 0}
    without = SparseAutoencoder(aux_coef=0.0, **common).fit(X).metrics_
    with_aux = SparseAutoencoder(**common).fit(X).metrics_
    assert without["dead_fraction"] >= 0.15
    assert with_aux["dead_fraction"] <= without["dead_fraction"] - 0.1
    assert with_aux["fvu"] < without["fvu"]


@pytest.mark.gpu
def test_cuda_training_matches_cpu_inference(data, tmp_path):
    X = data[0]
    sae = SparseAutoencoder(32, 4, device="cuda", random_state=0).fit(X)
    assert sae.device_.type == "cuda"
    assert sae.metrics_["fvu"] < 0.3 and sae.metrics_["l0"] <= 4
    norms = sae.model_.W_dec.detach().norm(dim=0)
    assert torch.allclose(norms, torch.ones_like(norms), atol=1e-5)
    sae.save(tmp_path)
    cpu = SparseAutoencoder.load(tmp_path, device="cpu")
    np.testing.assert_allclose(cpu.reconstruct(X), sae.reconstruct(X), atol=1e-3)


def test_warm_up_pays_the_first_fits_import_costs_and_workers_run_it():
    import subprocess
    import sys

    code = ("import sys; from sae.trainer import warm_up; assert 'torch._dynamo' not in sys.modules; warm_up(); "
            "assert 'torch._dynamo' in sys.modules and 'sklearn.cluster' in sys.modules")  # fmt: skip
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    from celery.signals import worker_process_init

    from worker.tasks import warm_up_pool_process

    assert any(r() is warm_up_pool_process for _, r in worker_process_init.receivers)
