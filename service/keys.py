"""API keys: random secrets shown once, stored as SHA-256 hashes, looked up by hash, compared in constant time.

An API process remembers each valid key's tenant for ``api_key_cache_seconds`` (:class:`KeyCache`), so a job poll
needs no key lookup in the database; a revoked key therefore stops working within that time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from datetime import datetime

from cachetools import TTLCache
from sqlalchemy import Row, select, update
from sqlalchemy.orm import Session

from service.storage.models import ApiKey, Tenant, utcnow

PREFIX = "ft_"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def create_key(session: Session, tenant_name: str) -> tuple[str, Tenant]:
    """A new key for the tenant (created if new). The plain key is returned once and never stored."""
    tenant = session.scalar(select(Tenant).where(Tenant.name == tenant_name))
    if tenant is None:
        tenant = Tenant(name=tenant_name)
        session.add(tenant)
        session.flush()
    key = PREFIX + secrets.token_urlsafe(32)
    session.add(ApiKey(tenant_id=tenant.id, key_hash=hash_key(key), prefix=key[:10]))
    return key, tenant


def tenant_for_key(session: Session, key: str) -> str | None:
    """The tenant id of a valid, unrevoked key, else None."""
    return tenant_for_digest(session, hash_key(key))


def tenant_for_digest(session: Session, digest: str) -> str | None:
    """The tenant id of the valid, unrevoked key with this SHA-256 digest, else None."""
    row = _valid_key(session, digest)
    return None if row is None else row.tenant_id


def key_id_for_digest(session: Session, digest: str) -> int | None:
    """The id of the valid, unrevoked key with this SHA-256 digest, else None."""
    row = _valid_key(session, digest)
    return None if row is None else row.id


def _valid_key(session: Session, digest: str) -> Row | None:
    valid = ApiKey.key_hash == digest, ApiKey.revoked_at.is_(None)
    row = session.execute(select(ApiKey.id, ApiKey.key_hash, ApiKey.tenant_id).where(*valid)).first()
    if row is None or not hmac.compare_digest(row.key_hash, digest):
        return None
    return row


def revoke_key(session: Session, prefix: str) -> int:
    """Revoke the one active key whose shown prefix (its first 10 characters) starts with ``prefix``; returns how
    many active keys matched (only exactly one is revoked)."""
    match = ApiKey.prefix.startswith(prefix, autoescape=True), ApiKey.revoked_at.is_(None)
    ids = session.scalars(select(ApiKey.id).where(*match).limit(2)).all()
    if len(ids) == 1:
        session.execute(update(ApiKey).where(ApiKey.id == ids[0]).values(revoked_at=utcnow()))
    return len(ids)


def list_keys(session: Session) -> list[tuple[str, str, datetime, datetime | None]]:
    """(prefix, tenant name, created, revoked) of every key, oldest first."""
    rows = session.execute(select(ApiKey.prefix, Tenant.name, ApiKey.created_at, ApiKey.revoked_at)
                           .join(Tenant, Tenant.id == ApiKey.tenant_id).order_by(ApiKey.id))  # fmt: skip
    return [tuple(row) for row in rows]  # type: ignore[misc]


class KeyCache:
    """Digest → tenant id of keys found valid, each forgotten ``seconds`` after it was looked up (0: never kept).
    Used from the API's event loop thread only (cachetools caches are not thread-safe)."""

    def __init__(self, seconds: float, size: int = 10_000, timer: Callable[[], float] = time.monotonic) -> None:
        self.cache: TTLCache[str, str] | None = TTLCache(size, seconds, timer) if seconds > 0 else None

    def get(self, digest: str) -> str | None:
        return None if self.cache is None else self.cache.get(digest)

    def put(self, digest: str, tenant_id: str) -> None:
        if self.cache is not None:
            self.cache[digest] = tenant_id
