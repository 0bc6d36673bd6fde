"""The GPU path: fp16 embedding and SAE training under bf16 autocast + TF32 on CUDA agree with float32 on the CPU.

Tests marked ``gpu`` skip without CUDA (tests/conftest.py). The same checks run on the CPU with tiny sizes in
``test_checks_run_on_cpu`` (what ``bench/gpu.sh --cpu-dry-run`` relies on), so their logic is tested everywhere.
"""

from __future__ import annotations

import numpy as np
import pytest

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
TEXTS = [
    "The dress runs small, order a size up.",
    "Shipping took three weeks and support never answered.",
    "Soft fabric, lovely colour, I wear it every day.",
    "The zip broke after two washes.",
] * 8


def check_embedding(device: str) -> dict:
    """Embeddings on ``device`` (fp16 on CUDA) against fp32 on the CPU: same shape, unit rows, cosine ≥ 0.999."""
    import torch

    from worker.pipeline import embed, embed_models

    backend = embed_models.resolve_backend(MODEL, device, "auto" if device != "cpu" else "torch")
    assert backend.name == "torch"  # auto on an accelerator: torch (fp16 on CUDA)
    if device.startswith("cuda"):
        assert backend.tag == "torch-fp16"
        assert next(embed_models.load_model(MODEL, device).parameters()).dtype == torch.float16
    vectors = embed.encode(TEXTS, MODEL, device, backend=backend)
    reference = embed.encode(TEXTS, MODEL, "cpu", backend=embed_models.resolve_backend(MODEL, "cpu", "torch"))
    assert vectors.dtype == np.float32 and vectors.shape == reference.shape
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3)
    cosine = (vectors * reference).sum(1)
    assert cosine.min() >= 0.999, cosine.min()
    return {"cosine_min": float(cosine.min())}


def check_sae(device: str, n: int = 4000) -> dict:
    """An SAE fitted on ``device`` (bf16 autocast + TF32 on CUDA) reaches the FVU of a float32 CPU fit (± 0.05)."""
    import torch

    from sae import SparseAutoencoder
    from sae.device import autocast, fast_matmul

    dev = torch.device(device)
    if dev.type == "cuda":
        with autocast(dev):
            assert torch.get_autocast_dtype("cuda") == torch.bfloat16
        with fast_matmul(dev):
            assert torch.get_float32_matmul_precision() == "high"
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(32, 64)).astype(np.float32)
    X = centres[rng.integers(0, 32, n)] + 0.1 * rng.normal(size=(n, 64)).astype(np.float32)
    params = dict(n_latents=64, k=4, max_samples=60_000, patience=None, random_state=0)
    on_device = SparseAutoencoder(device=device, **params).fit(X)
    on_cpu = SparseAutoencoder(device="cpu", **params).fit(X)
    assert on_device.device_.type == dev.type
    fvu, fvu_cpu = on_device.metrics_["fvu"], on_cpu.metrics_["fvu"]
    assert np.isfinite(fvu) and abs(fvu - fvu_cpu) <= 0.05, (fvu, fvu_cpu)
    values, indices = on_device.encode_topk(X[:100])
    assert values.shape == (100, 4) and indices.max() < 64
    return {"fvu": fvu, "fvu_cpu": fvu_cpu}


@pytest.mark.gpu
def test_embedding_fp16_on_cuda():
    check_embedding("cuda")


@pytest.mark.gpu
def test_sae_bf16_autocast_on_cuda():
    check_sae("cuda", n=20_000)


@pytest.mark.gpu
def test_gpu_benchmark_runs():
    from bench.perf import gpu_benchmark

    result = gpu_benchmark("cuda", quick=True, log=lambda line: None)
    assert result["embed"]["cosine_to_cpu_fp32_min"] >= 0.999
    assert abs(result["sae"]["fvu"] - result["sae"]["fvu_cpu_fp32"]) <= 0.05


def test_checks_run_on_cpu():
    """The GPU checks' logic, on the CPU (tiny sizes): what ``bench/gpu.sh --cpu-dry-run`` runs."""
    assert check_embedding("cpu")["cosine_min"] >= 0.999
    check_sae("cpu", n=1000)
