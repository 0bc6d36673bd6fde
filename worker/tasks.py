"""Celery tasks: thin wrappers that take a job id and run a stage from :mod:`worker.jobs`.

``run_job`` ingests, then replaces itself with a chord: the embedding chunks as a group (spread over every
worker on the embedding queue) followed by ``analyze``. Transient errors (database or broker unreachable)
are retried with backoff; any other error ends the job ``failed`` with a problem object.
"""

from __future__ import annotations

import logging
import threading

from celery import Task, chord, group, shared_task
from celery.signals import worker_process_init
from kombu.exceptions import OperationalError as BrokerError
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy.exc import DBAPIError, OperationalError

from service.metrics import timed_stage
from worker import jobs
from worker.celery_app import ANALYZE, EMBED_CHUNK, RUN_JOB
from worker.stages.ingest import IngestError

log = logging.getLogger(__name__)
TRANSIENT = (OperationalError, BrokerError, RedisConnectionError, ConnectionError, TimeoutError)


@worker_process_init.connect
def warm_up_pool_process(**_: object) -> None:
    """In each prefork pool process, after the fork: a thread imports what the first SAE fit would otherwise wait for
    (``sae.trainer.warm_up``, ~1.5–2.5 s), so the first job does not pay it; the pool's start-up is not delayed."""
    threading.Thread(target=_warm_up, name="warm-up", daemon=True).start()


def _warm_up() -> None:
    try:
        from sae.trainer import warm_up

        warm_up()
    except Exception:  # noqa: BLE001 - an optimisation only; the first job then pays the cost itself
        log.warning("worker warm-up failed", exc_info=True)


class JobTask(Task):
    """Retries transient errors with backoff; marks the job failed when a task fails for good."""

    autoretry_for = TRANSIENT
    retry_backoff = 2
    retry_backoff_max = 120
    retry_jitter = True
    max_retries = 6

    def on_failure(self, exc, task_id, args, kwargs, einfo) -> None:  # type: ignore[no-untyped-def]
        job_id = args[0] if args else kwargs.get("job_id")
        log.error("task %s failed for job %s: %s", self.name, job_id, type(exc).__name__)
        if job_id:
            jobs.fail_job(job_id, jobs.unexpected_problem(jobs.job_stage(job_id), exc))


@shared_task(name=RUN_JOB, bind=True, base=JobTask)
def run_job(self: Task, job_id: str) -> None:
    """Ingest the job's upload, then embed (chunks in parallel) and analyse."""
    try:
        with timed_stage("ingest"):
            n_chunks = jobs.ingest(job_id)
    except jobs.JobGone:
        log.info("job %s is gone or finished; nothing to do", job_id)
        return
    except IngestError as exc:
        jobs.fail_job(job_id, jobs.ingest_problem(exc))
        return
    except DBAPIError as exc:
        if isinstance(exc, OperationalError):
            raise
        jobs.fail_job(job_id, jobs.unexpected_problem("ingest", exc))
        return
    chunks = group(embed_chunk.si(job_id, i) for i in range(n_chunks))
    raise self.replace(chord(chunks, analyze.si(job_id)))


@shared_task(name=EMBED_CHUNK, bind=True, base=JobTask)
def embed_chunk(self: Task, job_id: str, index: int) -> int:
    """Embed one chunk of the job's distinct texts into the shared cache."""
    try:
        with timed_stage("embed"):
            return jobs.embed_chunk(job_id, index)
    except jobs.JobGone:
        return 0


@shared_task(name=ANALYZE, bind=True, base=JobTask)
def analyze(self: Task, job_id: str) -> None:
    """Sentiment, SAE training or update, themes; stores the results and ends the job."""
    try:
        jobs.analyze(job_id)
    except jobs.JobGone:
        log.info("job %s is gone or finished; nothing to do", job_id)
