"""Sending webhook deliveries: the address check, signing, the JSON POST, the chat formats (through apprise), retries
and the re-send of deliveries whose task was lost.

A delivery row (``webhook_deliveries``) is the truth. Its task runs it only while the row is ``pending`` and due, and
first *claims* it (one conditional update of ``queued_at``, which then holds the time the claim lapses), so two
messages for one delivery never send it twice at once, and a redelivered message for a ``delivered`` row does
nothing. A failed attempt is sent again after ``webhook_backoff_seconds * 2**(attempts - 1)`` (``queued_at``: when
it is due), up to ``webhook_max_attempts``; a pending delivery whose due time is more than ``webhook_resend_after``
past is sent again by a worker's watchdog (:func:`resend_stale`). Receivers de-duplicate on the delivery id (sent
as ``X-Feedback-Themes-Delivery``): a worker killed after the receiver answered but before the row was updated
sends it again.

Addresses: a webhook's host must resolve to public addresses only (unless ``webhook_allow_private``), checked when
it is registered and again before every attempt (DNS may have changed); a JSON POST goes to the checked address.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import socket
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import or_, select, update

from service.metrics import queue_depths
from service.settings import Settings
from service.storage.errors import InvalidInput
from service.storage.models import Job, Webhook, WebhookDelivery, utcnow
from service.storage.session import session_scope
from worker.celery_app import CPU_QUEUE, DELIVER_WEBHOOK

log = logging.getLogger(__name__)
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
USER_AGENT = "feedback-themes"
EARLY = timedelta(seconds=5)  # a message may run this much before its delivery is due (clocks of two machines)
# the apprise plugin that must recognise a chat format's URL natively (module, class)
CHAT_PLUGINS = {"slack": ("apprise.plugins.slack", "NotifySlack"),
                "teams": ("apprise.plugins.workflows", "NotifyWorkflows"),
                "discord": ("apprise.plugins.discord", "NotifyDiscord"),
                "google_chat": ("apprise.plugins.google_chat", "NotifyGoogleChat")}  # fmt: skip
CHAT_EXAMPLES = {"slack": "https://hooks.slack.com/services/T…/B…/…",
                 "teams": "a Teams workflow's https://….logic.azure.com/workflows/…/triggers/manual/paths/invoke?… URL",
                 "discord": "https://discord.com/api/webhooks/…/…",
                 "google_chat": "https://chat.googleapis.com/v1/spaces/…/messages?key=…&token=…"}  # fmt: skip


# ---------------------------------------------------------------- addresses


def refused_kind(address: Address) -> str | None:
    """Why a webhook may not be sent to this address (``loopback``, ``private`` …), or None for a public one."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    for kind in ("unspecified", "loopback", "link_local", "multicast", "private", "reserved"):
        if getattr(address, f"is_{kind}"):
            return kind.replace("_", "-")
    return None if address.is_global else "non-public"


def resolve(host: str, port: int) -> list[Address]:
    """The addresses a host name (or address literal) resolves to; InvalidInput ``webhook-unresolvable``."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError, ValueError) as exc:
        raise InvalidInput(f"the webhook's host {host!r} does not resolve ({exc})", "webhook-unresolvable") from None
    addresses = list(dict.fromkeys(ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos))
    if not addresses:
        raise InvalidInput(f"the webhook's host {host!r} does not resolve", "webhook-unresolvable")
    return addresses


def check_address(url: str, allow_private: bool) -> list[Address]:
    """The addresses of the URL's host, once it is a valid ``https://`` URL (``http://`` too with ``allow_private``)
    whose every address is public (any address with ``allow_private``); InvalidInput otherwise."""
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        raise InvalidInput("the webhook URL holds whitespace or control characters", "webhook-url-invalid")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidInput(f"the webhook URL is not a valid URL ({exc})", "webhook-url-invalid") from None
    schemes = ("https", "http") if allow_private else ("https",)
    if parts.scheme not in schemes:
        setting = "" if allow_private else " (http:// only with FEEDBACK_THEMES_WEBHOOK_ALLOW_PRIVATE=true)"
        raise InvalidInput(f"the webhook URL must start with https://{setting}", "webhook-url-scheme")
    if not parts.hostname:
        raise InvalidInput("the webhook URL has no host", "webhook-url-invalid")
    addresses = resolve(parts.hostname, port or (443 if parts.scheme == "https" else 80))
    if not allow_private:
        for address in addresses:
            kind = refused_kind(address)
            if kind:
                raise InvalidInput(f"the webhook's host {parts.hostname} is or resolves to {address}, a {kind} address; "
                                   "webhooks go to public addresses only (FEEDBACK_THEMES_WEBHOOK_ALLOW_PRIVATE=true "
                                   "allows private ones)", "webhook-private-address")  # fmt: skip
    return addresses


def chat_plugin(url: str, fmt: str):  # type: ignore[no-untyped-def]
    """The apprise notifier of a chat format's URL (its service's own incoming-webhook URL); InvalidInput
    ``webhook-format-url`` when apprise does not recognise it as that service's."""
    import importlib

    import apprise

    module, name = CHAT_PLUGINS[fmt]
    plugin = apprise.Apprise.instantiate(url)
    if plugin is None or not isinstance(plugin, getattr(importlib.import_module(module), name)):
        raise InvalidInput(f"a {fmt} webhook needs that service's incoming-webhook URL ({CHAT_EXAMPLES[fmt]})",
                           "webhook-format-url")  # fmt: skip
    return plugin


