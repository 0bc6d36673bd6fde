"""Prometheus metrics and readiness probes for the API and the workers. Light: never imports torch.

Metrics (names prefixed ``feedback_themes_``):

- ``http_request_duration_seconds{method, route, status}``: histogram of API requests, by route *template*
  (``/v1/jobs/{job_id}``), observed by the API's ``service.api.request_metrics.RequestMetrics``.
- ``stage_duration_seconds{stage}``: histogram of pipeline stages, observed by workers via :func:`observe_stage`.
- ``jobs{status}``: gauge of jobs by status, read from the database at scrape time.
- ``queue_depth{queue}``: messages waiting in the ``cpu`` and ``gpu`` queues (Redis ``LLEN``, or the filesystem
  broker's message files), read at scrape time.
- ``collector_up{collector}``: 1 when the scrape-time reads above succeeded, else 0.

Several processes (``feedback-themes api --workers N``, Celery's prefork pool) share their histograms through
prometheus-client's multiprocess mode when ``PROMETHEUS_MULTIPROC_DIR`` names an empty, writable folder that is
set *before* the processes start (wipe it between runs; a tmpfs in containers).
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Histogram, ProcessCollector
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector
from sqlalchemy import Engine, create_engine, func, select, text
from sqlalchemy.pool import NullPool

from service.settings import Settings

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
PROBE_TIMEOUT = 2.0  # seconds: readiness and scrape-time reads never hang longer than about this
QUEUES = ("cpu", "gpu")
JOB_STATUSES = ("queued", "running", "succeeded", "failed")
_REDIS_PRIORITY_SUFFIXES = ("", "\x06\x163", "\x06\x166", "\x06\x169")  # kombu's per-priority lists of a queue

if os.environ.get(MULTIPROC_ENV):
    os.makedirs(os.environ[MULTIPROC_ENV], exist_ok=True)

REQUEST_DURATION = Histogram(
    "feedback_themes_http_request_duration_seconds", "API request latency by route template, method and status.",
    ["method", "route", "status"], buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)  # fmt: skip
STAGE_DURATION = Histogram(
    "feedback_themes_stage_duration_seconds", "Duration of a job's pipeline stage (ingest, embed chunk, "
    "sentiment, train, themes, store) as observed by the worker.", ["stage"],
    buckets=(0.1, 0.5, 1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 10800),
)  # fmt: skip


def observe_stage(stage: str, seconds: float) -> None:
    """Record that a pipeline stage took ``seconds`` (called by workers around each stage)."""
    STAGE_DURATION.labels(stage=stage).observe(max(0.0, seconds))


@contextmanager
def timed_stage(stage: str) -> Iterator[None]:
    """Time the block as ``stage`` (observed also when the block raises)."""
    start = time.perf_counter()
    try:
        yield
    finally:
        observe_stage(stage, time.perf_counter() - start)


# ---------------------------------------------------------------- probes (readiness and scrape-time reads)


def short_error(exc: BaseException) -> str:
    """The kind and first line of an error, without credentials, for probe details."""
    inner = getattr(exc, "orig", None) or exc
    line = (str(inner).strip().splitlines() or [""])[0]
    line = re.sub(r"://[^@/\s]+@", "://***@", line)[:200]
    return f"{type(inner).__name__}: {line}" if line else type(inner).__name__


@lru_cache(maxsize=4)
def probe_engine(url: str) -> Engine:
    """An engine with short connect and statement timeouts, for probes only (not the application's pool)."""
    if url.startswith("sqlite"):
        return create_engine(url, poolclass=NullPool, connect_args={"timeout": PROBE_TIMEOUT})
    connect_args: dict[str, Any] = {}
    if url.startswith("postgresql"):
        millis = int(PROBE_TIMEOUT * 1000)
        connect_args = {"connect_timeout": max(1, int(PROBE_TIMEOUT)), "options": f"-c statement_timeout={millis}"}
    return create_engine(url, pool_size=1, max_overflow=2, pool_timeout=PROBE_TIMEOUT, pool_pre_ping=True,
                         connect_args=connect_args)  # fmt: skip


@lru_cache(maxsize=4)
def redis_client(url: str) -> Any:
    """A Redis client that fails fast (no retries, short socket timeouts)."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return redis.Redis.from_url(url, socket_connect_timeout=PROBE_TIMEOUT, socket_timeout=PROBE_TIMEOUT,
                                retry=Retry(NoBackoff(), 0))  # fmt: skip


def is_redis(url: str) -> bool:
    return url.startswith(("redis://", "rediss://"))


def check_database(settings: Settings) -> dict[str, Any]:
    """Reach the database and read the schema revision (a missing schema is not ready)."""
    with probe_engine(settings.resolved_database_url).connect() as conn:
        revision = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    return {"revision": revision}


def check_broker(settings: Settings) -> dict[str, Any]:
    """Reach the broker: Redis ``PING``, the filesystem broker's queue folder, or a kombu connection."""
    url = settings.resolved_broker_url
    if settings.embedded_broker:
        folder = settings.broker_folder / "queue"
        if not (folder.is_dir() and os.access(folder, os.W_OK)):
            raise OSError(f"broker folder {folder} is missing or not writable")
        return {"transport": "filesystem"}
    if is_redis(url):
        redis_client(url).ping()
        return {"transport": "redis"}
    from kombu import Connection

    with Connection(url, connect_timeout=PROBE_TIMEOUT) as conn:
        conn.ensure_connection(max_retries=1, timeout=PROBE_TIMEOUT)
    return {"transport": url.split(":", 1)[0]}


def _timed(check: Any, settings: Settings) -> dict[str, Any]:
    start = time.perf_counter()
    try:
        detail = {"status": "ok", **check(settings)}
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready", reported with its kind
        detail = {"status": "error", "error": short_error(exc)}
    detail["latency_ms"] = round((time.perf_counter() - start) * 1000, 1)
    return detail


def readiness(settings: Settings) -> dict[str, dict[str, Any]]:
    """Run the database and broker checks in parallel; each detail has ``status`` ok or error."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        database = pool.submit(_timed, check_database, settings)
        broker = pool.submit(_timed, check_broker, settings)
        return {"database": database.result(), "broker": broker.result()}


def jobs_by_status(settings: Settings) -> dict[str, int]:
    """Count jobs by status (every known status present, zero when none)."""
    from service.storage.models import Job

    with probe_engine(settings.resolved_database_url).connect() as conn:
        rows = conn.execute(select(Job.status, func.count()).group_by(Job.status)).all()
    return {**dict.fromkeys(JOB_STATUSES, 0), **{status: int(n) for status, n in rows}}


def queue_depths(settings: Settings) -> dict[str, int]:
    """Messages waiting per queue: ``LLEN`` of each queue's lists on Redis, message files on the filesystem broker."""
    url = settings.resolved_broker_url
    if settings.embedded_broker:
        folder = settings.broker_folder / "queue"
        names = [p.name.partition(".")[2] for p in folder.iterdir()] if folder.is_dir() else []
        return {q: names.count(f"{q}.msg") for q in QUEUES}
    if is_redis(url):
        pipe = redis_client(url).pipeline(transaction=False)
        for queue in QUEUES:
            for suffix in _REDIS_PRIORITY_SUFFIXES:
                pipe.llen(queue + suffix)
        sizes = pipe.execute()
        n = len(_REDIS_PRIORITY_SUFFIXES)
        return {q: int(sum(sizes[i * n : (i + 1) * n])) for i, q in enumerate(QUEUES)}
    return {}


# ---------------------------------------------------------------- exposition


class ServiceCollector(Collector):
    """Scrape-time gauges read from the database and the broker; a failed read sets ``collector_up`` to 0."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("feedback_themes_collector_up", "Whether a scrape-time read succeeded.",
                               labels=["collector"])  # fmt: skip
        for name, read, metric, help_text, label in (
            ("jobs", jobs_by_status, "feedback_themes_jobs", "Jobs by status (from the database).", "status"),
            ("queues", queue_depths, "feedback_themes_queue_depth", "Messages waiting in a Celery queue.", "queue"),
        ):
            try:
                values = read(self.settings)
            except Exception:  # noqa: BLE001 - a scrape must not fail because a dependency is down
                up.add_metric([name], 0)
                continue
            up.add_metric([name], 1)
            family = GaugeMetricFamily(metric, help_text, labels=[label])
            for key, value in sorted(values.items()):
                family.add_metric([key], value)
            yield family
        yield up


class _Forward(Collector):
    """This process's own metrics (the default registry), for single-process mode."""

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()


def multiprocess_registry() -> CollectorRegistry:
    """A registry reading every process's metrics from ``PROMETHEUS_MULTIPROC_DIR``."""
    from prometheus_client import multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return registry


def render_metrics(settings: Settings, accept: str | None = None) -> tuple[bytes, str]:
    """The exposition (format negotiated from ``accept``) of the API's metrics and scrape-time gauges, and its type."""
    if os.environ.get(MULTIPROC_ENV):
        registry = multiprocess_registry()
    else:
        registry = CollectorRegistry()
        registry.register(_Forward())
    registry.register(ServiceCollector(settings))
    encoder, content_type = choose_encoder(accept or "")
    return encoder(registry), content_type


def serve_worker_metrics(port: int, addr: str = "0.0.0.0") -> None:
    """Serve this worker's metrics (stage durations of all its pool processes) over HTTP on ``port``.

    Call in the worker's main process before the pool starts. Without ``PROMETHEUS_MULTIPROC_DIR`` a private
    temporary folder is used (removed at exit), so observations made in prefork children are not lost.
    """
    from prometheus_client import start_http_server, values

    if not os.environ.get(MULTIPROC_ENV):
        folder = tempfile.mkdtemp(prefix="feedback-themes-metrics-")
        owner = os.getpid()
        atexit.register(lambda: os.getpid() == owner and shutil.rmtree(folder, ignore_errors=True))
        os.environ[MULTIPROC_ENV] = folder
        values.ValueClass = values.get_value_class()  # metric children made from now on write to the folder
    registry = multiprocess_registry()
    ProcessCollector(registry=registry)  # the main process's CPU, memory and start time: never an empty page
    start_http_server(port, addr=addr, registry=registry)
