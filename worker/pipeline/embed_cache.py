"""The embedding cache: vectors keyed by (model, backend, text hash), so that no text is embedded twice.

:class:`EmbeddingCache` keeps them in a SQLite file (the CLI); the job runner passes its database-backed cache. Both
have ``get_many(keys) -> {key: vector}``, ``put_many(keys, vectors)`` and ``close()``.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from worker.pipeline.embed_models import Backend


class VectorCache(Protocol):
    """What :func:`worker.pipeline.embed.embed_texts` needs of a cache."""

    def get_many(self, keys: Sequence[bytes]) -> dict[bytes, np.ndarray]: ...

    def put_many(self, keys: Sequence[bytes], vectors: np.ndarray) -> None: ...

    def close(self) -> None: ...


def embedding_id(model_name: str, backend: Backend | None = None) -> str:
    """What the cache key is made of: the model name, plus the backend tag when it is not plain torch float32."""
    tag = backend.tag if backend is not None else ""
    return f"{model_name}#{tag}" if tag else model_name


def text_key(model: str, text: str) -> bytes:
    """Cache key of one text under one model (``model`` is an :func:`embedding_id`)."""
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
