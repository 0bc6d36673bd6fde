"""Operational endpoints: /readyz (200 with details, 503 problem+json when a dependency is down) and /metrics."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from tests.service_harness import ROOT, Processes, free_port
from tests.service_harness import service_env as process_env

PROBLEM = "application/problem+json"
CLOSED_REDIS = "redis://127.0.0.1:1/0"
CLOSED_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:1/test"
LOCAL_REDIS = "redis://127.0.0.1:6379/14"  # a database of its own (the e2e tests use 7)


def client_with(monkeypatch, **settings: str) -> TestClient:
    """An app for the current environment plus these FEEDBACK_THEMES_ settings."""
    from service.api.app import create_app
    from service.settings import get_settings

    for name, value in settings.items():
        monkeypatch.setenv(f"FEEDBACK_THEMES_{name.upper()}", value)
    get_settings.cache_clear()
    return TestClient(create_app(), raise_server_exceptions=False)


def samples(text: str, name: str) -> list:
    """The samples called ``name`` in a text exposition."""
    return [s for family in text_string_to_metric_families(text) for s in family.samples if s.name == name]


def value(text: str, name: str, **labels: str) -> float:
    found = [s.value for s in samples(text, name) if all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(found) == 1, (name, labels, found)
    return found[0]


def redis_reachable() -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", 6379)) == 0


# ---------------------------------------------------------------- /readyz


def test_readyz_ready_with_embedded_defaults(service_env, monkeypatch):
    response = client_with(monkeypatch).get("/readyz")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["status"] == "ready"
    assert body["checks"]["database"]["status"] == "ok" and body["checks"]["database"]["revision"]
    assert body["checks"]["broker"] == {**body["checks"]["broker"], "status": "ok", "transport": "filesystem"}


@pytest.mark.parametrize(
    ("setting", "url", "down", "up"),
    [("broker_url", CLOSED_REDIS, "broker", "database"), ("database_url", CLOSED_POSTGRES, "database", "broker")],
)
def test_readyz_503_when_a_dependency_is_unreachable(service_env, monkeypatch, setting, url, down, up):
    client = client_with(monkeypatch, **{setting: url})
    start = time.monotonic()
    response = client.get("/readyz")
    assert time.monotonic() - start < 6, "readiness must answer quickly when a dependency is down"
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["status"] == 503 and body["type"] == "/problems/not-ready" and body["title"]
    assert f"{down} unreachable" in body["detail"] and up not in body["detail"]
    assert body["checks"][down]["status"] == "error" and body["checks"][down]["error"]
    assert body["checks"][up]["status"] == "ok"


def test_readyz_503_when_the_schema_is_missing(service_env, monkeypatch, tmp_path):
    client = client_with(monkeypatch, database_url=f"sqlite:///{tmp_path / 'empty.sqlite'}")
    response = client.get("/readyz")
    assert response.status_code == 503 and response.headers["content-type"].startswith(PROBLEM)
    assert "alembic_version" in response.json()["checks"]["database"]["error"]


# ---------------------------------------------------------------- /metrics


def test_metrics_request_histogram_jobs_and_queue_depth(service_env, monkeypatch, sample_csv):
    from service.keys import create_key
    from service.storage.session import session_scope

    client = client_with(monkeypatch)
    with session_scope() as session:
        key, _ = create_key(session, "acme")
    headers = {"X-API-Key": key}
    created = client.post("/v1/jobs", headers=headers, data={"text_column": "text"},
                          files={"file": ("r.csv", sample_csv.read_bytes(), "text/csv")})  # fmt: skip
    assert created.status_code == 202, created.text
    assert client.get(created.headers["location"], headers=headers).status_code == 200
    assert client.get("/no/such/path").status_code == 404

    response = client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    text = response.text
    count = "feedback_themes_http_request_duration_seconds_count"
    assert value(text, count, method="POST", route="/v1/jobs", status="202") >= 1
    assert value(text, count, method="GET", route="/v1/jobs/{job_id}", status="200") >= 1
    assert value(text, count, method="GET", route="<unmatched>", status="404") >= 1
    routes = {s.labels.get("route") for s in samples(text, count)}
    assert not any(created.json()["id"] in (r or "") for r in routes), "raw ids must not become label values"
    buckets = samples(text, "feedback_themes_http_request_duration_seconds_bucket")
    assert any(s.labels["le"] == "+Inf" and s.labels["route"] == "/v1/jobs" for s in buckets)
    assert value(text, "feedback_themes_jobs", status="queued") == 1
    assert value(text, "feedback_themes_jobs", status="succeeded") == 0
    assert value(text, "feedback_themes_queue_depth", queue="cpu") == 1
    assert value(text, "feedback_themes_queue_depth", queue="gpu") == 0
    assert value(text, "feedback_themes_collector_up", collector="jobs") == 1


def test_metrics_still_answer_when_the_database_is_down(service_env, monkeypatch):
    text = client_with(monkeypatch, database_url=CLOSED_POSTGRES).get("/metrics").text
    assert value(text, "feedback_themes_collector_up", collector="jobs") == 0
    assert value(text, "feedback_themes_collector_up", collector="queues") == 1
    assert not samples(text, "feedback_themes_jobs")


def test_metrics_content_negotiation(service_env, monkeypatch):
    response = client_with(monkeypatch).get("/metrics", headers={"Accept": "application/openmetrics-text"})
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.rstrip().endswith("# EOF")


def test_redis_readiness_and_queue_depth(service_env, monkeypatch):
    if not redis_reachable():
        pytest.skip("needs Redis on 127.0.0.1:6379 (not reachable)")
    import redis

    r = redis.Redis.from_url(LOCAL_REDIS)
    keys = ["cpu", "gpu", "cpu\x06\x169"]
    r.delete(*keys)
    try:
        r.rpush("cpu", "a", "b")
        r.rpush("cpu\x06\x169", "c")  # kombu's list for priority 9 of the cpu queue
        r.rpush("gpu", "d")
        client = client_with(monkeypatch, broker_url=LOCAL_REDIS)
        ready = client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["checks"]["broker"]["transport"] == "redis"
        text = client.get("/metrics").text
        assert value(text, "feedback_themes_queue_depth", queue="cpu") == 3
        assert value(text, "feedback_themes_queue_depth", queue="gpu") == 1
    finally:
        r.delete(*keys)


# ---------------------------------------------------------------- several processes

MULTIPROCESS_SCRIPT = """
import os, sys
from service.metrics import observe_stage, render_metrics
from service.settings import Settings
for seconds in (2.0, 3.0):
    pid = os.fork()
    if pid == 0:
        observe_stage("train", seconds)
        os._exit(0)
    os.waitpid(pid, 0)
