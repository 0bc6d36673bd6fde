"""Jobs: storing an accepted upload (idempotently), a job's metadata, failing a stalled job, retrying a failed one."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.problems import problem
from service.settings import Settings
from service.storage.errors import Conflict, InvalidInput
from service.storage.models import Job, JobChunk, Project, utcnow
from service.storage.tenancy import job_for_tenant, project_for_tenant
from service.storage.webhooks import queue_job_events

ETA_FROM = 0.05  # the progress from which a running job's time left is estimated


@dataclass
class NewJob:
    """What the API stores for an accepted upload."""

    job_id: str
    tenant_id: str
    project_id: str | None
    source: str
    source_kind: str
    columns: dict[str, Any]
    idempotency_key: str | None
    payload_hash: str
    project_name: str | None = None


def existing_idempotent_job(session: Session, new: NewJob) -> Job | None:
    """The job already made with this Idempotency-Key: the same one for the same payload, else InvalidInput."""
    if not new.idempotency_key:
        return None
    job = session.scalar(select(Job).where(Job.tenant_id == new.tenant_id, Job.idempotency_key == new.idempotency_key))
    if job is not None and job.payload_hash != new.payload_hash:
        raise InvalidInput("this Idempotency-Key was used with a different payload", "idempotency-key-reused")
    return job


def create_job(session: Session, new: NewJob) -> tuple[Job, bool]:
    """Store a queued job (and a new project when none is named). Returns (job, created)."""
    existing = existing_idempotent_job(session, new)
    if existing is not None:
        return existing, False
    if new.project_id:
        project = project_for_tenant(session, new.tenant_id, new.project_id)
    else:
        project = Project(tenant_id=new.tenant_id, name=new.project_name)
        session.add(project)
        session.flush()
    job = Job(id=new.job_id, tenant_id=new.tenant_id, project_id=project.id, source=new.source,
              source_kind=new.source_kind, columns=new.columns, idempotency_key=new.idempotency_key,
              payload_hash=new.payload_hash)  # fmt: skip
    session.add(job)
    try:
        session.flush()
    except IntegrityError:  # the same key raced in from another request
        session.rollback()
        existing = existing_idempotent_job(session, new)
        if existing is None:
            raise
        return existing, False
    return job, True


def finished_job(session: Session, tenant_id: str, job_id: str) -> Job:
    """The tenant's job once it has succeeded; Conflict before."""
    job = job_for_tenant(session, tenant_id, job_id)
    if job.status != "succeeded":
        raise Conflict(f"job {job_id} has status {job.status!r}; themes exist once it has succeeded", "job-not-done")
    return job


def job_metadata(job: Job, total_themes: int) -> dict[str, Any]:
    meta = dict(job.result or {})
    meta.setdefault("n_themes", total_themes)
    meta["job_id"] = job.id
    meta["project_id"] = job.project_id
    return meta


def page_metadata(job: Job, total_themes: int, segment: dict[str, Any] | None) -> dict[str, Any]:
    """A page's metadata: the job's, and with a segment filter the segment (its conditions, dates and comments)."""
    meta = job_metadata(job, total_themes)
    if segment is not None:
        meta["segment"] = segment
    return meta


def eta_seconds(status: str, started_at: datetime | None, progress: float | None, now: datetime) -> float | None:
    """The seconds a running job has left, read off its pace so far: elapsed × (1 − p) / p, whole seconds; None while
    queued, once finished or failed, and before its progress reaches :data:`ETA_FROM`."""
    if status != "running" or started_at is None or progress is None or progress < ETA_FROM:
        return None
    elapsed = max(0.0, (now - started_at).total_seconds())
    return float(round(elapsed * (1 - min(progress, 1.0)) / progress))


# ---------------------------------------------------------------- stalled jobs, retries


class ProgressWatch:
    """When this process first saw each unfinished job in its current state (status, stage, progress)."""

    def __init__(self, max_jobs: int = 10_000) -> None:
        self.seen: OrderedDict[str, tuple[tuple, float]] = OrderedDict()
        self.max_jobs, self.lock = max_jobs, threading.Lock()

    def idle_for(self, job: Job) -> float:
        """Seconds this process has seen the job without progress (0 on a first look or after any change)."""
        state, now = (job.status, job.stage, job.progress), time.monotonic()
        with self.lock:
            seen = self.seen.get(job.id)
            if seen is None or seen[0] != state:
                seen = self.seen[job.id] = (state, now)
            self.seen.move_to_end(job.id)
            while len(self.seen) > self.max_jobs:
                self.seen.popitem(last=False)
        return now - seen[1]

    def forget(self, job_id: str) -> None:
        with self.lock:
            self.seen.pop(job_id, None)


WATCH = ProgressWatch()


def fail_if_stalled(session: Session, settings: Settings, job: Job) -> None:
    """Stale-job guard: a queued or running job that shows no progress for longer than a task can take (the hard
    time limit) plus the broker's redelivery delay (the visibility timeout) lost its worker or its queued task
    (e.g. a broker restarted without persistence): end it ``failed`` with a problem that says how to retry it."""
    if job.status not in ("queued", "running"):
        WATCH.forget(job.id)
        return
    window = settings.job_stale_after or settings.job_hard_time_limit + settings.broker_visibility_timeout
    if WATCH.idle_for(job) <= window:
        return
    where = "in the queue" if job.status == "queued" else f"in stage {job.stage or 'ingest'}"
    body = problem(503, "The job stalled", f"no progress for over {window} s {where}: its worker or the task broker "
                   f"was lost; POST /v1/jobs/{job.id}/retry runs it again", "job-stalled")  # fmt: skip
    same_state = (Job.status == job.status, Job.progress == job.progress,
                  Job.stage.is_(None) if job.stage is None else Job.stage == job.stage)  # fmt: skip
    failed = session.execute(update(Job).where(Job.id == job.id, *same_state)
                             .values(status="failed", error=body, finished_at=utcnow())).rowcount  # fmt: skip
    if failed:  # the project's webhooks hear of it (a worker's watchdog sends deliveries never sent)
        queue_job_events(session, job.id)
    session.commit()
    session.refresh(job)
    WATCH.forget(job.id)


def requeue_failed_job(session: Session, tenant_id: str, job_id: str) -> Job:
    """Put the tenant's failed job back in the queue (same id, error, counts and chunks cleared) and commit;
    Conflict unless it had failed. The caller sends its task."""
    job = job_for_tenant(session, tenant_id, job_id)
    requeued = session.execute(
        update(Job).where(Job.id == job.id, Job.status == "failed")
        .values(status="queued", stage=None, progress=0.0, error=None, counts={}, n_chunks=0, result=None,
                started_at=None, finished_at=None, heartbeat_at=utcnow(), owner=None, redrives=0,
                analyze_sent_at=None)
    ).rowcount  # fmt: skip
    session.execute(delete(JobChunk).where(JobChunk.job_id == job.id))
    session.commit()
    if not requeued:
        session.refresh(job)
        raise Conflict(f"job {job_id} has status {job.status!r}; only a failed job can be retried", "job-not-failed")
    return job