def check_url(url: str, fmt: str, allow_private: bool) -> None:
    """Whether a webhook may be registered with this URL and format (InvalidInput, with a code, if not)."""
    if fmt != "json":
        chat_plugin(url, fmt)
    check_address(url, allow_private)


# ---------------------------------------------------------------- signing and messages


def body_bytes(payload: dict[str, Any]) -> bytes:
    """The JSON body of a delivery: compact, UTF-8."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def signature(secret: str, body: bytes, timestamp: int) -> str:
    """``t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>`` (the ``X-Feedback-Themes-Signature``)."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def json_headers(delivery_id: str, event: str, secret: str, body: bytes, timestamp: int) -> dict[str, str]:
    return {"Content-Type": "application/json", "User-Agent": USER_AGENT, "X-Feedback-Themes-Event": event,
            "X-Feedback-Themes-Delivery": delivery_id,
            "X-Feedback-Themes-Signature": signature(secret, body, timestamp)}  # fmt: skip


def chat_text(payload: dict[str, Any]) -> tuple[str, str]:
    """A chat message's title and body for an event: the alert's title and figures, or the job's outcome; a link."""
    event, links = payload.get("event"), payload.get("links") or {}
    if event == "alert":
        figures, lines = payload.get("figures") or {}, []
        if figures.get("count") is not None and figures.get("n"):
            lines.append(f"{figures['count']} of {figures['n']} comments ({payload.get('window')} window)")
        if figures.get("share") is not None and figures.get("baseline_share") is not None:
            lift = f", ×{figures['lift']:.1f}" if figures.get("lift") else ""
            lines.append(f"share {figures['share']:.1%} vs {figures['baseline_share']:.1%} before{lift}")
        if figures.get("sentiment_mean") is not None and figures.get("baseline_sentiment") is not None:
            lines.append(f"sentiment {figures['sentiment_mean']:+.2f} vs {figures['baseline_sentiment']:+.2f} before")
        examples = payload.get("examples") or []
        if examples and examples[0].get("text"):
            text = str(examples[0]["text"])
            lines.append(f"“{text[:200]}{'…' if len(text) > 200 else ''}”")
        lines.append(links.get("theme") or links.get("alerts", ""))
        return str(payload.get("title") or "Alert"), "\n".join(line for line in lines if line)
    project = payload.get("project_name") or payload.get("project_id")
    counts = payload.get("counts") or {}
    if event == "job.failed":
        detail = (payload.get("error") or {}).get("detail") or "see the job"
        return f"Analysis failed: {project}", f"{detail}\n{links.get('job', '')}".strip()
    documents = counts.get("project_documents") or counts.get("documents")
    told = f"{documents} comments analysed" if documents is not None else "The themes are updated"
    return f"Analysis finished: {project}", f"{told}\n{links.get('themes') or links.get('job', '')}".strip()


# ---------------------------------------------------------------- one attempt


@dataclass(frozen=True)
class Claim:
    """A delivery held by this task until ``held_until``, with what sending it needs."""

    id: str
    event: str
    payload: dict[str, Any]
    attempts: int
    held_until: datetime
    url: str
    format: str
    secret: str


@dataclass(frozen=True)
class Attempt:
    """How an attempt went: ``ok`` (2xx or the chat service accepted it), else the status or error; ``final``: never
    retried (the address was refused)."""

    ok: bool
    status: int | None = None
    error: str | None = None
    final: bool = False


