"""Who works on a job, and whether it is still alive: claims, heartbeats and the embedding chunks done.

The job row is the truth. A task that ingests or analyses a job first *claims* it (``jobs.owner`` = its Celery task
id, which a redelivered or retried message keeps); a second task for the same step finds it owned by a live task and
does nothing. While a task works it touches ``jobs.heartbeat_at`` from a thread. Each embedding chunk that is done
adds a ``job_chunks`` row; the task that finishes the last one queues the analysis (once: ``analyze_sent_at``).
A job whose heartbeat stops is re-queued from this state by :mod:`worker.watchdog`. The analysis stores its results
only while it still owns the job, so a job succeeds exactly once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from service.storage.models import Job, JobChunk, utcnow
from service.storage.session import session_scope
from service.storage.webhooks import queue_job_events

log = logging.getLogger(__name__)
ACTIVE = ("queued", "running")


def stale_before(timeout: float, now: datetime | None = None) -> datetime:
    return (now or utcnow()) - timedelta(seconds=timeout)


def claim_ingest(job_id: str, owner: str, timeout: float) -> bool:
    """Take the job's ingest for task ``owner``: only a job not ingested yet (or already this task's), not held by
    another task whose heartbeat is fresh."""
    return _claim(job_id, owner, timeout, or_(Job.n_chunks == 0, Job.owner == owner))


def claim_analysis(job_id: str, owner: str, timeout: float) -> bool:
    """Take the job's analysis for task ``owner``: an ingested, running job not held by another live task."""
    return _claim(job_id, owner, timeout, Job.n_chunks > 0, Job.status == "running")


def _claim(job_id: str, owner: str, timeout: float, *conditions) -> bool:  # type: ignore[no-untyped-def]
    free = or_(Job.owner.is_(None), Job.owner == owner, Job.heartbeat_at < stale_before(timeout))
    with session_scope() as session:
        claimed = session.execute(
            update(Job).where(Job.id == job_id, Job.status.in_(ACTIVE), free, *conditions)
            .values(owner=owner, heartbeat_at=utcnow())
        ).rowcount  # fmt: skip
    return claimed == 1


def release(job_id: str, owner: str) -> None:
    """Give up the job's claim (the next step's tasks are queued)."""
    with session_scope() as session:
        session.execute(update(Job).where(Job.id == job_id, Job.owner == owner).values(owner=None, heartbeat_at=utcnow()))


def touch(job_id: str, owner: str | None = None) -> None:
    """Record that a task still works on the job (an owned step only while the claim is the task's)."""
    where = [Job.id == job_id, Job.status.in_(ACTIVE)]
    if owner is not None:
        where.append(Job.owner == owner)
    with session_scope() as session:
        session.execute(update(Job).where(*where).values(heartbeat_at=utcnow()))


@contextmanager
def heartbeat(job_id: str, interval: float, owner: str | None = None) -> Iterator[None]:
    """Touch the job every ``interval`` seconds from a thread while the block runs (a failed touch is logged and
    tried again next time: a database outage must not end the work)."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(interval):
            try:
                touch(job_id, owner)
            except Exception as exc:  # noqa: BLE001 - liveness only
                log.warning("heartbeat of job %s failed: %s", job_id, type(exc).__name__)

    thread = threading.Thread(target=beat, name=f"heartbeat-{job_id[:8]}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=interval + 5)


def done_chunks(job_id: str) -> set[int]:
    with session_scope() as session:
        return set(session.scalars(select(JobChunk.chunk).where(JobChunk.job_id == job_id)))


def finish_chunk(job_id: str, index: int) -> bool:
    """Record chunk ``index`` as embedded; True when every chunk is done and this call is the one that must queue
    the analysis (it then owns ``analyze_sent_at``; :func:`unsend_analysis` gives it back if queueing fails)."""
    with session_scope() as session:
        dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
        session.execute(dialect.insert(JobChunk).values(job_id=job_id, chunk=index).on_conflict_do_nothing())
    with session_scope() as session:
        n_chunks = session.scalar(select(Job.n_chunks).where(Job.id == job_id)) or 0
        done = session.scalar(select(func.count()).select_from(JobChunk).where(JobChunk.job_id == job_id))
        if done < n_chunks:
            return False
        sent = session.execute(
            update(Job).where(Job.id == job_id, Job.status == "running", Job.analyze_sent_at.is_(None))
            .values(analyze_sent_at=utcnow(), heartbeat_at=utcnow())
        ).rowcount  # fmt: skip
    return sent == 1


def unsend_analysis(job_id: str) -> None:
    """The analysis could not be queued: let the next chunk task or the watchdog queue it."""
    with session_scope() as session:
        session.execute(update(Job).where(Job.id == job_id).values(analyze_sent_at=None))


def fail_job(job_id: str, body: dict[str, Any]) -> None:
    """End the job ``failed`` with a problem object (unless it already succeeded); a job that was not failed already
    queues its ``job.failed`` webhook deliveries (sent by the caller: ``worker.webhooks.send_job_deliveries``)."""
    with session_scope() as session:
        was = session.scalar(select(Job.status).where(Job.id == job_id))
        ended = session.execute(
            update(Job).where(Job.id == job_id, Job.status != "succeeded")
            .values(status="failed", error=body, finished_at=utcnow())
        ).rowcount  # fmt: skip
        if ended and was != "failed":
            queue_job_events(session, job_id)
