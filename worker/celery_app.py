"""The Celery application, configured from the settings. Light: importing it never imports torch.

Embedded mode uses kombu's ``filesystem://`` broker under the data folder; production uses Redis (or any broker
URL) with the same tasks, queues and options. No result backend is needed (``worker.tasks``).
"""

from __future__ import annotations

from celery import Celery
from kombu import Exchange, Queue

from service.settings import Settings, get_settings

CPU_QUEUE, GPU_QUEUE = "cpu", "gpu"
RUN_JOB = "feedback_themes.run_job"
EMBED_CHUNK = "feedback_themes.embed_chunk"
ANALYZE = "feedback_themes.analyze"
DELIVER_WEBHOOK = "feedback_themes.deliver_webhook"  # one webhook delivery, on the cpu queue


def heavy_queue(settings: Settings) -> str:
    """Queue for embedding and training: ``gpu`` when a GPU worker is configured, else ``cpu``."""
    return GPU_QUEUE if settings.gpu_queue else CPU_QUEUE


def result_backend(settings: Settings) -> str | None:
    """No result backend by default: tasks return nothing that anyone reads, and which embedding chunks are done is
    stored in the database, so a result store's outage cannot lose a job. ``RESULT_BACKEND`` sets one (Flower)."""
    return settings.result_backend or None


def create_celery(settings: Settings | None = None) -> Celery:
    """A Celery app for these settings."""
    settings = settings or get_settings()
    app = Celery("feedback_themes", broker=settings.resolved_broker_url, backend=result_backend(settings))
    transport: dict[str, object] = {"visibility_timeout": settings.broker_visibility_timeout}
    if settings.embedded_broker:
        queue_dir = settings.broker_folder / "queue"
        processed = settings.broker_folder / "processed"
        control = settings.broker_folder / "control"
        for folder in (queue_dir, processed, control):
            folder.mkdir(parents=True, exist_ok=True)
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        transport = {
            "data_folder_in": str(queue_dir),
            "data_folder_out": str(queue_dir),
            "processed_folder": str(processed),
            "control_folder": str(control),
            "store_processed": False,
            "polling_interval": 0.25,
        }
    if settings.resolved_broker_url.startswith(("redis://", "rediss://")):
        app.conf.broker_transport = "worker.redis_transport:Transport"  # survives a Redis restart
    heavy = heavy_queue(settings)
    app.conf.update(
        broker_transport_options=transport,
        broker_connection_retry_on_startup=True,
        task_default_queue=CPU_QUEUE,
        task_queues=[Queue(q, Exchange(q, type="direct"), routing_key=q) for q in (CPU_QUEUE, GPU_QUEUE)],
        task_default_exchange=CPU_QUEUE,
        task_default_routing_key=CPU_QUEUE,
        task_routes={EMBED_CHUNK: {"queue": heavy, "routing_key": heavy}, ANALYZE: {"queue": heavy, "routing_key": heavy}},
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        result_expires=24 * 3600,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_soft_time_limit=settings.job_soft_time_limit,
        task_time_limit=settings.job_hard_time_limit,
        task_ignore_result=True,
        broker_connection_retry=True,
        broker_connection_max_retries=None,  # a broker restart: reconnect for as long as it takes
        worker_hijack_root_logger=False,
        worker_enable_remote_control=not settings.embedded_broker,
        worker_send_task_events=not settings.embedded_broker,
        include=["worker.tasks"],
    )
    return app