def claim(delivery_id: str, lease: float, now: datetime | None = None) -> Claim | None:
    """Take a pending, due delivery for ``lease`` seconds; None when it is done, not due, gone or held by another
    task."""
    now = now or utcnow()
    with session_scope() as session:
        row = session.get(WebhookDelivery, delivery_id)
        if row is None or row.status != "pending" or (row.queued_at is not None and row.queued_at > now + EARLY):
            return None
        webhook = session.get(Webhook, row.webhook_id)
        if webhook is None:
            return None
        same = (
            WebhookDelivery.queued_at.is_(None) if row.queued_at is None else WebhookDelivery.queued_at == row.queued_at
        )
        held_until = now + timedelta(seconds=lease)
        taken = session.execute(update(WebhookDelivery)
                                .where(WebhookDelivery.id == delivery_id, WebhookDelivery.status == "pending", same)
                                .values(queued_at=held_until)).rowcount  # fmt: skip
        if taken != 1:
            return None
        return Claim(row.id, row.event, dict(row.payload), row.attempts, held_until, webhook.url, webhook.format,
                     webhook.secret)  # fmt: skip


def send(held: Claim, settings: Settings) -> Attempt:
    """One attempt: the address checked again, then the JSON POST (to the checked address) or the chat message."""
    try:
        addresses = check_address(held.url, settings.webhook_allow_private)
    except InvalidInput as exc:
        return Attempt(False, error=f"refused: {exc.detail}", final=exc.code != "webhook-unresolvable")
    if held.format != "json":
        return send_chat(held, settings.webhook_timeout)
    body = body_bytes(held.payload)
    headers = json_headers(held.id, held.event, held.secret, body, int(time.time()))
    return post_json(held.url, addresses[0], body, headers, settings.webhook_timeout)


def post_json(url: str, address: Address, body: bytes, headers: dict[str, str], timeout: float) -> Attempt:
    """POST ``body`` to ``url`` at ``address`` (the host name kept in ``Host`` and TLS's SNI and certificate check);
    redirects are not followed."""
    parts = urlsplit(url)
    target = httpx.URL(url).copy_with(host=str(address))
    extensions = {"sni_hostname": parts.hostname} if parts.scheme == "https" else {}
    host = parts.netloc.rpartition("@")[2]
    try:
        with httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False) as client:
            response = client.post(target, content=body, headers={**headers, "Host": host}, extensions=extensions)
    except httpx.HTTPError as exc:
        return Attempt(False, error=f"{type(exc).__name__}: {str(exc)[:300]}")
    if 200 <= response.status_code < 300:
        return Attempt(True, status=response.status_code)
    return Attempt(False, status=response.status_code, error=f"HTTP {response.status_code} {response.reason_phrase}")


def send_chat(held: Claim, timeout: float) -> Attempt:
    """The event as a short chat message through apprise; apprise's False is a failed attempt."""
    import apprise

    try:
        plugin = chat_plugin(held.url, held.format)
    except InvalidInput as exc:
        return Attempt(False, error=f"refused: {exc.detail}", final=True)
    plugin.socket_connect_timeout = plugin.socket_read_timeout = timeout
    notifier = apprise.Apprise()
    notifier.add(plugin)
    title, body = chat_text(held.payload)
    try:
        sent = notifier.notify(title=title, body=body)
    except Exception as exc:  # noqa: BLE001 - a plugin's own error is a failed attempt, never the task's
        return Attempt(False, error=f"{type(exc).__name__}: {str(exc)[:300]}")
    return Attempt(True) if sent else Attempt(False, error=f"the {held.format} service did not accept the message")


def record(held: Claim, attempt: Attempt, settings: Settings, now: datetime | None = None) -> float | None:
    """Store the attempt; returns the seconds until the next attempt when one is due (the row's ``queued_at``)."""
    now = now or utcnow()
    attempts = held.attempts + 1
    values: dict[str, Any] = {"attempts": attempts, "last_status": attempt.status, "last_error": attempt.error}
    delay = None
    if attempt.ok:
        values.update(status="delivered", delivered_at=now, last_error=None)
    elif attempt.final or attempts >= settings.webhook_max_attempts:
        values.update(status="failed")
    else:
        delay = settings.webhook_backoff_seconds * 2 ** (attempts - 1)
        values.update(queued_at=now + timedelta(seconds=delay))
    with session_scope() as session:
        stored = session.execute(update(WebhookDelivery)
                                 .where(WebhookDelivery.id == held.id, WebhookDelivery.status == "pending")
                                 .values(**values)).rowcount  # fmt: skip
    outcome = values["status"] if delay is None else f"retry in {delay:g} s"
    log.info("webhook delivery %s (%s) attempt %d: %s", held.id, held.event, attempts,
             outcome if attempt.ok else f"{attempt.status or attempt.error}; {outcome}")  # fmt: skip
    return delay if stored == 1 else None


