"""Webhooks: registration and its address checks, events turned into deliveries, signed JSON POSTs to a real receiver
on loopback with retries, the chat formats through apprise, and each event delivered once across a worker restart
(real ``api`` and ``worker`` processes)."""

from __future__ import annotations

import ipaddress
import json
import os
import re
import threading
import time
from collections import Counter
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from service.storage.models import Alert, Job, ThemeEdit, ThemeRow, Webhook, WebhookDelivery, utcnow
from service.storage.session import session_scope
from service.storage.webhooks import queue_deliveries, queue_job_events
from tests.api_helpers import assert_problem, new_key
from worker import webhooks

ROOT = Path(__file__).resolve().parents[1]
SLACK_URL = "https://hooks.slack.com/services/T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ"
DISCORD_URL = "https://discord.com/api/webhooks/123456789012345678/abcdefghijklmnopqrstuvwxyz"


def documented_verify():  # type: ignore[no-untyped-def]
    """The signature check as README's "Webhooks" section documents it (its Python block, run as written)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Webhooks", 1)[1].split("\n## ", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)
    scope: dict[str, Any] = {}
    exec(code, scope)  # noqa: S102 - the documented recipe itself
    return scope["verify_signature"]


class Receiver:
    """A webhook receiver on 127.0.0.1 (a real HTTP server in a thread): records every request, answers 500 to the
    first ``fail_first`` requests of each delivery id, then 200."""

    def __init__(self, fail_first: int = 0) -> None:
        self.fail_first, self.lock, self.requests = fail_first, threading.Lock(), []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                status = receiver.answer(dict(self.headers), body)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def answer(self, headers: dict[str, str], body: bytes) -> int:
        with self.lock:
            delivery = headers.get("X-Feedback-Themes-Delivery")
            seen = sum(1 for r in self.requests if r["delivery"] == delivery)
            status = 500 if seen < self.fail_first else 200
            self.requests.append({"delivery": delivery, "headers": headers, "body": body, "status": status})
            return status

    def acknowledged(self) -> list[dict[str, Any]]:
        """The requests answered 2xx."""
        with self.lock:
            return [r for r in self.requests if r["status"] == 200]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def settings(service_env, monkeypatch):
    """Embedded settings with private addresses allowed (the receiver is on loopback) and a short backoff."""
    from service.settings import get_settings

    monkeypatch.setenv("FEEDBACK_THEMES_WEBHOOK_ALLOW_PRIVATE", "true")
    monkeypatch.setenv("FEEDBACK_THEMES_WEBHOOK_BACKOFF_SECONDS", "0.05")
    monkeypatch.setenv("FEEDBACK_THEMES_WEBHOOK_TIMEOUT", "5")
    get_settings.cache_clear()
    return get_settings()


def make_project(client, headers: dict[str, str]) -> str:  # type: ignore[no-untyped-def]
    """A project of the caller's tenant, made by an upload (its job stays queued: no worker runs here)."""
    data = b"text\nThe zipper broke after a week\nLovely soft fabric\n"
    response = client.post("/v1/jobs", headers=headers, files={"file": ("a.csv", data, "text/csv")},
                           data={"text_column": "text"})  # fmt: skip
    assert response.status_code == 202, response.text
    return response.json()["project_id"]


def register(client, headers, project: str, url: str, **fields: Any):  # type: ignore[no-untyped-def]
    return client.post(f"/v1/projects/{project}/webhooks", headers=headers, json={"url": url, **fields})


def finish_job(project_id: str, status: str = "succeeded") -> str:
    """Mark the project's job ended (as the runner or ``fail_job`` would) with a node; returns its id."""
    with session_scope() as session:
        job = session.scalar(select(Job).where(Job.project_id == project_id))
        job.status, job.finished_at, job.counts = status, utcnow(), {"documents": 2, "project_documents": 2}
        session.add(ThemeRow(job_id=job.id, theme_id=7, project_id=project_id, level=2, label="Broken zipper",
                             size=1, sentiment_mean=-0.5, first_seen_job=job.id, record={"name": "Broken zipper"}))  # fmt: skip
        return job.id


