"""Embed stage: backends, cache keys per backend, cache hits and misses, the export made once (real model, tiny input)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from worker.stages import embed

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
TEXTS = ["The dress runs small.", "Shipping took three weeks and nobody answered my emails.", "Love it!"]
HAS_OPENVINO = importlib.util.find_spec("openvino") is not None
HAS_ORT = importlib.util.find_spec("onnxruntime") is not None


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """A data folder of its own (the exported models land under it), settings re-read."""
    from service.settings import get_settings

    folder = tmp_path_factory.mktemp("embed-data")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FEEDBACK_THEMES_DATA_DIR", str(folder))
        for name in ("EMBEDDING_BACKEND", "EMBEDDING_QUANTIZE", "EMBEDDING_MAX_SEQ_LENGTH"):
            mp.delenv(f"FEEDBACK_THEMES_{name}", raising=False)
        get_settings.cache_clear()
        yield folder
    get_settings.cache_clear()


@pytest.fixture(scope="module")
def reference(data_dir) -> np.ndarray:
    return embed.encode(TEXTS, MODEL, backend="torch")


def test_default_backend_is_auto_and_resolves_by_device(data_dir):
    from service.settings import get_settings

    assert get_settings().embedding_backend == "auto"
    cpu = embed.resolve_backend(MODEL, "cpu")
    assert cpu.name == ("openvino" if HAS_OPENVINO else "torch")
    assert embed.resolve_backend(MODEL, "cuda").name == "torch"  # accelerators: torch (fp16 on CUDA)
    assert embed.resolve_backend(MODEL, "cpu", "openvino", "int8").quantize == "int8"
    assert embed.resolve_backend(MODEL, "cpu", "torch", "int8").quantize == "none"
    with pytest.raises(ValueError):
        embed.resolve_backend(MODEL, "cpu", "tensorrt")
    with pytest.raises(ValueError):
        embed.resolve_backend(MODEL, "cpu", "onnx", "int4")


def test_settings_choose_the_backend(data_dir, monkeypatch):
    from service.settings import get_settings

    monkeypatch.setenv("FEEDBACK_THEMES_EMBEDDING_BACKEND", "torch")
    monkeypatch.setenv("FEEDBACK_THEMES_EMBEDDING_MAX_SEQ_LENGTH", "128")
    get_settings.cache_clear()
    try:
        backend = embed.resolve_backend(MODEL, "cpu")
        assert (backend.name, backend.max_seq_length) == ("torch", 128)
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()


def test_unsupported_models_fall_back_to_torch(tmp_path):
    assert embed.fast_supported(MODEL)
    assert not embed.fast_supported(str(tmp_path))  # no config: not a model the export knows
    assert embed.resolve_backend(str(tmp_path), "cpu", "openvino").name == "torch"


def test_cache_key_includes_backend():
    ids = {
        embed.embedding_id(MODEL, embed.Backend("torch")),
        embed.embedding_id(MODEL, embed.Backend("torch", device="cuda")),
        embed.embedding_id(MODEL, embed.Backend("openvino")),
        embed.embedding_id(MODEL, embed.Backend("openvino", "int8")),
        embed.embedding_id(MODEL, embed.Backend("onnx", "int8")),
        embed.embedding_id(MODEL, embed.Backend("openvino", max_seq_length=128)),
    }
    assert len(ids) == 6
    assert embed.embedding_id(MODEL, embed.Backend("torch")) == MODEL  # plain fp32: caches from before stay valid
    assert embed.text_key(embed.embedding_id(MODEL, embed.Backend("openvino")), "x") != embed.text_key(MODEL, "x")


def test_cache_hit_and_miss(data_dir, reference, tmp_path):
    cache = embed.EmbeddingCache(tmp_path)
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
    vectors = embed.encode(TEXTS, MODEL, backend="openvino")
    assert vectors.dtype == np.float32 and vectors.shape == reference.shape
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert ((vectors * reference).sum(1) > 0.999).all()
    path = embed.exported_model(MODEL, "openvino")
    assert path.is_relative_to(data_dir) and path.with_suffix(".bin").exists()
    stamp = path.stat().st_mtime_ns
    assert embed.exported_model(MODEL, "openvino") == path and path.stat().st_mtime_ns == stamp  # reused
    # order does not matter (batches are sorted by length inside)
    np.testing.assert_allclose(embed.encode(TEXTS[::-1], MODEL, backend="openvino")[::-1], vectors, atol=1e-5)


@pytest.mark.skipif(not HAS_ORT, reason="onnxruntime not installed")
def test_onnx_fp32_and_int8(data_dir, reference):
    fp32 = embed.encode(TEXTS, MODEL, backend="onnx")
    assert ((fp32 * reference).sum(1) > 0.9999).all()
    int8 = embed.encode(TEXTS, MODEL, backend=embed.resolve_backend(MODEL, "cpu", "onnx", "int8"))
    cosine = (int8 * reference).sum(1)
    assert cosine.min() > 0.9 and cosine.mean() > 0.96  # int8: close, not equal (very short texts suffer most)


def test_max_seq_length_truncates(data_dir, reference):
    long = [" ".join(["fabric"] * 200) + " but the zip broke"]
    full = embed.encode(long, MODEL, backend="torch")
    short = embed.encode(long, MODEL, backend=embed.Backend("torch", max_seq_length=16))
    assert float((full * short).sum()) < 0.9999
    np.testing.assert_allclose(embed.encode(TEXTS, MODEL, backend="torch"), reference, atol=1e-6)  # restored
