"""Webhooks of a project and their deliveries: registering, listing, deleting, and turning a job's events into
deliveries.

An event (``job.succeeded``, ``job.failed``, ``alert``) becomes one ``WebhookDelivery`` row per webhook of the
project subscribed to it, in the transaction that made the event (the job's end, its alerts); the row is the truth
about the delivery, and ``(webhook_id, event_key)`` is unique, so an event queued twice is delivered once. Sending is
the workers' (``worker/webhooks.py``). Checking a URL's address is too: storage only stores what the API accepted.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from service.settings import get_settings
from service.storage.alerts import list_job_alerts
from service.storage.errors import InvalidInput, NotFound
from service.storage.models import Alert, Job, Project, Webhook, WebhookDelivery, new_id

EVENTS = ("alert", "job.succeeded", "job.failed")
FORMATS = ("json", "slack", "teams", "discord", "google_chat")


# ---------------------------------------------------------------- webhooks


def create_webhook(session: Session, project: Project, url: str, fmt: str, events: list[str], limit: int) -> Webhook:
    """Store a webhook of the project with a new secret (InvalidInput ``webhook-limit`` past ``limit`` webhooks)."""
    count = session.scalar(select(func.count()).select_from(Webhook).where(Webhook.project_id == project.id)) or 0
    if count >= limit:
        raise InvalidInput(f"the project already has {count} webhooks, the most it may have "
                           f"(FEEDBACK_THEMES_WEBHOOKS_PER_PROJECT); delete one first", "webhook-limit")  # fmt: skip
    webhook = Webhook(project_id=project.id, tenant_id=project.tenant_id, url=url, format=fmt,
                      events=[e for e in EVENTS if e in events], secret=secrets.token_urlsafe(32))  # fmt: skip
    session.add(webhook)
    session.flush()
    return webhook


def list_webhooks(session: Session, project_id: str) -> list[Webhook]:
    """The project's webhooks, oldest first."""
    query = select(Webhook).where(Webhook.project_id == project_id).order_by(Webhook.created_at, Webhook.id)
    return list(session.scalars(query))


def webhook_of_project(session: Session, project_id: str, webhook_id: str) -> Webhook:
    webhook = session.get(Webhook, webhook_id)
    if webhook is None or webhook.project_id != project_id:
        raise NotFound(f"no webhook {webhook_id!r} in this project", "webhook-not-found")
    return webhook


def delete_webhook(session: Session, project_id: str, webhook_id: str) -> None:
    """Delete the webhook and its deliveries (a delivery whose task is queued then finds nothing to do)."""
    webhook = webhook_of_project(session, project_id, webhook_id)
    session.execute(delete(WebhookDelivery).where(WebhookDelivery.webhook_id == webhook.id))
    session.execute(delete(Webhook).where(Webhook.id == webhook.id))


def list_deliveries(session: Session, webhook_id: str, offset: int, limit: int) -> tuple[list[WebhookDelivery], int]:
    """The webhook's deliveries, newest first, and how many there are."""
    where = WebhookDelivery.webhook_id == webhook_id
    total = session.scalar(select(func.count()).select_from(WebhookDelivery).where(where)) or 0
    query = (select(WebhookDelivery).where(where)
             .order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id.desc()).offset(offset).limit(limit))  # fmt: skip
    return list(session.scalars(query)), total


# ---------------------------------------------------------------- events → deliveries


def queue_deliveries(
    session: Session, project_id: str, event: str, event_key: str, payload: dict[str, Any]
) -> list[str]:
    """One pending delivery of ``payload`` per webhook of the project subscribed to ``event``, skipping a webhook
    that already has this ``event_key``; returns the new deliveries' ids (sent by the workers once this transaction
    commits: ``worker.webhooks.send_queued``)."""
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    made = []
    for webhook in list_webhooks(session, project_id):
        if event not in webhook.events:
            continue
        delivery_id = new_id()
        row = {"id": delivery_id, "webhook_id": webhook.id, "project_id": project_id, "event": event,
               "event_key": event_key, "payload": payload, "status": "pending", "attempts": 0}  # fmt: skip
        statement = dialect.insert(WebhookDelivery).values(**row).on_conflict_do_nothing()
        if session.execute(statement.returning(WebhookDelivery.id)).scalar_one_or_none() is not None:
            made.append(delivery_id)
    return made


def queue_job_events(session: Session, job_id: str) -> list[str]:
    """The deliveries of a job that just ended: ``job.succeeded`` and one ``alert`` per alert of the job, or
    ``job.failed``; returns the new deliveries' ids. Idempotent (each event has a stable key)."""
    job = session.get(Job, job_id, populate_existing=True)  # as this transaction left it
    if job is None or job.status not in ("succeeded", "failed"):
        return []
    project = session.get(Project, job.project_id)
    base = (get_settings().public_url or "").rstrip("/")
    if job.status == "failed":
        finished = job.finished_at.isoformat() if job.finished_at else ""
        return queue_deliveries(session, project.id, "job.failed", f"job.failed:{job.id}:{finished}",
                                job_payload(job, project, base))  # fmt: skip
    made = queue_deliveries(session, project.id, "job.succeeded", f"job.succeeded:{job.id}",
                            job_payload(job, project, base))  # fmt: skip
    keys = dict(session.execute(select(Alert.id, Alert.key).where(Alert.job_id == job.id)).all())
    for alert in list_job_alerts(session, job.id):
        made += queue_deliveries(session, project.id, "alert", f"alert:{keys[alert['id']]}", alert_payload(alert, base))
    return made


def job_payload(job: Job, project: Project, base: str = "") -> dict[str, Any]:
    """A ``job.succeeded`` or ``job.failed`` event's body."""
    links = {"job": f"{base}/v1/jobs/{job.id}"}
    if job.status == "succeeded":
        links |= {"themes": f"{base}/v1/projects/{project.id}/themes", "tree": f"{base}/v1/projects/{project.id}/tree"}
    return {"event": f"job.{job.status}", "job_id": job.id, "project_id": project.id, "project_name": project.name,
            "status": job.status, "counts": dict(job.counts or {}), "finished_at": iso(job.finished_at),
            "error": job.error if job.status == "failed" else None, "links": links}  # fmt: skip


def alert_payload(alert: dict[str, Any], base: str = "") -> dict[str, Any]:
    """An ``alert`` event's body: the alert as the alerts API shows it (``alert``: ``storage.alerts.alert_view``),
    and links to the project's alerts and the alert's node."""
    links = {"alerts": f"{base}/v1/projects/{alert['project_id']}/alerts"}
    if alert.get("theme"):
        links["theme"] = f"{base}/v1/projects/{alert['project_id']}/nodes/{alert['theme']['id']}"
    return {"event": "alert", **alert, "created_at": iso(alert["created_at"]), "links": links}


def iso(moment: datetime | None) -> str | None:
    """A UTC time as ISO 8601 with ``Z``."""
    return moment.isoformat().replace("+00:00", "Z") if moment is not None else None