def add_alert(job_id: str, project_id: str, n: int, title: str = "Spike: “Broken zipper” is 50 % vs 5 %") -> None:
    with session_scope() as session:
        session.add(Alert(project_id=project_id, job_id=job_id, key=f"{job_id}:spike:batch:{n}", kind="spike",
                          window="batch", theme_id=7, level=2, title=title,
                          figures={"count": 1, "n": 2, "share": 0.5, "baseline_share": 0.05, "lift": 10.0},
                          examples=[{"doc_id": "1", "text": "The zipper broke after a week"}]))  # fmt: skip


def deliveries(project_id: str) -> list[WebhookDelivery]:
    with session_scope() as session:
        return list(session.scalars(select(WebhookDelivery).where(WebhookDelivery.project_id == project_id)
                                    .order_by(WebhookDelivery.created_at)))  # fmt: skip


def deliver_until_done(delivery_id: str, settings, attempts: int = 10) -> None:  # type: ignore[no-untyped-def]
    """Run the delivery's attempts in this process, each once due, as its tasks would."""
    for _ in range(attempts):
        delay = webhooks.deliver(delivery_id, settings)
        if delay is None:
            return
        time.sleep(delay)
    raise AssertionError(f"delivery {delivery_id} still pending after {attempts} attempts")


# ---------------------------------------------------------------- signing


def test_the_signature_verifies_with_the_documented_recipe():
    verify = documented_verify()
    body = webhooks.body_bytes({"event": "alert", "title": "Spike: “Lost luggage” ×5.1"})
    header = webhooks.signature("s3cret", body, int(time.time()))
    assert verify("s3cret", body, header)
    assert not verify("other", body, header)
    assert not verify("s3cret", body.replace(b"5.1", b"5.2"), header)
    assert not verify("s3cret", body, webhooks.signature("s3cret", body, int(time.time()) - 3600))  # too old
    assert json.loads(body)["title"].endswith("×5.1") and b" " not in body.split(b'"title"')[0]  # compact UTF-8


# ---------------------------------------------------------------- registration


def test_registration_refuses_non_public_addresses_and_plain_http(client, alice):
    project = make_project(client, alice)
    for url, address in [("https://127.0.0.1/hook", "127.0.0.1"), ("https://localhost:8443/hook", "loopback"),
                         ("https://10.1.2.3/hook", "10.1.2.3"), ("https://192.168.0.10/x", "192.168.0.10"),
                         ("https://169.254.169.254/latest/meta-data", "169.254.169.254"), ("https://[::1]/x", "::1"),
                         ("https://[fe80::1]/x", "fe80::1"), ("https://0.0.0.0/x", "0.0.0.0"),
                         ("https://224.0.0.1/x", "224.0.0.1"), ("https://[::ffff:127.0.0.1]/x", "::ffff:127.0.0.1"),
                         ("https://100.64.0.1/x", "100.64.0.1")]:  # fmt: skip
        body = assert_problem(register(client, alice, project, url), 422, address, "WEBHOOK_ALLOW_PRIVATE")
        assert body["type"].endswith("/webhook-private-address"), (url, body)
    body = assert_problem(register(client, alice, project, "https://hooks.nowhere.invalid/x"), 422, "does not resolve")
    assert body["type"].endswith("/webhook-unresolvable")
    body = assert_problem(register(client, alice, project, "http://1.1.1.1/hook"), 422, "https://")
    assert body["type"].endswith("/webhook-url-scheme")
    for url in ("ftp://1.1.1.1/x", "https:///nohost", "https://1.1.1.1:99999/x", "https://1.1.1.1/a b"):
        assert_problem(register(client, alice, project, url), 422)
    assert client.get(f"/v1/projects/{project}/webhooks", headers=alice).json() == {"webhooks": []}


