"""Per-project read-only report tokens: made (shown once, stored hashed), listed, revoked, checked.

A token expires at ``expires_at``; one made before tokens had an expiry (NULL) expires ``legacy_days`` (the longest
lifetime, ``report_token_max_days``) after it was made. A token made with an API key (``api_key_id``) dies with that
key: revoking the key voids it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import Select, func, select, update
from sqlalchemy.orm import Session

from service.storage.errors import InvalidCredentials, InvalidInput, NotFound
from service.storage.models import ApiKey, Project, ReportToken, utcnow

TOKEN_PREFIX = "ftr_"


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value


def token_expiry(days: int | None, default_days: int, max_days: int) -> datetime:
    """When a token made now for ``days`` (None: ``default_days``) expires; InvalidInput past ``max_days``."""
    days = days or default_days
    if days > max_days:
        raise InvalidInput(f"expires_in_days: at most {max_days}", "validation-error")
    return utcnow() + timedelta(days=days)


def create_report_token(session: Session, project: Project, expires_at: datetime,
                        api_key_id: int | None = None) -> tuple[str, ReportToken]:  # fmt: skip
    """A new read-only token for the project's reports (returned once, stored hashed) and its row."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ReportToken(project_id=project.id, tenant_id=project.tenant_id, token_hash=_hash(token), prefix=token[:10],
                      created_at=utcnow(), expires_at=expires_at, api_key_id=api_key_id)  # fmt: skip
    session.add(row)
    return token, row


def report_token_expiry(row: ReportToken, legacy_days: int) -> datetime:
    """When the token expires (a token made without an expiry: ``legacy_days`` after it was made)."""
    return _aware(row.expires_at) if row.expires_at else _aware(row.created_at) + timedelta(days=legacy_days)


def _tokens_with_key_state(project_id: str | None = None, digest: str | None = None) -> Select:
    """Report tokens with the revocation time of the key that made them (None: unrevoked, or made without a key)."""
    query = select(ReportToken, ApiKey.revoked_at).outerjoin(ApiKey, ApiKey.id == ReportToken.api_key_id)
    if project_id is not None:
        query = query.where(ReportToken.project_id == project_id)
    if digest is not None:
        query = query.where(ReportToken.token_hash == digest, ReportToken.revoked_at.is_(None))
    return query.order_by(ReportToken.id)


def list_report_tokens(session: Session, project: Project, legacy_days: int) -> list[dict[str, Any]]:
    """The project's report tokens, oldest first: prefix, created, expiry, revocation, whether it still opens."""
    now = utcnow()
    rows = session.execute(_tokens_with_key_state(project_id=project.id))
    return [_token_record(row, key_revoked, legacy_days, now) for row, key_revoked in rows]


def _token_record(row: ReportToken, key_revoked: datetime | None, legacy_days: int, now: datetime) -> dict[str, Any]:
    return {"prefix": row.prefix, "created_at": _aware(row.created_at),
            "expires_at": report_token_expiry(row, legacy_days),
            "revoked_at": None if row.revoked_at is None else _aware(row.revoked_at),
            "active": _token_problem(row, key_revoked, legacy_days, now) is None}  # fmt: skip


def revoke_report_tokens(session: Session, project: Project, prefix: str | None = None) -> int:
    """Revoke the project's active tokens (or the one with this shown prefix). Returns how many were revoked now; with
    a prefix, how many tokens it names, revoked now or before (0: none)."""
    match = [ReportToken.project_id == project.id]
    if prefix is not None:
        match.append(ReportToken.prefix == prefix)
    active = [*match, ReportToken.revoked_at.is_(None)]
    revoked = session.execute(update(ReportToken).where(*active).values(revoked_at=utcnow())).rowcount or 0
    if prefix is None:
        return revoked
    return session.scalar(select(func.count()).select_from(ReportToken).where(*match)) or 0


def project_for_report_token(session: Session, token: str, project_id: str, legacy_days: int) -> Project:
    """The project a valid token opens; InvalidCredentials for an unknown, revoked or expired token or one whose API
    key was revoked, NotFound for another project."""
    digest = _hash(token)
    found = session.execute(_tokens_with_key_state(digest=digest)).first()
    if found is None or not hmac.compare_digest(found[0].token_hash, digest):
        raise InvalidCredentials("the report token is not valid", "invalid-report-token")
    problem = _token_problem(found[0], found[1], legacy_days, utcnow())
    if problem is not None:
        raise InvalidCredentials(problem, "invalid-report-token")
    if found[0].project_id != project_id:
        raise NotFound(f"no project {project_id!r}", "project-not-found")
    return session.get(Project, project_id)


def _token_problem(row: ReportToken, key_revoked: datetime | None, legacy_days: int, now: datetime) -> str | None:
    """Why the token opens nothing, or None when it is valid."""
    if row.revoked_at is not None:
        return "the report token was revoked"
    if key_revoked is not None:
        return "the report token is not valid: the API key that made it was revoked"
    expiry = report_token_expiry(row, legacy_days)
    if expiry <= now:
        return f"the report token expired on {expiry:%Y-%m-%d %H:%M} UTC; make a new one"
    return None


def revoke_report_token(session: Session, project: Project, prefix: str) -> None:
    """Revoke the project's token with this shown prefix (revoked before: nothing changes); NotFound for none."""
    if not revoke_report_tokens(session, project, prefix=prefix):
        raise NotFound(f"no report token {prefix!r} in this project", "report-token-not-found")
