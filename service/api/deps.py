"""Request dependencies: settings, a database session, the caller's tenant, the Celery app."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from celery import Celery
from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from service.api.errors import ProblemError
from service.db.session import session_scope
from service.keys import hash_key, tenant_for_digest
from service.settings import Settings

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
    """The tenant id of the caller's API key; 401 without a valid one. Valid keys are remembered for a while
    (``api_key_cache_seconds``), so most requests skip the lookup; a lookup runs in the thread pool."""
    if not key:
        raise ProblemError(401, "send an API key in the X-API-Key header", "missing-api-key",
                           headers={"WWW-Authenticate": "X-API-Key"})  # fmt: skip
    digest = hash_key(key)
    cache = request.app.state.key_cache
    tenant = cache.get(digest)
    if tenant is None:
        tenant = await run_in_threadpool(lookup_tenant, digest)
        if tenant is None:
            raise ProblemError(401, "the API key is not valid", "invalid-api-key",
                               headers={"WWW-Authenticate": "X-API-Key"})  # fmt: skip
        cache.put(digest, tenant)
    return tenant


def lookup_tenant(digest: str) -> str | None:
    with session_scope() as session:
        return tenant_for_digest(session, digest)


TenantDep = Annotated[str, Depends(get_tenant)]