def test_a_public_https_url_is_registered_listed_and_deleted(client, alice, service_env):
    project = make_project(client, alice)
    made = register(client, alice, project, "https://1.1.1.1/hooks/themes", events=["alert", "alert"])
    assert made.status_code == 201, made.text
    created = made.json()
    assert created["format"] == "json" and created["events"] == ["alert"] and len(created["secret"]) >= 40
    default = register(client, alice, project, "https://[2606:4700:4700::1111]/hook").json()
    assert default["events"] == ["alert", "job.succeeded", "job.failed"]
    listed = client.get(f"/v1/projects/{project}/webhooks", headers=alice).json()["webhooks"]
    assert [w["id"] for w in listed] == [created["id"], default["id"]] and all("secret" not in w for w in listed)
    assert_problem(register(client, alice, project, "https://1.1.1.1/x", events=[]), 422)
    assert_problem(register(client, alice, project, "https://1.1.1.1/x", format="telegram"), 422)

    bob = new_key("bob")  # another tenant: the project is not found, whatever the call
    assert_problem(client.get(f"/v1/projects/{project}/webhooks", headers=bob), 404)
    assert_problem(register(client, bob, project, "https://1.1.1.1/x"), 404)
    assert_problem(client.delete(f"/v1/projects/{project}/webhooks/{created['id']}", headers=bob), 404)
    assert_problem(client.get(f"/v1/projects/{project}/webhooks/{created['id']}/deliveries", headers=bob), 404)

    assert client.delete(f"/v1/projects/{project}/webhooks/{created['id']}", headers=alice).status_code == 204
    assert_problem(client.delete(f"/v1/projects/{project}/webhooks/{created['id']}", headers=alice), 404)
    assert_problem(client.get(f"/v1/projects/{project}/webhooks/{created['id']}/deliveries", headers=alice), 404)
    assert [w["id"] for w in client.get(f"/v1/projects/{project}/webhooks", headers=alice).json()["webhooks"]] == [
        default["id"]
    ]


def test_at_most_the_set_number_of_webhooks_per_project(service_env, monkeypatch):
    from service.settings import get_settings
    from tests.api_helpers import make_client

    monkeypatch.setenv("FEEDBACK_THEMES_WEBHOOKS_PER_PROJECT", "2")
    get_settings.cache_clear()
    client, alice = make_client(), new_key("alice")
    project = make_project(client, alice)
    assert [register(client, alice, project, f"https://1.1.1.1/{i}").status_code for i in range(2)] == [201, 201]
    assert_problem(register(client, alice, project, "https://1.1.1.1/3"), 422, "WEBHOOKS_PER_PROJECT")


def test_http_and_private_addresses_with_the_setting(settings, receiver):
    from tests.api_helpers import make_client

    client, alice = make_client(), new_key("alice")
    project = make_project(client, alice)
    assert register(client, alice, project, receiver.url).status_code == 201
    assert register(client, alice, project, "http://localhost:9/x").status_code == 201


def test_chat_formats_need_their_service_url(client, alice, monkeypatch):
    project = make_project(client, alice)
    for fmt, url in (("slack", DISCORD_URL), ("discord", SLACK_URL), ("teams", "https://1.1.1.1/x"),
                     ("google_chat", SLACK_URL)):  # fmt: skip
        body = assert_problem(register(client, alice, project, url, format=fmt), 422, fmt)
        assert body["type"].endswith("/webhook-format-url")
    # this machine may have no DNS: the services' hosts resolve to a public address here
    monkeypatch.setattr(webhooks, "resolve", lambda host, port: [ipaddress.ip_address("203.0.114.7")])
    made = register(client, alice, project, SLACK_URL, format="slack", events=["alert"])
    assert made.status_code == 201 and made.json()["format"] == "slack", made.text


# ---------------------------------------------------------------- events → deliveries


