"""The watchdog: re-queues jobs whose heartbeat stopped, from the state stored in the job row.

A job's messages can be lost (a broker restarted without persistence, the embedded broker's worker killed) and its
worker can die (killed, out of memory) while the broker holds its message for hours (the visibility timeout). Every
worker's main process runs :class:`Watchdog`: every ``watchdog_interval`` seconds it looks for queued or running jobs
whose heartbeat is older than ``job_heartbeat_timeout`` and whose queue has no message waiting (a job behind a busy
queue is not stalled), claims each with one conditional update (so one watchdog acts, whichever of several), and
queues its next step: ingest when it was not ingested, the embedding chunks that are missing, else the analysis.
After ``job_max_redrives`` re-queues the job ends ``failed`` (``job-lost``), retryable.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select, update

from service.metrics import queue_depths
from service.problems import problem
from service.settings import Settings
from service.storage.models import Job, utcnow
from service.storage.session import session_scope
from worker import liveness, webhooks
from worker.celery_app import ANALYZE, CPU_QUEUE, EMBED_CHUNK, RUN_JOB, heavy_queue

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Stalled:
    id: str
    status: str
    n_chunks: int
    redrives: int
    heartbeat_at: datetime | None


def stalled_jobs(timeout: float, now: datetime | None = None, limit: int = 100) -> list[Stalled]:
    """Queued or running jobs whose heartbeat is older than ``timeout`` seconds, oldest first."""
    cutoff = liveness.stale_before(timeout, now)
    query = (select(Job.id, Job.status, Job.n_chunks, Job.redrives, Job.heartbeat_at)
             .where(Job.status.in_(liveness.ACTIVE), or_(Job.heartbeat_at < cutoff, Job.heartbeat_at.is_(None)))
             .order_by(Job.heartbeat_at).limit(limit))  # fmt: skip
    with session_scope() as session:
        return [Stalled(*row) for row in session.execute(query)]


def next_step(job: Stalled) -> tuple[str, list[int]]:
    """What the job needs next: ``("ingest", [])``, ``("embed", missing chunks)`` or ``("analyze", [])``."""
    if job.status == "queued" or job.n_chunks == 0:
        return "ingest", []
    missing = sorted(set(range(job.n_chunks)) - liveness.done_chunks(job.id))
    return ("embed", missing) if missing else ("analyze", [])


def _claim_redrive(job: Stalled) -> bool:
    """Take the re-drive of this job (no other watchdog did since we read it): fresh heartbeat, no owner."""
    same = Job.heartbeat_at.is_(None) if job.heartbeat_at is None else Job.heartbeat_at == job.heartbeat_at
    with session_scope() as session:
        claimed = session.execute(
            update(Job).where(Job.id == job.id, Job.status == job.status, same)
            .values(heartbeat_at=utcnow(), owner=None, redrives=Job.redrives + 1, analyze_sent_at=None)
        ).rowcount  # fmt: skip
    return claimed == 1


def lost_problem(job_id: str, redrives: int) -> dict:
    return problem(503, "The job was lost", f"its worker or its queued task was lost {redrives} times; "
                   f"POST /v1/jobs/{job_id}/retry runs it again", "job-lost")  # fmt: skip


def redrive(celery, settings: Settings, job: Stalled, depths: dict[str, int]) -> str | None:  # type: ignore[no-untyped-def]
    """Queue the stalled job's next step; returns what was done (None when it was left alone)."""

    step, missing = next_step(job)
    queue = CPU_QUEUE if step == "ingest" else heavy_queue(settings)
    if depths.get(queue, 0) > 0:
        return None  # its message may be waiting behind others: look again once the queue is drained
    if not _claim_redrive(job):
        return None
    if job.redrives >= settings.job_max_redrives:
        liveness.fail_job(job.id, lost_problem(job.id, job.redrives))
        webhooks.send_job_deliveries(celery, job.id)  # job.failed
        log.error("job %s lost %d times: failed", job.id, job.redrives)
        return "failed"
    if step == "ingest":
        celery.send_task(RUN_JOB, args=[job.id], queue=CPU_QUEUE)
    elif step == "embed":
        for index in missing:
            celery.send_task(EMBED_CHUNK, args=[job.id, index], queue=queue)
    else:
        with session_scope() as session:
            session.execute(update(Job).where(Job.id == job.id).values(analyze_sent_at=utcnow()))
        celery.send_task(ANALYZE, args=[job.id], queue=queue)
    log.warning("job %s showed no heartbeat for %.0f s: re-queued its %s%s", job.id, settings.job_heartbeat_timeout,
                step, f" chunks {missing}" if missing else "")  # fmt: skip
    return step


def scan(celery, settings: Settings) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """One pass: re-drive every stalled job; returns job id → what was done."""
    stalled = stalled_jobs(settings.job_heartbeat_timeout)
    if not stalled:
        return {}
    depths = queue_depths(settings)
    done = {}
    for job in stalled:
        action = redrive(celery, settings, job, depths)
        if action:
            done[job.id] = action
    return done


class Watchdog:
    """A daemon thread running :func:`scan` every ``watchdog_interval`` seconds until stopped."""

    def __init__(self, celery, settings: Settings) -> None:  # type: ignore[no-untyped-def]
        self.celery, self.settings = celery, settings
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.run, name="job-watchdog", daemon=True)

    def start(self) -> "Watchdog":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopped.set()

    def run(self) -> None:
        while not self.stopped.wait(self.settings.watchdog_interval):
            try:
                scan(self.celery, self.settings)
                webhooks.resend_stale(self.celery, self.settings)  # webhook deliveries whose task was lost
            except Exception as exc:  # noqa: BLE001 - a broker or database outage: try again next time
                log.warning("watchdog scan failed: %s: %s", type(exc).__name__, str(exc)[:200])