def deliver(delivery_id: str, settings: Settings) -> float | None:
    """Run one attempt of a delivery if it is pending and due; returns the seconds until its next attempt, if any."""
    held = claim(delivery_id, lease=2 * settings.webhook_timeout + 30)
    if held is None:
        return None
    return record(held, send(held, settings), settings)


# ---------------------------------------------------------------- sending the tasks


def send_task(celery, delivery_id: str, countdown: float | None = None) -> None:  # type: ignore[no-untyped-def]
    celery.send_task(DELIVER_WEBHOOK, args=[delivery_id], queue=CPU_QUEUE, countdown=countdown)


def send_queued(celery, project_id: str) -> int:  # type: ignore[no-untyped-def]
    """Send the task of every pending delivery of the project not sent yet (each once: ``queued_at`` set first);
    returns how many. A failure is logged: the watchdog sends them later (:func:`resend_stale`)."""
    sent = 0
    try:
        with session_scope() as session:
            ids = session.scalars(select(WebhookDelivery.id).where(
                WebhookDelivery.project_id == project_id, WebhookDelivery.status == "pending",
                WebhookDelivery.queued_at.is_(None)).order_by(WebhookDelivery.created_at)).all()  # fmt: skip
        for delivery_id in ids:
            with session_scope() as session:
                taken = session.execute(update(WebhookDelivery).where(
                    WebhookDelivery.id == delivery_id, WebhookDelivery.queued_at.is_(None))
                    .values(queued_at=utcnow())).rowcount  # fmt: skip
            if taken == 1:
                send_task(celery, delivery_id)
                sent += 1
    except Exception as exc:  # noqa: BLE001 - never the job's failure; the watchdog sends what is left
        log.warning("could not send the webhook deliveries of project %s: %s", project_id, type(exc).__name__)
    return sent


def send_job_deliveries(celery, job_id: str) -> int:  # type: ignore[no-untyped-def]
    """:func:`send_queued` for the project of a job that just ended."""
    try:
        with session_scope() as session:
            project_id = session.scalar(select(Job.project_id).where(Job.id == job_id))
    except Exception as exc:  # noqa: BLE001 - as in send_queued
        log.warning("could not read job %s to send its webhook deliveries: %s", job_id, type(exc).__name__)
        return 0
    return send_queued(celery, project_id) if project_id else 0


def resend_stale(celery, settings: Settings, now: datetime | None = None, limit: int = 100) -> list[str]:  # type: ignore[no-untyped-def]
    """The watchdog's part: send again the task of each pending delivery more than ``webhook_resend_after`` past its
    due time (or its creation, never sent), unless the cpu queue has messages waiting (its task may be among them);
    returns their ids."""
    now = now or utcnow()
    cutoff = now - timedelta(seconds=settings.webhook_resend_after)
    late = or_(WebhookDelivery.queued_at < cutoff,
               WebhookDelivery.queued_at.is_(None) & (WebhookDelivery.created_at < cutoff))  # fmt: skip
    with session_scope() as session:
        rows = session.execute(select(WebhookDelivery.id, WebhookDelivery.queued_at)
                               .where(WebhookDelivery.status == "pending", late)
                               .order_by(WebhookDelivery.created_at).limit(limit)).all()  # fmt: skip
    if not rows or queue_depths(settings).get(CPU_QUEUE, 0) > 0:
        return []
    resent = []
    for delivery_id, queued_at in rows:
        same = WebhookDelivery.queued_at.is_(None) if queued_at is None else WebhookDelivery.queued_at == queued_at
        with session_scope() as session:
            taken = session.execute(update(WebhookDelivery).where(WebhookDelivery.id == delivery_id, same)
                                    .values(queued_at=now)).rowcount  # fmt: skip
        if taken == 1:
            send_task(celery, delivery_id)
            resent.append(delivery_id)
    if resent:
        log.warning("re-sent %d webhook deliveries whose task was lost", len(resent))
    return resent
