"""``/v1/jobs``: upload feedback (CSV or JSON), poll a job, read the themes as of a job (its tree: ``routes_tree``)."""

from __future__ import annotations

import logging
from typing import Annotated, Literal

from fastapi import APIRouter, Header, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from service.api import uploads
from service.api.deps import CeleryDep, SessionDep, SettingsDep, TenantDep
from service.api.pagination import decode_cursor, next_cursor
from service.api.schemas import JobCreated, JobOut, ThemesPage
from service.api.segments import SegmentDep
from service.settings import Settings
from service.storage.jobs import (
    NewJob,
    create_job,
    eta_seconds,
    fail_if_stalled,
    finished_job,
    page_metadata,
    requeue_failed_job,
)
from service.storage.models import utcnow
from service.storage.segments import Segment
from service.storage.session import session_scope
from service.storage.tenancy import job_for_tenant
from service.storage.themes import themes_page
from worker.celery_app import CPU_QUEUE, RUN_JOB

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])
log = logging.getLogger(__name__)

UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file", "text_column"],
                    "properties": {
                        "file": {"type": "string", "format": "binary", "description": "CSV file"},
                        "text_column": {"type": "string"},
                        "rating_column": {"type": "string"},
                        "date_column": {"type": "string"},
                        "id_column": {"type": "string"},
                        "keep_columns": {"type": "string", "description": "Comma-separated columns to keep as "
                                         "metadata (absent: every other column; `none`: none)"},
                        "project": {"type": "string", "description": "Project id; absent → a new project"},
                    },
                }
            },
            "application/json": {"schema": {"$ref": "#/components/schemas/FeedbackBatch"}},
        },
    }
}


@router.post(
    "",
    status_code=202,
    response_model=JobCreated,
    openapi_extra=UPLOAD_BODY,
    summary="Upload feedback (multipart CSV or JSON items) and start a job",
    responses={413: {"description": "Upload too large"}, 415: {"description": "Not a CSV"},
               422: {"description": "Bad input"}},
)
async def post_job(
    request: Request,
    response: Response,
    tenant: TenantDep,
    settings: SettingsDep,
    celery: CeleryDep,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", min_length=1, max_length=200)] = None,
) -> JobCreated:
    upload = await uploads.receive(request, settings)
    new = NewJob(job_id=upload.job_id, tenant_id=tenant, project_id=upload.project, source=str(upload.path),
                 source_kind=upload.kind, columns=upload.columns, idempotency_key=idempotency_key,
                 payload_hash=upload.payload_hash, project_name=upload.name)  # fmt: skip

    def store() -> tuple[JobCreated, bool]:
        with session_scope() as session:
            job, created = create_job(session, new)
            return JobCreated(id=job.id, status=job.status, project_id=job.project_id), created

    try:
        body, created = await run_in_threadpool(store)
    except BaseException:
        upload.path.unlink(missing_ok=True)
        raise
    if not created:
        upload.path.unlink(missing_ok=True)
    else:
        await run_in_threadpool(enqueue, celery, body.id)
    response.headers["Location"] = f"/v1/jobs/{body.id}"
    return body


def enqueue(celery, job_id: str) -> None:  # type: ignore[no-untyped-def]
    """Send the job's first task by name. If the broker is unreachable the job stays ``queued``, stored: a worker's
    watchdog queues it once the broker answers again (``worker.watchdog``), so the caller still gets its 202."""
    try:
        celery.send_task(RUN_JOB, args=[job_id], queue=CPU_QUEUE)
    except Exception as exc:  # noqa: BLE001 - any broker error
        log.warning("job %s stored but not queued (%s): the watchdog will queue it", job_id, type(exc).__name__)


@router.get("/{job_id}", response_model=JobOut, summary="A job's status, stage and progress")
async def get_job(job_id: str, tenant: TenantDep, settings: SettingsDep) -> JobOut:
    # The route clients poll: one trip to the thread pool for the whole lookup, the session held only inside it.
    return await run_in_threadpool(job_status, settings, tenant, job_id)


def job_status(settings: Settings, tenant: str, job_id: str) -> JobOut:
    with session_scope() as session:
        job = job_for_tenant(session, tenant, job_id)
        fail_if_stalled(session, settings, job)
        progress = min(1.0, max(0.0, job.progress or 0.0))
        return JobOut(id=job.id, project_id=job.project_id, status=job.status, stage=job.stage, progress=progress,
                      eta_seconds=eta_seconds(job.status, job.started_at, progress, utcnow()), counts=job.counts or {},
                      metadata_columns=job.metadata_columns or [], error=job.error,
                      created_at=job.created_at, started_at=job.started_at, finished_at=job.finished_at)  # fmt: skip


@router.post(
    "/{job_id}/retry",
    status_code=202,
    response_model=JobCreated,
    summary="Run a failed job again: same id, back to queued, error cleared (409 unless failed)",
)
def retry_job(job_id: str, response: Response, tenant: TenantDep, session: SessionDep, celery: CeleryDep) -> JobCreated:
    job = requeue_failed_job(session, tenant, job_id)
    enqueue(celery, job.id)
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    return JobCreated(id=job.id, status="queued", project_id=job.project_id)


@router.get("/{job_id}/themes", response_model=ThemesPage, summary="The themes as of this job")
def get_job_themes(
    job_id: str,
    tenant: TenantDep,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=40)] = None,
    sort: Literal["size", "sentiment"] = "size",
    order: Literal["asc", "desc"] = "desc",
    segment: SegmentDep = Segment(),
) -> ThemesPage:
    job = finished_job(session, tenant, job_id)
    offset = decode_cursor(cursor)
    themes, total, described = themes_page(session, job, sort, order, offset, limit, segment=segment)
    return ThemesPage(metadata=page_metadata(job, total, described), themes=themes,
                      next_cursor=next_cursor(offset, limit, total))  # fmt: skip