def test_a_jobs_events_become_one_delivery_per_subscribed_webhook(settings, receiver):
    from tests.api_helpers import make_client

    client, alice = make_client(), new_key("alice")
    project = make_project(client, alice)
    everything = register(client, alice, project, receiver.url).json()
    failures_only = register(client, alice, project, receiver.url + "/failed", events=["job.failed"]).json()
    job_id = finish_job(project)
    add_alert(job_id, project, 1)
    add_alert(job_id, project, 2)
    with session_scope() as session:
        session.add(ThemeEdit(project_id=project, theme_id=7, label="Zippers that break"))
    with session_scope() as session:
        made = queue_job_events(session, job_id)
    with session_scope() as session:
        assert queue_job_events(session, job_id) == []  # idempotent: each event once per webhook
    rows = deliveries(project)
    assert sorted(r.id for r in rows) == sorted(made) and len(made) == 3
    assert {r.webhook_id for r in rows} == {everything["id"]} and failures_only["id"]
    assert Counter(r.event for r in rows) == {"alert": 2, "job.succeeded": 1}
    assert all(r.status == "pending" and r.attempts == 0 and r.queued_at is None for r in rows)
    succeeded = next(r.payload for r in rows if r.event == "job.succeeded")
    assert succeeded["job_id"] == job_id and succeeded["project_id"] == project and succeeded["status"] == "succeeded"
    assert succeeded["counts"]["documents"] == 2 and succeeded["finished_at"].endswith("Z")
    assert succeeded["links"]["themes"] == f"/v1/projects/{project}/themes"
    alert = next(r.payload for r in rows if r.event == "alert")
    assert alert["theme"] == {"id": 7, "level": 2, "name": "Zippers that break"}  # the project's rename shows
    assert alert["kind"] == "spike" and alert["window"] == "batch" and alert["figures"]["lift"] == 10.0
    assert alert["job_id"] == job_id and alert["examples"][0]["doc_id"] == "1" and isinstance(alert["id"], int)

    with session_scope() as session:  # a direct call skips webhooks that have the key, and unsubscribed ones
        assert queue_deliveries(session, project, "alert", f"alert:{job_id}:spike:batch:1", {}) == []
        assert queue_deliveries(session, project, "job.failed", "job.failed:x", {"event": "job.failed"}) != []


def test_a_failed_job_queues_job_failed(settings, receiver):
    from tests.api_helpers import make_client
    from worker import liveness

    client, alice = make_client(), new_key("alice")
    project = make_project(client, alice)
    hook = register(client, alice, project, receiver.url, events=["job.failed"]).json()
    with session_scope() as session:
        job_id = session.scalar(select(Job.id).where(Job.project_id == project))
    liveness.fail_job(job_id, {"type": "/problems/job-failed", "detail": "ValueError during ingest: bad"})
    liveness.fail_job(job_id, {"type": "/problems/job-failed", "detail": "again"})  # already failed: no second event
    rows = deliveries(project)
    assert [(r.event, r.webhook_id) for r in rows] == [("job.failed", hook["id"])]
    assert rows[0].payload["error"]["detail"] == "ValueError during ingest: bad"
    deliver_until_done(rows[0].id, settings)
    (got,) = receiver.acknowledged()
    assert got["headers"]["X-Feedback-Themes-Event"] == "job.failed" and json.loads(got["body"])["job_id"] == job_id


# ---------------------------------------------------------------- sending


def test_a_delivery_is_signed_retried_with_backoff_and_delivered_once(settings, receiver):
    from tests.api_helpers import make_client

    client, alice = make_client(), new_key("alice")
    project = make_project(client, alice)
    hook = register(client, alice, project, receiver.url).json()
    job_id = finish_job(project)
    add_alert(job_id, project, 1)
    with session_scope() as session:
        queue_job_events(session, job_id)
    alert = next(r for r in deliveries(project) if r.event == "alert")
    receiver.fail_first = 3
    started = time.monotonic()
    deliver_until_done(alert.id, settings)
    assert time.monotonic() - started >= 0.05 * (1 + 2 + 4)  # backoff 0.05 s × 2^(attempt − 1)
    assert webhooks.deliver(alert.id, settings) is None  # delivered: a redelivered task does nothing
    sent = [r for r in receiver.requests if r["delivery"] == alert.id]
    assert [r["status"] for r in sent] == [500, 500, 500, 200]
    verify = documented_verify()
    for request in sent:
        headers = request["headers"]
        assert verify(hook["secret"], request["body"], headers["X-Feedback-Themes-Signature"])
        assert headers["Content-Type"] == "application/json" and headers["User-Agent"] == "feedback-themes"
        assert headers["X-Feedback-Themes-Event"] == "alert"
    assert json.loads(sent[-1]["body"])["title"].startswith("Spike: “Broken zipper”")
    page = client.get(f"/v1/projects/{project}/webhooks/{hook['id']}/deliveries", headers=alice).json()
    shown = {d["id"]: d for d in page["deliveries"]}[alert.id]
    assert shown["status"] == "delivered" and shown["attempts"] == 4 and shown["last_status"] == 200
    assert shown["delivered_at"] and shown["event_key"] == f"alert:{job_id}:spike:batch:1"
    assert [d["event"] for d in page["deliveries"]] == ["alert", "job.succeeded"]  # newest first
    first = client.get(f"/v1/projects/{project}/webhooks/{hook['id']}/deliveries", headers=alice,
                       params={"limit": 1}).json()  # fmt: skip
    rest = client.get(f"/v1/projects/{project}/webhooks/{hook['id']}/deliveries", headers=alice,
                      params={"limit": 1, "cursor": first["next_cursor"]}).json()  # fmt: skip
    assert [d["id"] for d in first["deliveries"] + rest["deliveries"]] == [d["id"] for d in page["deliveries"]]
    assert rest["next_cursor"] is None


