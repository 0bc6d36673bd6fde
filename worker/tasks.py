"""Celery tasks: thin wrappers that take a job id and run a stage from :mod:`worker.runner`.

``run_job`` ingests, then queues one ``embed_chunk`` task per chunk of distinct texts (spread over every worker on
the embedding queue); the task that finishes the last chunk queues ``analyze``. No chord and no result backend: which
chunks are done is stored in the database (:mod:`worker.liveness`), so a broker or result-store restart loses no
job, and the watchdog (:mod:`worker.watchdog`) re-queues whatever a lost message or a dead worker left undone.
Transient errors (database or broker unreachable) are retried with backoff and never fail the job (if they outlast
the retries, the watchdog picks the job up again); any other error ends the job ``failed`` with a problem object.
"""

from __future__ import annotations

import logging
import os
import threading

from celery import Task, shared_task
from celery.signals import worker_process_init, worker_ready, worker_shutdown
from kombu.exceptions import OperationalError as BrokerError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import DBAPIError, OperationalError

from service.metrics import timed_stage
from service.settings import get_settings
from service.supervise import lower_priority
from worker import liveness, runner, webhooks
from worker.celery_app import ANALYZE, DELIVER_WEBHOOK, EMBED_CHUNK, RUN_JOB, heavy_queue
from worker.pipeline.ingest import IngestError

log = logging.getLogger(__name__)
TRANSIENT = (OperationalError, BrokerError, RedisConnectionError, RedisTimeoutError, ConnectionError, TimeoutError)
_watchdog = None


def is_transient(exc: BaseException) -> bool:
    """A failure of the platform (database or broker unreachable, a connection cut), not of the job's data."""
    return isinstance(exc, TRANSIENT) or (isinstance(exc, DBAPIError) and bool(exc.connection_invalidated))


@worker_process_init.connect
def warm_up_pool_process(**_: object) -> None:
    """In each prefork pool process, after the fork: lower its priority (``worker_nice``: the API keeps answering
    while workers use every core), and import in a thread what the first SAE fit would otherwise wait for
    (``sae.trainer.warm_up``, ~1.5–2.5 s), so the first job does not pay it; the pool's start-up is not delayed."""
    lower_priority(get_settings().worker_nice)
    threading.Thread(target=_warm_up, name="warm-up", daemon=True).start()


def _warm_up() -> None:
    try:
        from sae.trainer import warm_up

        warm_up()
    except Exception:  # noqa: BLE001 - an optimisation only; the first job then pays the cost itself
        log.warning("worker warm-up failed", exc_info=True)


@worker_ready.connect
def start_watchdog(sender=None, **_: object) -> None:  # type: ignore[no-untyped-def]
    """In the worker's main process: re-queue jobs whose heartbeat stopped (:mod:`worker.watchdog`)."""
    global _watchdog
    from worker.watchdog import Watchdog

    app = sender.app if sender is not None else None
    if app is None:
        from celery import current_app as app
    _watchdog = Watchdog(app, get_settings()).start()


@worker_shutdown.connect
def stop_watchdog(**_: object) -> None:
    if _watchdog is not None:
        _watchdog.stop()


class JobTask(Task):
    """Retries transient errors with backoff; marks the job failed when a task fails for another reason."""

    autoretry_for = TRANSIENT
    retry_backoff = 2
    retry_backoff_max = 60
    retry_jitter = True
    max_retries = 8
    ignore_result = True

    def on_failure(self, exc, task_id, args, kwargs, einfo) -> None:  # type: ignore[no-untyped-def]
        job_id = args[0] if args else kwargs.get("job_id")
        if is_transient(exc):
            log.warning("task %s for job %s gave up on %s; the watchdog will re-queue the job", self.name, job_id,
                        type(exc).__name__)  # fmt: skip
            return
        log.error("task %s failed for job %s: %s", self.name, job_id, type(exc).__name__)
        if job_id:
            try:
                liveness.fail_job(job_id, runner.unexpected_problem(runner.job_stage(job_id), exc))
                webhooks.send_job_deliveries(self.app, job_id)  # job.failed
            except Exception:  # noqa: BLE001 - the database is gone too: the watchdog sees the job later
                log.warning("could not mark job %s failed", job_id, exc_info=True)


