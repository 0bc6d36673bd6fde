"""Report tables for people and BI tools: CSV (UTF-8, ``?bom=1`` for Excel, formula cells neutralised) and Parquet,
read with an API key or a per-project read-only report token (``?token=``) for tools that only take a URL.

Columns: ``service.reporting.REPORTS`` (schema version 1, sent as ``X-Report-Schema-Version``; docs/bi.md).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response, Security
from fastapi.responses import StreamingResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from service.api.deps import SessionDep, TenantDep, api_key_header
from service.api.errors import ProblemError
from service.db.models import Project
from service.db.session import session_scope
from service.keys import tenant_for_key
from service.reporting import NEEDS_THEMES, SCHEMA_VERSION, columns, parquet_bytes, report_rows, text_cell
from service.repository import create_report_token, project_for_report_token, project_for_tenant, revoke_report_tokens

router = APIRouter(prefix="/v1/projects", tags=["reports"])
ReportName = Literal["themes", "document_themes", "documents", "theme_trends", "theme_impact", "theme_groups"]
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
TokenQuery = Annotated[str | None, Query(max_length=100, description="A report token (instead of X-API-Key)")]


def report_project(project_id: str, session: SessionDep, key: Annotated[str | None, Security(api_key_header)] = None,
                   token: TokenQuery = None) -> Project:  # fmt: skip
    """The project whose report is asked for, with an API key of its tenant or a report token of the project."""
    if key:
        tenant = tenant_for_key(session, key)
        if tenant is None:
            raise ProblemError(401, "the API key is not valid", "invalid-api-key", headers={"WWW-Authenticate": "X-API-Key"})
        return project_for_tenant(session, tenant, project_id)
    if token:
        return project_for_report_token(session, token, project_id)
    raise ProblemError(401, "send an API key in the X-API-Key header, or a report token as ?token=", "missing-api-key",
                       headers={"WWW-Authenticate": "X-API-Key"})  # fmt: skip


ReportProject = Annotated[Project, Depends(report_project)]


def _check(project: Project, name: str) -> None:
    if name in NEEDS_THEMES and not project.current_job_id:
        raise ProblemError(409, "the project has no finished job yet", "no-themes-yet")


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
    _check(project, name)
    body = _csv_stream(columns(name), _rows(project.id, name), bom)
    return StreamingResponse(body, media_type="text/csv; charset=utf-8", headers=_headers(name, "csv"))


@router.get(
    "/{project_id}/reports/{name}.parquet",
    summary="A report table as Parquet",
    response_class=Response,
    responses={200: {"content": {"application/vnd.apache.parquet": {}}}},
)
async def get_report_parquet(name: ReportName, project: ReportProject) -> Response:
    _check(project, name)
    data = await run_in_threadpool(lambda: parquet_bytes(name, _rows(project.id, name)))
    return Response(data, media_type="application/vnd.apache.parquet", headers=_headers(name, "parquet"))


class ReportTokenOut(BaseModel):
    token: str
    project_id: str
    urls: dict[str, str]


@router.post("/{project_id}/report-token", status_code=201, response_model=ReportTokenOut,
             summary="A read-only token for this project's reports (shown once)")  # fmt: skip
def post_report_token(project_id: str, request: Request, tenant: TenantDep, session: SessionDep) -> ReportTokenOut:
    project = project_for_tenant(session, tenant, project_id)
    token = create_report_token(session, project)
    session.commit()  # before the answer: the session dependency would commit only after it is sent
    base = str(request.base_url).rstrip("/")
    urls = {f"{name}.{ext}": f"{base}/v1/projects/{project.id}/reports/{name}.{ext}?token={token}"
            for name in ReportName.__args__ for ext in ("csv", "parquet")}  # fmt: skip
    return ReportTokenOut(token=token, project_id=project.id, urls=urls)


@router.delete("/{project_id}/report-token", status_code=204, summary="Revoke every report token of this project")
def delete_report_tokens(project_id: str, tenant: TenantDep, session: SessionDep) -> Response:
    revoke_report_tokens(session, project_for_tenant(session, tenant, project_id))
    session.commit()
    return Response(status_code=204)


def safe_cell(value: Any) -> Any:
    """Neutralise text cells that a spreadsheet would run as a formula (``= + - @``)."""
    value = text_cell(value)
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


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
        writer.writerow([safe_cell(v) for v in row])
        if i % 500 == 0:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode()
