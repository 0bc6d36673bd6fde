"""``/v1/projects/{project_id}/webhooks``: endpoints a project sends its events to, and each event's delivery.

A webhook gets ``alert``, ``job.succeeded`` and/or ``job.failed`` events as signed JSON (``format: json``; its
``secret``, shown once, signs each body) or as a short chat message (``slack``, ``teams``, ``discord``,
``google_chat``: the service's incoming-webhook URL). Its URL must be ``https://`` and resolve to public addresses
only, unless ``WEBHOOK_ALLOW_PRIVATE`` is set (``worker/webhooks.py``, which sends them too).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Body, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from service.api.deps import SessionDep, SettingsDep, TenantDep
from service.api.pagination import decode_cursor, next_cursor
from service.storage.models import Webhook
from service.storage.tenancy import project_for_tenant
from service.storage.webhooks import create_webhook, delete_webhook, list_deliveries, list_webhooks, webhook_of_project
from worker.webhooks import check_url

router = APIRouter(prefix="/v1/projects", tags=["webhooks"])
Event = Literal["alert", "job.succeeded", "job.failed"]
Format = Literal["json", "slack", "teams", "discord", "google_chat"]
ALL_EVENTS: list[Event] = ["alert", "job.succeeded", "job.failed"]


class WebhookIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(min_length=1, max_length=2000, description="https:// URL (a chat format: that service's "
                     "incoming-webhook URL)")  # fmt: skip
    format: Format = Field("json", description="json: the signed event; slack, teams, discord, google_chat: a short "
                           "chat message")  # fmt: skip
    events: list[Event] = Field(default_factory=lambda: list(ALL_EVENTS), min_length=1, max_length=3,
                                description="The events to send (default: all)")  # fmt: skip


class WebhookOut(BaseModel):
    id: str
    project_id: str
    url: str
    format: Format
    events: list[Event]
    created_at: datetime


class WebhookCreated(WebhookOut):
    secret: str = Field(description="Signs each JSON delivery (X-Feedback-Themes-Signature); shown only here")


class WebhookList(BaseModel):
    webhooks: list[WebhookOut]


class DeliveryOut(BaseModel):
    id: str = Field(description="Sent as X-Feedback-Themes-Delivery: receivers de-duplicate on it")
    event: Event
    event_key: str
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    last_status: int | None = Field(description="The HTTP status of the last attempt's answer")
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None


class DeliveryList(BaseModel):
    deliveries: list[DeliveryOut]
    next_cursor: str | None


def webhook_out(webhook: Webhook) -> WebhookOut:
    return WebhookOut(id=webhook.id, project_id=webhook.project_id, url=webhook.url, format=webhook.format,
                      events=webhook.events, created_at=webhook.created_at)  # fmt: skip


@router.post("/{project_id}/webhooks", status_code=201, response_model=WebhookCreated,
             summary="Send this project's events to a URL (the secret is shown once)")  # fmt: skip
def post_webhook(project_id: str, body: Annotated[WebhookIn, Body()], tenant: TenantDep, session: SessionDep,
                 settings: SettingsDep) -> WebhookCreated:  # fmt: skip
    project = project_for_tenant(session, tenant, project_id)
    check_url(body.url, body.format, settings.webhook_allow_private)
    webhook = create_webhook(session, project, body.url, body.format, list(body.events), settings.webhooks_per_project)
    session.commit()  # before the answer: the session dependency would commit only after it is sent
    return WebhookCreated(**webhook_out(webhook).model_dump(), secret=webhook.secret)


@router.get("/{project_id}/webhooks", response_model=WebhookList, summary="This project's webhooks, oldest first")
def get_webhooks(project_id: str, tenant: TenantDep, session: SessionDep) -> WebhookList:
    project = project_for_tenant(session, tenant, project_id)
    return WebhookList(webhooks=[webhook_out(w) for w in list_webhooks(session, project.id)])


@router.delete("/{project_id}/webhooks/{webhook_id}", status_code=204, summary="Delete a webhook and its deliveries")
def remove_webhook(project_id: str, webhook_id: str, tenant: TenantDep, session: SessionDep) -> Response:
    delete_webhook(session, project_for_tenant(session, tenant, project_id).id, webhook_id)
    session.commit()
    return Response(status_code=204)


@router.get("/{project_id}/webhooks/{webhook_id}/deliveries", response_model=DeliveryList,
            summary="A webhook's deliveries, newest first")  # fmt: skip
def get_deliveries(project_id: str, webhook_id: str, tenant: TenantDep, session: SessionDep,
                   limit: Annotated[int, Query(ge=1, le=500)] = 50,
                   cursor: Annotated[str | None, Query(max_length=40)] = None) -> DeliveryList:  # fmt: skip
    webhook = webhook_of_project(session, project_for_tenant(session, tenant, project_id).id, webhook_id)
    offset = decode_cursor(cursor)
    rows, total = list_deliveries(session, webhook.id, offset, limit)
    deliveries = [DeliveryOut(id=d.id, event=d.event, event_key=d.event_key, status=d.status, attempts=d.attempts,
                              last_status=d.last_status, last_error=d.last_error, created_at=d.created_at,
                              delivered_at=d.delivered_at) for d in rows]  # fmt: skip
    return DeliveryList(deliveries=deliveries, next_cursor=next_cursor(offset, limit, total))