def test_a_delivery_fails_after_its_attempts_and_a_refused_address_is_not_retried(settings, receiver, monkeypatch):
    from service.settings import get_settings
    from tests.api_helpers import make_client

    client, alice = make_client(), new_key("alice")
    project = make_project(client, alice)
    register(client, alice, project, receiver.url, events=["job.succeeded"])
    job_id = finish_job(project)
    with session_scope() as session:
        (delivery_id,) = queue_job_events(session, job_id)
    receiver.fail_first = 99
    monkeypatch.setenv("FEEDBACK_THEMES_WEBHOOK_MAX_ATTEMPTS", "3")
    get_settings.cache_clear()
    deliver_until_done(delivery_id, get_settings())
    (row,) = deliveries(project)
    assert (row.status, row.attempts, row.last_status) == ("failed", 3, 500)
    assert row.last_error == "HTTP 500 Internal Server Error"

    with session_scope() as session:  # a pending delivery whose address is no longer allowed: failed at once
        session.execute(update(WebhookDelivery).values(status="pending", attempts=0, queued_at=None))
        session.execute(update(Webhook).values(url=receiver.url.replace("http://", "https://")))
    monkeypatch.setenv("FEEDBACK_THEMES_WEBHOOK_ALLOW_PRIVATE", "false")
    get_settings.cache_clear()
    before = len(receiver.requests)
    assert webhooks.deliver(delivery_id, get_settings()) is None
    (row,) = deliveries(project)
    assert row.status == "failed" and row.attempts == 1 and "127.0.0.1, a loopback address" in row.last_error
    assert len(receiver.requests) == before


def test_one_task_holds_a_delivery_and_lost_ones_are_resent(settings, receiver):
    from tests.api_helpers import make_client

    client, alice = make_client(), new_key("alice")
    project = make_project(client, alice)
    register(client, alice, project, receiver.url, events=["job.succeeded"])
    job_id = finish_job(project)
    with session_scope() as session:
        (delivery_id,) = queue_job_events(session, job_id)

    class Celery:
        def __init__(self) -> None:
            self.sent: list[tuple[str, list, str]] = []

        def send_task(self, name: str, args: list, queue: str, countdown: float | None = None) -> None:
            self.sent.append((name, args, queue))

    for message in (settings.broker_folder / "queue").glob("*.msg"):
        message.unlink()  # the upload's own task: a queue with messages waiting is left alone
    celery = Celery()
    assert webhooks.send_queued(celery, project) == 1 and webhooks.send_queued(celery, project) == 0
    assert celery.sent == [("feedback_themes.deliver_webhook", [delivery_id], "cpu")]
    held = webhooks.claim(delivery_id, lease=60)
    assert held is not None and webhooks.claim(delivery_id, lease=60) is None  # a second message finds it held
    assert webhooks.resend_stale(celery, settings) == []  # held: not late
    later = utcnow() + timedelta(seconds=60 + settings.webhook_resend_after + 1)
    assert webhooks.resend_stale(celery, settings, now=later) == [delivery_id]  # its task died with the claim
    assert webhooks.resend_stale(celery, settings, now=later) == []  # sent once
    assert webhooks.deliver(delivery_id, settings) is None and receiver.acknowledged() == []  # not due yet
    with session_scope() as session:
        session.execute(update(WebhookDelivery).values(queued_at=utcnow() - timedelta(seconds=1)))
    assert webhooks.deliver(delivery_id, settings) is None and len(receiver.acknowledged()) == 1


