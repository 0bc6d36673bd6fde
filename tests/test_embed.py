"""Embed stage: backends, cache keys per backend, cache hits and misses, the export made once (real model, tiny input)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from worker.pipeline import embed, embed_cache, embed_export, embed_models
from worker.pipeline.embed_models import Backend, resolve_backend

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
TEXTS = ["The dress runs small.", "Shipping took three weeks and nobody answered my emails.", "Love it!"]
HAS_OPENVINO = importlib.util.find_spec("openvino") is not None
HAS_ORT = importlib.util.find_spec("onnxruntime") is not None


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """A folder of its own for the exported models."""
    return tmp_path_factory.mktemp("embed-models")


@pytest.fixture(scope="module")
def reference(data_dir) -> np.ndarray:
    return embed.encode(TEXTS, MODEL, backend="torch")


def test_default_backend_is_auto_and_resolves_by_device():
    from service.settings import Settings

    assert Settings().embedding_backend == "auto"
    cpu = resolve_backend(MODEL, "cpu")
    assert cpu.name == ("openvino" if HAS_OPENVINO else "torch")
    assert resolve_backend(MODEL, "cuda").name == "torch"  # accelerators: torch (fp16 on CUDA)
    assert resolve_backend(MODEL, "cpu", "openvino", "int8").quantize == "int8"
    assert resolve_backend(MODEL, "cpu", "torch", "int8").quantize == "none"
    with pytest.raises(ValueError):
        resolve_backend(MODEL, "cpu", "tensorrt")
    with pytest.raises(ValueError):
        resolve_backend(MODEL, "cpu", "onnx", "int4")


def test_settings_choose_the_backend(monkeypatch, tmp_path):
    from service.settings import Settings
    from worker.analysis_options import from_settings

    monkeypatch.setenv("FEEDBACK_THEMES_EMBEDDING_BACKEND", "torch")
    monkeypatch.setenv("FEEDBACK_THEMES_EMBEDDING_MAX_SEQ_LENGTH", "128")
    monkeypatch.setenv("FEEDBACK_THEMES_DATA_DIR", str(tmp_path))
    backend = from_settings(Settings(), device="cpu").embedding_backend()
    assert (backend.name, backend.max_seq_length) == ("torch", 128)
    assert backend.export_dir == str(tmp_path / "cache" / "models")


def test_unsupported_models_fall_back_to_torch(tmp_path):
    assert embed_models.fast_supported(MODEL)
    assert not embed_models.fast_supported(str(tmp_path))  # no config: not a model the export knows
    assert resolve_backend(str(tmp_path), "cpu", "openvino").name == "torch"


def test_cache_key_includes_backend():
    ids = {
        embed_cache.embedding_id(MODEL, Backend("torch")),
        embed_cache.embedding_id(MODEL, Backend("torch", device="cuda")),
        embed_cache.embedding_id(MODEL, Backend("openvino")),
        embed_cache.embedding_id(MODEL, Backend("openvino", "int8")),
        embed_cache.embedding_id(MODEL, Backend("onnx", "int8")),
        embed_cache.embedding_id(MODEL, Backend("openvino", max_seq_length=128)),
    }
    assert len(ids) == 6
    assert embed_cache.embedding_id(MODEL, Backend("torch")) == MODEL  # plain fp32: caches from before stay valid
    assert embed_cache.text_key(embed_cache.embedding_id(MODEL, Backend("openvino")), "x") != embed_cache.text_key(MODEL, "x")


def test_cache_hit_and_miss(data_dir, reference, tmp_path):
    cache = embed_cache.EmbeddingCache(tmp_path)
    try:
        first, n1 = embed.embed_texts(TEXTS, MODEL, cache=cache, backend="torch")
        again, n2 = embed.embed_texts(TEXTS + ["New text."], MODEL, cache=cache, backend="torch")
        assert (n1, n2) == (3, 1)
        np.testing.assert_array_equal(again[:3], first)
        np.testing.assert_allclose(first, reference, atol=1e-5)
        if HAS_OPENVINO:  # another backend: its own keys, so encoded again
            fast, n3 = embed.embed_texts(TEXTS, MODEL, cache=cache, backend="openvino")
            assert n3 == 3
            assert ((fast * first).sum(1) > 0.999).all()
            _, n4 = embed.embed_texts(TEXTS, MODEL, cache=cache, backend="openvino")
            assert n4 == 0
    finally:
        cache.close()
    empty, n = embed.embed_texts([], MODEL, backend="torch")
    assert empty.shape[0] == 0 and n == 0


def test_unique_texts():
    unique, inverse = embed.unique_texts(["a", "b", "a", "c", "b"])
    assert unique == ["a", "b", "c"]
    assert inverse.tolist() == [0, 1, 0, 2, 1]


@pytest.mark.skipif(not HAS_OPENVINO, reason="openvino not installed")
def test_openvino_matches_torch_and_exports_once(data_dir, reference):
    backend = resolve_backend(MODEL, "cpu", "openvino", export_dir=data_dir)
    vectors = embed.encode(TEXTS, MODEL, backend=backend)
    assert vectors.dtype == np.float32 and vectors.shape == reference.shape
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert ((vectors * reference).sum(1) > 0.999).all()
    path = embed_export.exported_model(MODEL, "openvino", data_dir)
    assert path.is_relative_to(data_dir) and path.with_suffix(".bin").exists()
    stamp = path.stat().st_mtime_ns
    assert embed_export.exported_model(MODEL, "openvino", data_dir) == path and path.stat().st_mtime_ns == stamp
    # order does not matter (batches are sorted by length inside)
    np.testing.assert_allclose(embed.encode(TEXTS[::-1], MODEL, backend=backend)[::-1], vectors, atol=1e-5)


@pytest.mark.skipif(not HAS_ORT, reason="onnxruntime not installed")
def test_onnx_fp32_and_int8(data_dir, reference):
    fp32 = embed.encode(TEXTS, MODEL, backend=resolve_backend(MODEL, "cpu", "onnx", export_dir=data_dir))
    assert ((fp32 * reference).sum(1) > 0.9999).all()
    int8 = embed.encode(TEXTS, MODEL, backend=resolve_backend(MODEL, "cpu", "onnx", "int8", export_dir=data_dir))
    cosine = (int8 * reference).sum(1)
    assert cosine.min() > 0.9 and cosine.mean() > 0.96  # int8: close, not equal (very short texts suffer most)


def test_max_seq_length_truncates(data_dir, reference):
    long = [" ".join(["fabric"] * 200) + " but the zip broke"]
    full = embed.encode(long, MODEL, backend="torch")
    short = embed.encode(long, MODEL, backend=Backend("torch", max_seq_length=16))
    assert float((full * short).sum()) < 0.9999
    np.testing.assert_allclose(embed.encode(TEXTS, MODEL, backend="torch"), reference, atol=1e-6)  # restored
