"""Request dependencies: settings, a database session, the caller's tenant (and key id), the Celery app; failed
authentications counted per client address."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from celery import Celery
from fastapi import Depends, Path, Request, Security
from fastapi.security import APIKeyHeader
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from service.api.errors import ProblemError
from service.keys import hash_key, key_id_for_digest, tenant_for_digest
from service.settings import Settings
from service.storage.session import session_scope

api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="A key from `feedback-themes keys create`.")


# Dependencies without I/O are ``async def``: FastAPI runs a plain ``def`` one in the thread pool, a hop per request.
async def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings


def get_session() -> Iterator[Session]:
    with session_scope() as session:
        yield session


async def get_celery(request: Request) -> Celery:
    return request.app.state.celery


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
SessionDep = Annotated[Session, Depends(get_session, scope="function")]  # commit before the answer is sent
CeleryDep = Annotated[Celery, Depends(get_celery)]


async def get_tenant(request: Request, key: Annotated[str | None, Security(api_key_header)] = None) -> str:
    """The tenant id of the caller's API key; 401 without a valid one, 429 after too many failures from the caller's
    address (checked before any lookup). Valid keys are remembered for a while (``api_key_cache_seconds``), so most
    requests skip the lookup; a lookup runs in the thread pool."""
    check_auth_failures(request)
    if not key:
        raise auth_failed(request, ProblemError(401, "send an API key in the X-API-Key header", "missing-api-key",
                                                headers={"WWW-Authenticate": "X-API-Key"}))  # fmt: skip
    digest = hash_key(key)
    cache = request.app.state.key_cache
    tenant = cache.get(digest)
    if tenant is None:
        tenant = await run_in_threadpool(lookup_tenant, digest)
        if tenant is None:
            raise auth_failed(request, invalid_key())
        cache.put(digest, tenant)
    return tenant


def lookup_tenant(digest: str) -> str | None:
    with session_scope() as session:
        return tenant_for_digest(session, digest)


def invalid_key() -> ProblemError:
    return ProblemError(401, "the API key is not valid", "invalid-api-key", headers={"WWW-Authenticate": "X-API-Key"})


def client_address(request: Request) -> str:
    """The client's address (the proxy's ``X-Forwarded-For`` once uvicorn trusts it)."""
    return request.client.host if request.client else ""


def check_auth_failures(request: Request) -> None:
    """429 while the caller's address is over its failed authentications (``auth_failures_per_minute``)."""
    request.app.state.auth_failures.check(client_address(request))


def count_auth_failure(request: Request) -> None:
    """Count a failed authentication of the caller's address."""
    request.app.state.auth_failures.failed(client_address(request))


def auth_failed(request: Request, problem: ProblemError) -> ProblemError:
    """Count a failed authentication of the caller's address; returns the problem to raise."""
    count_auth_failure(request)
    return problem


TenantDep = Annotated[str, Depends(get_tenant)]


def get_api_key_id(tenant: TenantDep, session: SessionDep,
                   key: Annotated[str | None, Security(api_key_header)] = None) -> int:  # fmt: skip
    """The id of the caller's API key, for the few routes that record which key made something (a lookup each time;
    ``get_tenant`` has already checked the key)."""
    key_id = key_id_for_digest(session, hash_key(key or ""))
    if key_id is None:  # revoked since this process cached the key
        raise invalid_key()
    return key_id


ApiKeyIdDep = Annotated[int, Depends(get_api_key_id)]


MAX_ID = 2**31 - 1  # themes.theme_id is a 32-bit integer
NodeId = Annotated[int, Path(ge=0, le=MAX_ID, description="A node's id: a category's, a theme's or a sub-theme's")]
