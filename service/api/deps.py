"""Request dependencies: settings, a database session, the caller's tenant, the Celery app."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from celery import Celery
from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader
from sqlalchemy.orm import Session

from service.api.errors import ProblemError
from service.db.session import session_scope
from service.keys import tenant_for_key
from service.settings import Settings

api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="A key from `feedback-themes keys create`.")


def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings


def get_session() -> Iterator[Session]:
    with session_scope() as session:
        yield session


def get_celery(request: Request) -> Celery:
    return request.app.state.celery


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
SessionDep = Annotated[Session, Depends(get_session, scope="function")]  # commit before the answer is sent
CeleryDep = Annotated[Celery, Depends(get_celery)]


def get_tenant(session: SessionDep, key: Annotated[str | None, Security(api_key_header)] = None) -> str:
    """The tenant id of the caller's API key; 401 without a valid one."""
    if not key:
        raise ProblemError(401, "send an API key in the X-API-Key header", "missing-api-key",
                           headers={"WWW-Authenticate": "X-API-Key"})  # fmt: skip
    tenant = tenant_for_key(session, key)
    if tenant is None:
        raise ProblemError(401, "the API key is not valid", "invalid-api-key", headers={"WWW-Authenticate": "X-API-Key"})
    return tenant


TenantDep = Annotated[str, Depends(get_tenant)]
