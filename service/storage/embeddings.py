"""The embedding cache in the database, shared by every worker: same interface as the CLI's file cache."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite

from service.storage.models import Embedding
from service.storage.session import session_scope

_BATCH = 500


class DatabaseEmbeddingCache:
    """``get_many`` / ``put_many`` over the ``embeddings`` table (keys are sha256(model, text))."""

    def get_many(self, keys: Sequence[bytes]) -> dict[bytes, np.ndarray]:
        found: dict[bytes, np.ndarray] = {}
        with session_scope() as session:
            for start in range(0, len(keys), _BATCH):
                chunk = list(keys[start : start + _BATCH])
                rows = session.execute(select(Embedding.key, Embedding.dim, Embedding.vector).where(Embedding.key.in_(chunk)))
                for key, dim, blob in rows:
                    found[bytes(key)] = np.frombuffer(blob, dtype=np.float32, count=dim)
        return found

    def put_many(self, keys: Sequence[bytes], vectors: np.ndarray) -> None:
        rows = [{"key": k, "dim": int(v.shape[0]), "vector": np.ascontiguousarray(v, np.float32).tobytes()}
                for k, v in zip(keys, vectors)]  # fmt: skip
        if not rows:
            return
        with session_scope() as session:
            dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
            for start in range(0, len(rows), _BATCH):
                stmt = dialect.insert(Embedding).values(rows[start : start + _BATCH]).on_conflict_do_nothing()
                session.execute(stmt)

    def close(self) -> None:
        """Nothing to release (sessions are per call)."""
