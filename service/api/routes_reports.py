"""Report tables for people and BI tools: CSV (UTF-8, ``?bom=1`` for Excel, formula cells neutralised as in
``worker/pipeline/csv_cells.py``) and Parquet, read with an API key or a per-project read-only report token (``?token=``) for
tools that only take a URL. Report tokens expire, are listed and revoked one by one, and die with the API key that
made them.

Columns: ``worker.pipeline.output.REPORT_COLUMNS`` (schema version 3, sent as ``X-Report-Schema-Version``;
docs/bi.md).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Query, Request, Response, Security
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from service.api.deps import (
    ApiKeyIdDep,
    SessionDep,
    SettingsDep,
    TenantDep,
    api_key_header,
    auth_failed,
    check_auth_failures,
    count_auth_failure,
    get_tenant,
)
from service.api.errors import ProblemError
from service.storage.errors import InvalidCredentials
from service.storage.models import Project
from service.storage.report_tables import SCHEMA_VERSION, check_report, columns, parquet_bytes, report_rows, text_cell
from service.storage.report_tokens import (
    create_report_token,
    list_report_tokens,
    project_for_report_token,
    revoke_report_token,
    revoke_report_tokens,
    token_expiry,
)
from service.storage.session import session_scope
from service.storage.tenancy import project_for_tenant
from worker.pipeline.csv_cells import safe_cell

router = APIRouter(prefix="/v1/projects", tags=["reports"])
ReportName = Literal["themes", "document_themes", "span_themes", "documents", "theme_trends", "theme_impact",
                     "theme_tree", "document_nodes", "document_attributes",
                     "alerts"]  # fmt: skip
TokenQuery = Annotated[str | None, Query(max_length=100, description="A report token (instead of X-API-Key)")]


async def report_project(request: Request, project_id: str, session: SessionDep, settings: SettingsDep,
                         key: Annotated[str | None, Security(api_key_header)] = None,
                         token: TokenQuery = None) -> Project:  # fmt: skip
    """The project whose report is asked for, with an API key of its tenant or a report token of the project; a
    failed authentication counts against the caller's address (``deps.auth_failed``)."""
    if key:
        tenant = await get_tenant(request, key)
        return await run_in_threadpool(project_for_tenant, session, tenant, project_id)
    check_auth_failures(request)
    if not token:
        detail = "send an API key in the X-API-Key header, or a report token as ?token="
        headers = {"WWW-Authenticate": "X-API-Key"}
        raise auth_failed(request, ProblemError(401, detail, "missing-api-key", headers=headers))
    try:
        return await run_in_threadpool(project_for_report_token, session, token, project_id,
                                       settings.report_token_max_days)  # fmt: skip
    except InvalidCredentials:
        count_auth_failure(request)
        raise


ReportProject = Annotated[Project, Depends(report_project)]


def _headers(name: str, ext: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{name}.{ext}"', "X-Report-Schema-Version": str(SCHEMA_VERSION)}


@router.get(
    "/{project_id}/reports/{name}.csv",
    summary="A report table as CSV",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}}},
)
def get_report_csv(
    name: ReportName,
    project: ReportProject,
    bom: Annotated[bool, Query(description="Start with a UTF-8 BOM (for Excel)")] = False,
) -> StreamingResponse:
    check_report(project, name)
    body = _csv_stream(columns(name), _rows(project.id, name), bom)
    return StreamingResponse(body, media_type="text/csv; charset=utf-8", headers=_headers(name, "csv"))


@router.get(
    "/{project_id}/reports/{name}.parquet",
    summary="A report table as Parquet",
    response_class=Response,
    responses={200: {"content": {"application/vnd.apache.parquet": {}}}},
)
async def get_report_parquet(name: ReportName, project: ReportProject) -> Response:
    check_report(project, name)
    data = await run_in_threadpool(lambda: parquet_bytes(name, _rows(project.id, name)))
    return Response(data, media_type="application/vnd.apache.parquet", headers=_headers(name, "parquet"))


class ReportTokenIn(BaseModel):
    expires_in_days: int | None = Field(None, ge=1, description="Lifetime in days; default and most: the settings "
                                        "`REPORT_TOKEN_DAYS` (90) and `REPORT_TOKEN_MAX_DAYS` (365)")  # fmt: skip


class ReportTokenOut(BaseModel):
    token: str
    prefix: str
    project_id: str
    expires_at: datetime
    urls: dict[str, str]


class ReportTokenInfo(BaseModel):
    prefix: str
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    active: bool


class ReportTokenList(BaseModel):
    report_tokens: list[ReportTokenInfo]


@router.post("/{project_id}/report-token", status_code=201, response_model=ReportTokenOut,
             summary="A read-only token for this project's reports (shown once)")  # fmt: skip
def post_report_token(project_id: str, request: Request, tenant: TenantDep, key_id: ApiKeyIdDep, session: SessionDep,
                      settings: SettingsDep, body: Annotated[ReportTokenIn | None, Body()] = None,
                      ) -> ReportTokenOut:  # fmt: skip
    expires_at = token_expiry(body.expires_in_days if body else None, settings.report_token_days,
                              settings.report_token_max_days)  # fmt: skip
    project = project_for_tenant(session, tenant, project_id)
    token, row = create_report_token(session, project, expires_at, api_key_id=key_id)
    session.commit()  # before the answer: the session dependency would commit only after it is sent
    base = str(request.base_url).rstrip("/")
    urls = {f"{name}.{ext}": f"{base}/v1/projects/{project.id}/reports/{name}.{ext}?token={token}"
            for name in ReportName.__args__ for ext in ("csv", "parquet")}  # fmt: skip
    return ReportTokenOut(token=token, prefix=row.prefix, project_id=project.id, expires_at=expires_at, urls=urls)


@router.get("/{project_id}/report-tokens", response_model=ReportTokenList,
            summary="This project's report tokens (prefixes only), oldest first")  # fmt: skip
def get_report_tokens(project_id: str, tenant: TenantDep, session: SessionDep, settings: SettingsDep,
                      ) -> ReportTokenList:  # fmt: skip
    project = project_for_tenant(session, tenant, project_id)
    tokens = list_report_tokens(session, project, settings.report_token_max_days)
    return ReportTokenList(report_tokens=[ReportTokenInfo(**t) for t in tokens])


@router.delete("/{project_id}/report-token", status_code=204, summary="Revoke every report token of this project")
def delete_report_tokens(project_id: str, tenant: TenantDep, session: SessionDep) -> Response:
    revoke_report_tokens(session, project_for_tenant(session, tenant, project_id))
    session.commit()
    return Response(status_code=204)


@router.delete("/{project_id}/report-tokens/{prefix}", status_code=204,
               summary="Revoke one report token of this project, by its prefix")  # fmt: skip
def delete_report_token(project_id: str, prefix: str, tenant: TenantDep, session: SessionDep) -> Response:
    revoke_report_token(session, project_for_tenant(session, tenant, project_id), prefix)
    session.commit()
    return Response(status_code=204)


def _rows(project_id: str, name: str) -> Iterator[tuple]:
    """Rows read in a session of their own (a streamed body outlives the request's session)."""
    with session_scope() as session:
        yield from report_rows(session, session.get(Project, project_id), name)


def _csv_stream(header: list[str], rows: Iterable[Iterable[Any]], bom: bool) -> Iterator[bytes]:
    if bom:
        yield "\ufeff".encode()
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    for i, row in enumerate(rows):
        writer.writerow([safe_cell(text_cell(v)) for v in row])
        if i % 500 == 0:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode()
