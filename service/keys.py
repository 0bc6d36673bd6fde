"""API keys: random secrets shown once, stored as SHA-256 hashes, looked up by hash, compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.db.models import ApiKey, Tenant

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
    digest = hash_key(key)
    row = session.execute(select(ApiKey.key_hash, ApiKey.tenant_id).where(ApiKey.key_hash == digest,
                                                                          ApiKey.revoked_at.is_(None))).first()  # fmt: skip
    if row is None or not hmac.compare_digest(row.key_hash, digest):
        return None
    return row.tenant_id
