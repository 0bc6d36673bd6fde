"""The FastAPI application: routes under /v1, OpenAPI at /docs and /openapi.json, problem+json errors."""

from __future__ import annotations

from fastapi import FastAPI

from service.api import (
    logs,
    ratelimit,
    routes_alerts,
    routes_jobs,
    routes_ops,
    routes_projects,
    routes_segments,
    routes_tree,
    routes_web,
    routes_webhooks,
)
from service.api.errors import install_error_handlers
from service.api.request_metrics import RequestMetrics
from service.api.uploads import BodySizeLimit
from service.keys import KeyCache
from service.settings import get_settings


def create_app() -> FastAPI:
    """The API for the settings of this process's environment."""
    from worker.celery_app import create_celery

    settings = get_settings()
    app = FastAPI(
        title="feedback-themes",
        version="1.0.0",
        description="Upload customer feedback, poll the job, read the themes a sparse autoencoder finds in it.",
    )
    app.state.settings = settings
    app.state.celery = create_celery(settings)
    app.state.key_cache = KeyCache(settings.api_key_cache_seconds)
    app.state.auth_failures = ratelimit.AuthFailures(settings.auth_failures_per_minute)  # 429 per client address
    install_error_handlers(app)
    app.include_router(routes_ops.router)
    app.include_router(routes_jobs.router)
    app.include_router(routes_projects.router)
    app.include_router(routes_tree.projects)  # the theme tree: /tree, /nodes/{id}, /nodes/{id}/children
    app.include_router(routes_tree.jobs)
    app.include_router(routes_webhooks.router)  # webhooks and their deliveries
    app.include_router(routes_segments.router)  # metadata columns, compare
    app.include_router(routes_alerts.router)  # alerts after each job
    app.include_router(routes_web.router)  # the page at /, and the report tables
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_upload_bytes)
    ratelimit.install(app, settings)  # 429 per key; problem answers documented in OpenAPI
    logs.install()  # tokens redacted; log lines written by a thread, never on the event loop
    app.add_middleware(RequestMetrics)  # outermost: times every answer, 413s included
    return app