def _retry_if_transient(task: Task, exc: BaseException) -> None:
    """A connection cut mid-statement surfaces as a plain ``DBAPIError``: retry it like the other transient ones."""
    if is_transient(exc) and not isinstance(exc, TRANSIENT):
        raise task.retry(exc=exc, countdown=2)


@shared_task(name=RUN_JOB, bind=True, base=JobTask)
def run_job(self: Task, job_id: str) -> None:
    """Ingest the job's upload, then queue its embedding chunks."""
    settings = get_settings()
    owner = self.request.id or f"local-{os.getpid()}"
    if not liveness.claim_ingest(job_id, owner, settings.job_heartbeat_timeout):
        log.info("job %s is finished, ingested or held by another task; nothing to do", job_id)
        return
    try:
        with liveness.heartbeat(job_id, settings.job_heartbeat_seconds, owner), timed_stage("ingest"):
            n_chunks = runner.ingest(job_id)
    except runner.JobGone:
        log.info("job %s is gone or finished; nothing to do", job_id)
        return
    except IngestError as exc:
        liveness.fail_job(job_id, runner.ingest_problem(exc))
        webhooks.send_job_deliveries(self.app, job_id)  # job.failed
        return
    except DBAPIError as exc:
        _retry_if_transient(self, exc)
        if isinstance(exc, OperationalError):
            raise
        liveness.fail_job(job_id, runner.unexpected_problem("ingest", exc))
        webhooks.send_job_deliveries(self.app, job_id)  # job.failed
        return
    queue = heavy_queue(settings)
    for index in sorted(set(range(n_chunks)) - liveness.done_chunks(job_id)):
        self.app.send_task(EMBED_CHUNK, args=[job_id, index], queue=queue)
    liveness.release(job_id, owner)


@shared_task(name=EMBED_CHUNK, bind=True, base=JobTask)
def embed_chunk(self: Task, job_id: str, index: int) -> int:
    """Embed one chunk of the job's distinct texts into the shared cache; the last chunk done queues the analysis."""
    settings = get_settings()
    try:
        with liveness.heartbeat(job_id, settings.job_heartbeat_seconds), timed_stage("embed"):
            encoded = runner.embed_chunk(job_id, index)
        if liveness.finish_chunk(job_id, index):
            try:
                self.app.send_task(ANALYZE, args=[job_id], queue=heavy_queue(settings))
            except BaseException:
                liveness.unsend_analysis(job_id)
                raise
        return encoded
    except runner.JobGone:
        return 0
    except DBAPIError as exc:
        _retry_if_transient(self, exc)
        raise


@shared_task(name=ANALYZE, bind=True, base=JobTask)
def analyze_job(self: Task, job_id: str) -> None:
    """Sentiment, SAE training or update, themes; stores the results and ends the job."""
    settings = get_settings()
    owner = self.request.id or f"local-{os.getpid()}"
    if not liveness.claim_analysis(job_id, owner, settings.job_heartbeat_timeout):
        log.info("job %s is finished or its analysis is held by another task; nothing to do", job_id)
        return
    try:
        with liveness.heartbeat(job_id, settings.job_heartbeat_seconds, owner):
            runner.analyze_job(job_id, owner)
        webhooks.send_job_deliveries(self.app, job_id)  # job.succeeded and the job's alerts, now committed
    except runner.JobGone:
        log.info("job %s is gone or finished; nothing to do", job_id)
    except DBAPIError as exc:
        _retry_if_transient(self, exc)
        raise


@shared_task(name=DELIVER_WEBHOOK, bind=True, ignore_result=True, autoretry_for=TRANSIENT, retry_backoff=2,
             retry_backoff_max=60, retry_jitter=True, max_retries=8)  # fmt: skip
def deliver_webhook(self: Task, delivery_id: str) -> None:
    """One attempt of a webhook delivery (worker/webhooks.py); a failed one is sent again after its backoff."""
    delay = webhooks.deliver(delivery_id, get_settings())
    if delay is not None:
        webhooks.send_task(self.app, delivery_id, countdown=delay)
