"""``/v1/projects``: projects, their current themes, a theme's members, and CSV reports."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse
from sqlalchemy import select

from service.api.deps import SessionDep, TenantDep
from service.api.errors import ProblemError
from service.api.pagination import decode_cursor, next_cursor
from service.api.schemas import Member, ProjectList, ProjectOut, ThemeDetail, ThemesPage
from service.db.models import Document, DocumentTheme, Job, ThemeRow
from service.db.session import session_scope
from service.repository import (
    job_metadata,
    list_projects,
    project_for_tenant,
    project_summary,
    theme_members,
    theme_row,
    themes_page,
)
from worker.stages.report import DOCUMENT_THEMES_COLUMNS, DOCUMENTS_COLUMNS, THEMES_COLUMNS, themes_table

router = APIRouter(prefix="/v1/projects", tags=["projects"])
Limit = Annotated[int, Query(ge=1, le=500)]
Cursor = Annotated[str | None, Query(max_length=40)]
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
REPORT_BATCH = 2000


@router.get("", response_model=ProjectList, summary="The caller's projects")
def get_projects(tenant: TenantDep, session: SessionDep, limit: Limit = 50, cursor: Cursor = None) -> ProjectList:
    offset = decode_cursor(cursor)
    projects, total = list_projects(session, tenant, offset, limit)
    return ProjectList(projects=[ProjectOut(**project_summary(session, p)) for p in projects],
                       next_cursor=next_cursor(offset, limit, total))  # fmt: skip


@router.get("/{project_id}", response_model=ProjectOut, summary="One project")
def get_project(project_id: str, tenant: TenantDep, session: SessionDep) -> ProjectOut:
    return ProjectOut(**project_summary(session, project_for_tenant(session, tenant, project_id)))


def current_job(session: SessionDep, tenant: str, project_id: str) -> Job:
    project = project_for_tenant(session, tenant, project_id)
    if not project.current_job_id:
        raise ProblemError(409, "the project has no finished job yet", "no-themes-yet")
    return session.get(Job, project.current_job_id)


@router.get("/{project_id}/themes", response_model=ThemesPage, summary="The project's current themes")
def get_project_themes(
    project_id: str,
    tenant: TenantDep,
    session: SessionDep,
    limit: Limit = 50,
    cursor: Cursor = None,
    sort: Literal["size", "sentiment"] = "size",
    order: Literal["asc", "desc"] = "desc",
) -> ThemesPage:
    job = current_job(session, tenant, project_id)
    offset = decode_cursor(cursor)
    themes, total = themes_page(session, job, sort, order, offset, limit)
    return ThemesPage(metadata=job_metadata(job, total), themes=themes, next_cursor=next_cursor(offset, limit, total))


@router.get("/{project_id}/themes/{theme_id}", response_model=ThemeDetail, summary="A theme with its member comments")
def get_theme(
    project_id: str, theme_id: int, tenant: TenantDep, session: SessionDep, limit: Limit = 50, cursor: Cursor = None
) -> ThemeDetail:
    job = current_job(session, tenant, project_id)
    row = theme_row(session, job.id, theme_id)
    offset = decode_cursor(cursor)
    members, total = theme_members(session, job.id, theme_id, offset, limit)
    return ThemeDetail(theme=row.record, members=[Member(**m) for m in members],
                       next_cursor=next_cursor(offset, limit, total))  # fmt: skip


@router.get(
    "/{project_id}/reports/{name}.csv",
    summary="A report table as CSV (themes, document_themes or documents)",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}}},
)
def get_report(
    project_id: str,
    name: Literal["themes", "document_themes", "documents"],
    tenant: TenantDep,
    session: SessionDep,
    bom: Annotated[bool, Query(description="Start with a UTF-8 BOM (for Excel)")] = False,
) -> StreamingResponse:
    project = project_for_tenant(session, tenant, project_id)
    if name != "documents" and not project.current_job_id:
        raise ProblemError(409, "the project has no finished job yet", "no-themes-yet")
    rows = {"themes": _theme_rows, "document_themes": _document_theme_rows, "documents": _document_rows}[name]
    columns = {"themes": THEMES_COLUMNS, "document_themes": DOCUMENT_THEMES_COLUMNS, "documents": DOCUMENTS_COLUMNS}[name]
    body = _csv_stream(columns, rows(project.id, project.current_job_id), bom)
    headers = {"Content-Disposition": f'attachment; filename="{name}.csv"'}
    return StreamingResponse(body, media_type="text/csv; charset=utf-8", headers=headers)


def safe_cell(value: Any) -> Any:
    """Neutralise text cells that a spreadsheet would run as a formula (``= + - @``)."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return "" if value is None else value


def _csv_stream(columns: list[str], rows: Iterable[Iterable[Any]], bom: bool) -> Iterator[bytes]:
    if bom:
        yield "\ufeff".encode()
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(columns)
    for i, row in enumerate(rows):
        writer.writerow([safe_cell(v) for v in row])
        if i % 500 == 0:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode()


def _theme_rows(project_id: str, job_id: str) -> Iterator[list[Any]]:
    with session_scope() as session:
        records = [r.record for r in session.scalars(select(ThemeRow).where(ThemeRow.job_id == job_id)
                                                     .order_by(ThemeRow.size.desc(), ThemeRow.theme_id))]  # fmt: skip
    yield from themes_table(records).astype(object).where(lambda t: t.notna(), None).itertuples(index=False)


def _document_theme_rows(project_id: str, job_id: str) -> Iterator[tuple]:
    query = (select(Document.doc_id, DocumentTheme.theme_id, DocumentTheme.activation)
             .join(Document, Document.id == DocumentTheme.document_id).where(DocumentTheme.job_id == job_id)
             .order_by(DocumentTheme.theme_id, DocumentTheme.activation.desc(), Document.doc_id))  # fmt: skip
    yield from _batched(query)


def _document_rows(project_id: str, job_id: str | None) -> Iterator[tuple]:
    query = (select(Document.doc_id, Document.text, Document.sentiment_score, Document.sentiment_label,
                    Document.rating, Document.date).where(Document.project_id == project_id).order_by(Document.id))  # fmt: skip
    for doc_id, text, score, label, rating, date in _batched(query):
        yield doc_id, text, None if score is None else round(score, 4), label, rating, \
            None if date is None else date.strftime("%Y-%m-%dT%H:%M:%SZ")  # fmt: skip


def _batched(query: Any) -> Iterator[tuple]:
    with session_scope() as session:
        for row in session.execute(query.execution_options(yield_per=REPORT_BATCH)):
            yield tuple(row)

