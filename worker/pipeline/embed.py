"""Embed stage: texts → L2-normalised sentence embeddings, reusing a cache (:mod:`worker.pipeline.embed_cache`).

The model and the backend that runs it are :mod:`worker.pipeline.embed_models`'s; the exported CPU encoders are
:mod:`worker.pipeline.embed_export`'s. Vectors differ slightly between backends, so the cache key includes the backend
actually used; plain torch float32 keeps the bare model name.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from worker.pipeline.embed_cache import VectorCache, embedding_id, text_key
from worker.pipeline.embed_export import fast_encoder
from worker.pipeline.embed_models import Backend, load_model, resolve_backend

Progress = Callable[[float], None]


def encode(
    texts: Sequence[str],
    model_name: str,
    device: str = "cpu",
    batch_size: int = 32,
    *,
    backend: Backend | str | None = None,
) -> np.ndarray:
    """Embed texts with the model, no cache: float32, unit length. ``backend``: a :class:`Backend`, a name, or
    ``None`` for ``auto`` (see :func:`~worker.pipeline.embed_models.resolve_backend`)."""
    if not isinstance(backend, Backend):
        backend = resolve_backend(model_name, device, backend or "auto")
    if backend.name != "torch":
        return fast_encoder(model_name, backend).encode(list(texts))
    model = load_model(model_name, device)
    default_length = model.max_seq_length
    if backend.max_seq_length:
        model.max_seq_length = min(backend.max_seq_length, default_length)
    try:
        vectors = model.encode(
            list(texts), batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )
    finally:
        model.max_seq_length = default_length
    return np.asarray(vectors, dtype=np.float32)


def embed_texts(
    texts: Sequence[str],
    model_name: str,
    *,
    device: str = "cpu",
    batch_size: int = 32,
    cache: VectorCache | None = None,
    progress: Progress | None = None,
    chunk: int = 256,
    backend: Backend | str | None = None,
) -> tuple[np.ndarray, int]:
    """Embed unique texts, reusing cached vectors. Returns (embeddings, number of texts actually encoded).

    The backend is ``auto`` unless given; the cache key includes it (:func:`~worker.pipeline.embed_cache.embedding_id`)."""
    if not isinstance(backend, Backend):
        backend = resolve_backend(model_name, device, backend or "auto")
    key_model = embedding_id(model_name, backend)
    keys = [text_key(key_model, t) for t in texts]
    cached = cache.get_many(keys) if cache is not None else {}
    todo = [i for i, k in enumerate(keys) if k not in cached]
    fresh: dict[bytes, np.ndarray] = {}
    for start in range(0, len(todo), chunk):
        idx = todo[start : start + chunk]
        vectors = encode([texts[i] for i in idx], model_name, device, batch_size, backend=backend)
        batch_keys = [keys[i] for i in idx]
        if cache is not None:
            cache.put_many(batch_keys, vectors)
        fresh.update(zip(batch_keys, vectors))
        if progress:
            progress(min(1.0, (start + len(idx)) / max(1, len(todo))))
    lookup = {**cached, **fresh}
    if not texts:
        return np.zeros((0, 0), dtype=np.float32), 0
    out = np.stack([lookup[k] for k in keys]).astype(np.float32, copy=False)
    if progress:
        progress(1.0)
    return out, len(todo)


def unique_texts(texts: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """Distinct texts in first-seen order and, per input text, the index of its distinct text."""
    index: dict[str, int] = {}
    inverse = np.fromiter((index.setdefault(t, len(index)) for t in texts), dtype=np.int64, count=len(texts))
    return list(index), inverse