def test_a_json_post_goes_to_the_checked_address_under_its_host_name(tmp_path, monkeypatch):
    """The POST connects to the address that was checked (no second lookup to race), and TLS still checks the
    certificate against the URL's host name."""
    import shutil
    import ssl
    import subprocess

    if not shutil.which("openssl"):
        pytest.skip("needs the openssl command to make a certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=receiver.test", "-addext", "subjectAltName=DNS:receiver.test"],
                   check=True, capture_output=True)  # fmt: skip
    receiver = Receiver()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    receiver.server.socket = context.wrap_socket(receiver.server.socket, server_side=True)
    port = receiver.server.server_address[1]
    trusting = httpx.Client

    class TrustingClient(trusting):  # type: ignore[misc, valid-type]
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(verify=ssl.create_default_context(cafile=str(cert)), **kwargs)

    monkeypatch.setattr(httpx, "Client", TrustingClient)
    loopback = ipaddress.ip_address("127.0.0.1")
    try:
        sent = webhooks.post_json(f"https://receiver.test:{port}/hook", loopback, b"{}", {"X-Test": "1"}, 5)
        assert sent.ok and receiver.requests[0]["headers"]["Host"] == f"receiver.test:{port}"
        other = webhooks.post_json(f"https://other.test:{port}/hook", loopback, b"{}", {}, 5)
        assert not other.ok and "CERTIFICATE_VERIFY_FAILED" in other.error and len(receiver.requests) == 1
    finally:
        receiver.close()


def test_the_slack_format_posts_the_alert_through_apprise(settings, receiver, monkeypatch):
    import requests
    from requests.adapters import HTTPAdapter

    from tests.api_helpers import make_client

    client, alice = make_client(), new_key("alice")
    project = make_project(client, alice)
    monkeypatch.setattr(webhooks, "resolve", lambda host, port: [ipaddress.ip_address("203.0.114.7")])
    hook = register(client, alice, project, SLACK_URL, format="slack", events=["alert"]).json()
    job_id = finish_job(project)
    add_alert(job_id, project, 1, title="Spike: “Lost luggage” is 6.1 % of this upload vs 1.2 % before (×5.1)")
    with session_scope() as session:
        (delivery_id,) = queue_job_events(session, job_id)
    posted: list[requests.PreparedRequest] = []
    answers = [500, 200]

    def send(adapter, request, **kwargs):  # type: ignore[no-untyped-def]
        posted.append(request)
        response = requests.Response()
        response.status_code, response._content, response.url = answers.pop(0), b"ok", request.url
        response.request = request
        return response

    monkeypatch.setattr(HTTPAdapter, "send", send)  # the HTTP layer apprise's requests go through
    deliver_until_done(delivery_id, settings)
    assert len(posted) == 2 and all(r.url.startswith("https://hooks.slack.com/services/T1JJ3T3L2/") for r in posted)
    message = json.dumps(json.loads(posted[-1].body), ensure_ascii=False)
    assert "Spike: “Lost luggage” is 6.1 % of this upload vs 1.2 % before (×5.1)" in message
    assert "The zipper broke after a week" in message and f"/v1/projects/{project}/nodes/7" in message
    page = client.get(f"/v1/projects/{project}/webhooks/{hook['id']}/deliveries", headers=alice).json()
    (shown,) = page["deliveries"]
    assert shown["status"] == "delivered" and shown["attempts"] == 2 and receiver.requests == []


# ---------------------------------------------------------------- real worker processes