body, _ = render_metrics(Settings())
sys.stdout.write(body.decode())
"""

WORKER_SERVER_SCRIPT = """
import os, sys, httpx
from service.metrics import serve_worker_metrics
port = int(sys.argv[1])
serve_worker_metrics(port, addr="127.0.0.1")
print(os.environ["PROMETHEUS_MULTIPROC_DIR"])
sys.stdout.flush()
pid = os.fork()
if pid == 0:  # a prefork pool process
    from service.metrics import observe_stage
    observe_stage("embed", 1.5)
    os._exit(0)
os.waitpid(pid, 0)
print(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text)
"""


def run_script(script: str, env: dict[str, str], *args: str) -> str:
    out = subprocess.run([sys.executable, "-c", script, *args], env=env, cwd=ROOT, capture_output=True, text=True,
                         timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_multiprocess_mode_sums_every_process(tmp_path):
    folder = tmp_path / "prom"
    env = {**process_env(tmp_path / "data"), "PROMETHEUS_MULTIPROC_DIR": str(folder)}
    text = run_script(MULTIPROCESS_SCRIPT, env)
    assert value(text, "feedback_themes_stage_duration_seconds_count", stage="train") == 2
    assert value(text, "feedback_themes_stage_duration_seconds_sum", stage="train") == pytest.approx(5.0)
    assert len(list(folder.glob("*.db"))) >= 2, "each process writes its own file"


def test_worker_metrics_server_sees_pool_processes(tmp_path):
    env = {k: v for k, v in process_env(tmp_path / "data").items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    folder, text = run_script(WORKER_SERVER_SCRIPT, env, str(free_port())).split("\n", 1)
    assert value(text, "feedback_themes_stage_duration_seconds_count", stage="embed") == 1
    assert value(text, "process_start_time_seconds") > 0
    assert not Path(folder).exists(), "the private metrics folder is removed when the worker exits"


@pytest.mark.slow
def test_worker_command_serves_metrics(tmp_path):
    """``feedback-themes worker --metrics-port N`` really starts the metrics server beside the Celery worker."""
    env = {k: v for k, v in process_env(tmp_path / "data").items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    port = free_port()
    procs = Processes(tmp_path / "logs")
    procs.start("worker", ["worker", "--queues", "cpu", "--metrics-port", str(port)], env)
    try:
        deadline, response = time.monotonic() + 90, None
        while time.monotonic() < deadline and response is None:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2)
            except httpx.HTTPError:
                time.sleep(0.3)
        assert response is not None and response.status_code == 200, procs.logs()
        assert value(response.text, "process_start_time_seconds") > 0
    finally:
        procs.stop_all()


def test_ops_endpoints_are_in_the_openapi_spec(service_env, monkeypatch):
    spec = client_with(monkeypatch).get("/openapi.json").json()
    assert {"/healthz", "/readyz", "/metrics"} <= set(spec["paths"])
    assert "503" in spec["paths"]["/readyz"]["get"]["responses"]
