"""Unit tests for the TopK SAE module, metrics, sizing rules and device selection."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sae import metrics
from sae.device import resolve_device
from sae.model import TopKSAE, normalized_mse
from sae.sizing import (
    DEFAULT_SAMPLE_BUDGET,
    default_batch_size,
    default_dead_steps,
    default_epochs,
    default_size,
)


def _model(d: int = 16, m: int = 32, k: int = 4, seed: int = 0) -> TopKSAE:
    return TopKSAE(d, m, k, generator=torch.Generator().manual_seed(seed))


def _x(n: int = 50, d: int = 16, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed))


# ----------------------------------------------------------------- model
def test_topk_code_is_sparse_and_nonnegative():
    model = _model()
    z = model.encode(_x())
    assert z.shape == (50, 32)
    assert ((z != 0).sum(1) <= 4).all()
    assert (z >= 0).all()


def test_encode_topk_matches_dense_code():
    model, x = _model(), _x()
    values, indices = model.encode_topk(x)
    assert values.shape == indices.shape == (50, 4)
    dense = torch.zeros(50, 32).scatter(1, indices, values)
    assert torch.equal(dense, model.encode(x))
    # The kept latents are the k largest pre-activations.
    pre = model.encode_pre(x)
    assert torch.allclose(pre.gather(1, indices).relu(), values)
    assert torch.allclose(pre.topk(4, dim=1).values.relu().sort(1).values, values.sort(1).values)
    assert torch.allclose(model.decode_topk(values, indices), model.decode(dense), atol=1e-5)


def test_forward_outputs_and_init_invariants():
    model, x = _model(), _x()
    out = model(x)
    assert out.x_hat.shape == x.shape and out.pre.shape == (50, 32)
    assert torch.allclose(out.x_hat, out.z @ model.W_dec.T + model.b_pre)
    assert torch.allclose(model.W_dec.norm(dim=0), torch.ones(32), atol=1e-6)
    assert torch.equal(model.W_enc, model.W_dec.T)
    assert torch.equal(model.b_lat, torch.zeros(32))


def test_invalid_sizes_raise():
    with pytest.raises(ValueError):
        TopKSAE(8, 4, 5)
    with pytest.raises(ValueError):
        TopKSAE(8, 4, 0)


def test_remove_parallel_grad_and_renormalise():
    model = _model()
    grad = torch.randn(16, 32, generator=torch.Generator().manual_seed(2))
    model.W_dec.grad = grad.clone()
    W = model.W_dec.detach().clone()
    model.remove_parallel_grad()
    g = model.W_dec.grad
    assert torch.allclose((g * W).sum(0), torch.zeros(32), atol=1e-5)
    # Only the parallel part was removed.
    assert torch.allclose(g, grad - (grad * W).sum(0) * W, atol=1e-5)
    with torch.no_grad():
        model.W_dec.sub_(0.5 * g)
    model.normalize_decoder()
    assert torch.allclose(model.W_dec.norm(dim=0), torch.ones(32), atol=1e-5)


def test_auxk_loss_only_trains_dead_latents():
    model, x = _model(), _x()
    out = model(x)
    residual = (x - out.x_hat).detach()
    none_dead = torch.zeros(32, dtype=torch.bool)
    assert model.auxk_loss(out.pre, none_dead, residual, 8).item() == 0.0

    dead = torch.zeros(32, dtype=torch.bool)
    dead[:10] = True
    loss = model.auxk_loss(out.pre, dead, residual, 8)
    assert torch.isfinite(loss) and loss.item() > 0
    loss.backward()
    assert model.W_dec.grad[:, 10:].abs().max() == 0
    assert model.W_enc.grad[10:].abs().max() == 0
    assert model.W_dec.grad[:, :10].abs().max() > 0


def test_auxk_loss_guards_against_zero_variance():
    model = _model()
    x = torch.ones(4, 16)
    out = model(x)
    dead = torch.ones(32, dtype=torch.bool)
    assert torch.isfinite(model.auxk_loss(out.pre, dead, torch.zeros(4, 16), 8))


def test_normalized_mse_is_batch_fvu():
    x, x_hat = _x(), _x(seed=3)
    expected = ((x_hat - x) ** 2).mean() / ((x - x.mean(0)) ** 2).mean()
    assert torch.allclose(normalized_mse(x_hat, x), expected)
    assert normalized_mse(x, x).item() == 0.0


def test_kmeans_init_finds_clusters_and_sets_median():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(6, 20)) * 3
    X = (centres[rng.integers(0, 6, 600)] + 0.05 * rng.normal(size=(600, 20))).astype(np.float32)
    model = TopKSAE(20, 6, 2)
    model.init_from_data(X, init="kmeans", random_state=0)
    median = np.median(X, axis=0)
    assert np.allclose(model.b_pre.detach().numpy(), median)
    target = centres - median
    target /= np.linalg.norm(target, axis=1, keepdims=True)
    cos = target @ model.W_dec.detach().numpy()
    assert (cos.max(axis=1) > 0.99).all()
    assert torch.allclose(model.W_dec.norm(dim=0), torch.ones(6), atol=1e-6)
    assert torch.equal(model.W_enc, model.W_dec.T)


def test_kmeans_init_with_more_latents_than_rows():
    X = np.random.default_rng(0).normal(size=(10, 8)).astype(np.float32)
    model = TopKSAE(8, 32, 4)
    model.init_from_data(X, init="kmeans", random_state=0)
    W = model.W_dec.detach()
    assert torch.isfinite(W).all()
    assert torch.allclose(W.norm(dim=0), torch.ones(32), atol=1e-6)


def test_init_rejects_bad_input():
    model = TopKSAE(4, 8, 2)
    with pytest.raises(ValueError):
        model.init_from_data(np.full((5, 4), np.nan, dtype=np.float32))
    with pytest.raises(ValueError):
        model.init_from_data(np.zeros((5, 4), dtype=np.float32), init="pca")


# --------------------------------------------------------------- metrics
def test_metrics_dense_and_topk_forms():
    z = np.array([[0.0, 1.0, 0.0, 2.0], [0.0, 0.5, 0.0, 0.0], [0.0, 0.0, 0.0, 3.0]], dtype=np.float32)
    values = np.array([[2.0, 1.0], [0.5, 0.0], [3.0, 0.0]], dtype=np.float32)
    indices = np.array([[3, 1], [1, 2], [3, 0]])
    assert metrics.l0(z) == pytest.approx(4 / 3)
    assert metrics.l0((values, indices)) == pytest.approx(4 / 3)
    freq = metrics.firing_frequency(z)
    np.testing.assert_allclose(freq, [0, 2 / 3, 0, 2 / 3])
    np.testing.assert_allclose(metrics.firing_frequency((values, indices), 4), freq)
    assert metrics.dead_fraction(z) == 0.5
    assert metrics.dead_fraction(freq) == 0.5
    assert metrics.dead_fraction((values, indices), 4) == 0.5
    summary = metrics.frequency_summary(freq)
    assert summary["n_dead"] == 2 and summary["max"] == pytest.approx(2 / 3)


def test_fvu():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(100, 5)) + 10.0
    assert metrics.fvu(x, x) == 0.0
    assert metrics.fvu(x, np.broadcast_to(x.mean(0), x.shape)) == pytest.approx(1.0)
    assert metrics.fvu(x, x + 0.1) == pytest.approx(0.01 * x.size / np.sum((x - x.mean(0)) ** 2))


# ---------------------------------------------------------------- sizing
@pytest.mark.parametrize(
    ("n_docs", "expected"),
    [
        (50, (16, 3)),  # floor
        (299, (16, 3)),
        (1_000, (42, 3)),  # one latent per 24 texts
        (3_080, (128, 3)),
        (8_000, (333, 3)),
        (10_000, (417, 3)),
        (29_999, (1024, 3)),
        (5_000_000, (1024, 3)),  # cap
    ],
)
def test_default_size(n_docs, expected):
    assert default_size(n_docs) == expected


def test_default_epochs_is_a_sample_budget():
    assert default_epochs(500) == 200  # 300 clamped to 200
    assert default_epochs(20_000) == round(DEFAULT_SAMPLE_BUDGET / 20_000)
    assert default_epochs(3_000) == 50
    assert default_epochs(5_000_000) == 3  # floor
    assert default_epochs(1_000, max_samples=50_000) == 50
    assert default_epochs(1_000, max_samples=10) == 1
    assert default_epochs(1_000, max_samples=10_000_000) == 10_000  # explicit budget is not capped


def test_default_batch_size_and_dead_steps():
    assert default_batch_size(100) == 32
    assert default_batch_size(540) == 64
    assert default_batch_size(10_000) == 256
    assert default_batch_size(100_000) == 512
    assert default_batch_size(10_000_000) == 4096
    # About one epoch of steps, so on small data "dead" means "fired on nothing this epoch".
    assert default_dead_steps(540, 64) == 9
    assert default_dead_steps(10_000_000, 4096) == 245


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    auto = resolve_device("auto")
    if torch.cuda.is_available():
        assert auto.type == "cuda"
    else:
        assert auto.type in ("mps", "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError):
            resolve_device("cuda")