@pytest.mark.slow
def test_each_event_is_delivered_once_across_a_worker_restart(tmp_path, monkeypatch, sample_csv):
    """A real job's ``job.succeeded`` and its alerts reach a receiver once each although the worker is killed while
    they wait for their retries (a new worker and its watchdog send them); a receiver answering 500 three times gets
    the fourth attempt."""
    import signal

    from service.settings import get_settings
    from tests.service_harness import Processes, create_key, free_port, poll_job, service_env, upload_csv, wait_healthy
    from worker.celery_app import create_celery

    receiver = Receiver(fail_first=0)
    settings = {"webhook_allow_private": "true", "webhook_backoff_seconds": "2", "webhook_resend_after": "3",
                "webhook_timeout": "2", "watchdog_interval": "1", "embedding_backend": "torch",
                "theme_levels": "false"}  # fmt: skip
    env = service_env(tmp_path / "data", **settings)
    for name in [n for n in os.environ if n.startswith("FEEDBACK_THEMES_")]:
        monkeypatch.delenv(name)  # this process reads the service's database as the service's settings say
    for name, value in env.items():
        if name.startswith("FEEDBACK_THEMES_"):
            monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    key = create_key(env, "acme")
    procs = Processes(tmp_path / "logs")
    port = free_port()
    worker = procs.start("worker-1", ["worker", "--queues", "cpu,gpu"], env)
    procs.start("api", ["api", "--port", str(port)], env)
    api = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"X-API-Key": key}, timeout=60)
    try:
        wait_healthy(f"http://127.0.0.1:{port}")
        small = tmp_path / "small.csv"
        lines = sample_csv.read_text(encoding="utf-8").splitlines(keepends=True)
        small.write_text("".join(lines[:41]), encoding="utf-8")
        first = upload_csv(api, small, text_column="text", rating_column="rating").json()
        project = first["project_id"]
        hook = api.post(f"/v1/projects/{project}/webhooks", json={"url": receiver.url}).json()
        receiver.fail_first = 99  # every attempt fails until the worker is killed: all wait for a retry
        job, _ = poll_job(api, f"/v1/jobs/{first['id']}", timeout=300)
        assert job["status"] == "succeeded", job
        for n in (1, 2):
            add_alert(job["id"], project, n, title=f"Spike {n}")
        with session_scope() as session:
            assert len(queue_job_events(session, job["id"])) == 2  # the alerts (job.succeeded is queued already)
        webhooks.send_queued(create_celery(get_settings()), project)

        def events_seen() -> set[str]:
            return {r["headers"]["X-Feedback-Themes-Event"] + ":" + r["delivery"] for r in receiver.requests}

        deadline = time.monotonic() + 60
        while len(events_seen()) < 3:
            assert time.monotonic() < deadline, receiver.requests
            time.sleep(0.1)
        time.sleep(0.5)  # the failed attempts recorded, their retries due in 2 s
        procs.stop(worker, signal.SIGKILL)  # the retry messages die with it
        assert receiver.acknowledged() == []
        receiver.fail_first = 0
        procs.start("worker-2", ["worker", "--queues", "cpu,gpu"], env)
        page: dict[str, Any] = {}
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            page = api.get(f"/v1/projects/{project}/webhooks/{hook['id']}/deliveries").json()
            if len(page["deliveries"]) == 3 and all(d["status"] == "delivered" for d in page["deliveries"]):
                break
            time.sleep(0.5)
        assert sorted(d["event"] for d in page["deliveries"]) == ["alert", "alert", "job.succeeded"], page
        assert all(d["status"] == "delivered" and d["attempts"] >= 2 for d in page["deliveries"]), page
        acknowledged = Counter(r["delivery"] for r in receiver.acknowledged())
        assert acknowledged == {d["id"]: 1 for d in page["deliveries"]}  # nothing lost, nothing twice
        titles = sorted(json.loads(r["body"]).get("title", "") for r in receiver.acknowledged())
        assert titles == ["", "Spike 1", "Spike 2"]

        receiver.fail_first = 3  # (b) answered 500 three times: delivered by the fourth attempt
        add_alert(job["id"], project, 3, title="Spike 3")
        with session_scope() as session:
            (third,) = queue_job_events(session, job["id"])
        webhooks.send_queued(create_celery(get_settings()), project)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            shown = {d["id"]: d for d in api.get(f"/v1/projects/{project}/webhooks/{hook['id']}/deliveries").json()
                     ["deliveries"]}[third]  # fmt: skip
            if shown["status"] != "pending":
                break
            time.sleep(0.5)
        assert shown["status"] == "delivered" and shown["attempts"] == 4, shown
        assert Counter(r["delivery"] for r in receiver.acknowledged())[third] == 1
        logs = procs.logs()
        assert hook["secret"] not in logs and "re-sent" in logs  # the watchdog re-sent the killed worker's retries
    except BaseException:
        print(procs.logs())
        raise
    finally:
        procs.stop_all()
        receiver.close()
        get_settings.cache_clear()
