"""Faults: a job whose stage raises, the retry call, the stale-job guard, the broker down at upload; and, against
real processes (API + Celery worker over a Redis of the test's own and PostgreSQL), a worker SIGKILLed mid-job, the
API killed and restarted while jobs run, and Redis restarted (losing its data) mid-job. No job is lost or stays
``running``; each job completes exactly once, with every comment counted once. (bench/faults.py runs every fault
with two workers and real-size jobs.)
"""

from __future__ import annotations

import csv
import re
import shutil
import signal
import time
import uuid
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from bench.harness import RedisServer
from service.storage.session import session_scope
from tests import service_harness as harness
from tests.api_helpers import assert_problem, make_client, new_key
from tests.service_harness import (
    Processes,
    create_key,
    free_port,
    reachable,
    wait_healthy,
)
from worker.liveness import fail_job
from worker.runner import unexpected_problem

POSTGRES_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
VISIBILITY = 15  # broker visibility timeout in the real-process test: above any of its tasks, small enough to wait
HEARTBEAT = 8  # seconds without a heartbeat before the watchdog re-queues a job


# ---------------------------------------------------------------- in process: retry and the stale-job guard


def upload(client, headers, rows: int = 3) -> dict:
    data = "text\n" + "".join(f"comment number {i}\n" for i in range(rows))
    response = client.post("/v1/jobs", headers=headers, files={"file": ("f.csv", data.encode())},
                           data={"text_column": "text"})  # fmt: skip
    assert response.status_code == 202, response.text
    return response.json()


def queued_messages(settings) -> int:
    return len(list((settings.broker_folder / "queue").iterdir()))


def test_retry_requeues_a_failed_job(client, alice, service_env):
    job = upload(client, alice)
    url = f"/v1/jobs/{job['id']}"
    assert_problem(client.post(url + "/retry", headers=alice), 409, "status 'queued'", "only a failed job")
    fail_job(job["id"], unexpected_problem("ingest", RuntimeError("the stage raised")))
    failed = client.get(url, headers=alice).json()
    assert failed["status"] == "failed" and failed["error"]["type"] == "/problems/job-failed"
    assert "RuntimeError during ingest: the stage raised" in failed["error"]["detail"]

    assert_problem(client.post(url + "/retry", headers=new_key("bob")), 404)  # another tenant's job
    assert_problem(client.post("/v1/jobs/nope/retry", headers=alice), 404)
    before = queued_messages(service_env)
    retried = client.post(url + "/retry", headers=alice)
    assert retried.status_code == 202 and retried.headers["location"] == url
    assert retried.json() == {"id": job["id"], "status": "queued", "project_id": job["project_id"]}
    again = client.get(url, headers=alice).json()
    assert (again["status"], again["error"], again["progress"], again["stage"], again["finished_at"]) == \
        ("queued", None, 0.0, None, None)  # fmt: skip
    assert queued_messages(service_env) == before + 1  # a new run_job message for the same job id
    assert_problem(client.post(url + "/retry", headers=alice), 409)  # twice: the second finds it queued


def test_a_job_made_while_the_broker_is_down_stays_queued(client, alice, service_env, monkeypatch):
    """The job row is the truth: an upload or a retry while the broker is down is stored as ``queued`` and answered
    202; a worker's watchdog queues it once the broker is back (tests/test_watchdog.py)."""
    job = upload(client, alice)
    fail_job(job["id"], unexpected_problem("embed", TimeoutError("lost")))

    def down(*args, **kwargs):
        raise ConnectionRefusedError("broker down")

    monkeypatch.setattr(client.app.state.celery, "send_task", down)
    retried = client.post(f"/v1/jobs/{job['id']}/retry", headers=alice)
    assert retried.status_code == 202 and retried.headers["location"] == f"/v1/jobs/{job['id']}"
    assert client.get(f"/v1/jobs/{job['id']}", headers=alice).json()["status"] == "queued"
    kept = client.post("/v1/jobs", headers=alice, json={"items": [{"text": "a"}, {"text": "b"}]})
    assert kept.status_code == 202, kept.text
    assert client.get(kept.headers["location"], headers=alice).json()["status"] == "queued"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_stale_job_guard(service_env, monkeypatch, alice):
    """A queued or running job that shows no progress for longer than the window is marked failed when polled."""
    import service.storage.jobs as jobs
    from service.settings import get_settings
    from service.storage.models import Job

    monkeypatch.setenv("FEEDBACK_THEMES_JOB_STALE_AFTER", "60")
    get_settings.cache_clear()
    clock = Clock()
    monkeypatch.setattr(jobs.time, "monotonic", clock)
    monkeypatch.setattr(jobs, "WATCH", jobs.ProgressWatch())
    client = make_client()
    job = upload(client, alice)
    url = f"/v1/jobs/{job['id']}"

    def poll(after: float) -> dict:
        clock.now += after
        return client.get(url, headers=alice).json()

    assert poll(0)["status"] == "queued"
    assert poll(59)["status"] == "queued"  # within the window
    with session_scope() as session:  # the worker moves it on: the clock starts again
        session.get(Job, job["id"]).status, session.get(Job, job["id"]).stage = "running", "ingest"
    assert poll(30)["status"] == "running"
    with session_scope() as session:
        session.get(Job, job["id"]).progress = 0.1
    assert poll(59)["status"] == "running"
    assert poll(59)["status"] == "running"  # 59 s since progress moved
    stalled = poll(2)
    assert stalled["status"] == "failed" and stalled["finished_at"]
    assert stalled["error"]["type"] == "/problems/job-stalled"
    assert "no progress for over 60 s in stage ingest" in stalled["error"]["detail"]
    assert f"POST /v1/jobs/{job['id']}/retry" in stalled["error"]["detail"]
    assert client.post(url + "/retry", headers=alice).status_code == 202
    assert poll(0)["status"] == "queued" and poll(60)["status"] == "queued"  # a fresh look after the retry
    assert poll(1)["status"] == "failed"  # ... and the same window for the new run


def test_stale_guard_default_window():
    from service.settings import Settings

    fields = Settings.model_fields
    assert fields["job_stale_after"].default is None  # → hard time limit + visibility timeout (hours)
    assert fields["job_hard_time_limit"].default + fields["broker_visibility_timeout"].default > 7 * 3600


# ---------------------------------------------------------------- real processes


@pytest.fixture
def fault_env(tmp_path):
    if not reachable(5432) or not shutil.which("redis-server"):
        pytest.skip("needs PostgreSQL on 127.0.0.1:5432 and redis-server on the PATH")
    import psycopg

    name = f"ft_faults_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    redis = RedisServer(tmp_path / "redis.log")
    redis.start()
    procs = Processes(tmp_path / "logs")
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    env = harness.service_env(tmp_path / "data", database_url=url, broker_url=f"redis://127.0.0.1:{redis.port}/0",
                      broker_visibility_timeout=str(VISIBILITY), job_stale_after="600",
                      embedding_backend="torch", job_heartbeat_seconds="1", job_heartbeat_timeout=str(HEARTBEAT),
                      watchdog_interval="2")  # fmt: skip
    yield env, url, redis, procs
    procs.stop_all()
    redis.kill()
    create_engine(url).dispose()
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def write_rows(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "text", "rating"])
        writer.writerows(rows)
    return path


def sample_rows(sample_csv: Path, start: int, stop: int, prefix: str) -> list[tuple[str, str, str]]:
    rows = list(csv.DictReader(sample_csv.open(encoding="utf-8")))[start:stop]
    return [(f"{prefix}{i}", r["text"], r["rating"]) for i, r in enumerate(rows)]


def post(client: httpx.Client, path: Path) -> dict:
    with path.open("rb") as fh:
        response = client.post("/v1/jobs", files={"file": (path.name, fh, "text/csv")},
                               data={"text_column": "text", "id_column": "id", "rating_column": "rating"})  # fmt: skip
    assert response.status_code == 202, response.text
    return response.json()


def wait_for(client: httpx.Client, job_id: str, done, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if done(job):
            return job
        assert time.monotonic() < deadline, f"job {job_id} still {job['status']} ({job['stage']}, {job['progress']})"
        time.sleep(0.25)


def finished(job: dict) -> bool:
    return job["status"] in ("succeeded", "failed")


def start_api(procs: Processes, env: dict[str, str], name: str, key: str, **settings: str):
    port = free_port()
    extra = {f"FEEDBACK_THEMES_{k.upper()}": v for k, v in settings.items()}
    proc = procs.start(name, ["api", "--port", str(port)], {**env, **extra})
    wait_healthy(f"http://127.0.0.1:{port}")
    return httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"X-API-Key": key}, timeout=60), proc


def check_counted_once(url: str, api: httpx.Client, job: dict, rows: int) -> None:
    """The job's project holds each comment once; its tree's nodes and memberships are stored once."""
    engine = create_engine(url)
    with engine.connect() as conn:
        docs, distinct = conn.execute(text("select count(*), count(distinct doc_id) from documents where project_id = :p"),
                                      {"p": job["project_id"]}).one()  # fmt: skip
        nodes = conn.execute(text("select count(*) from themes where job_id = :j"), {"j": job["id"]}).scalar()
        links, distinct_links = conn.execute(
            text("select count(*), count(distinct (theme_id, document_id)) from document_themes where job_id = :j"),
            {"j": job["id"]}).one()  # fmt: skip
        status, finished_at = conn.execute(text("select status, finished_at from jobs where id = :j"), {"j": job["id"]}).one()
    engine.dispose()
    assert docs == distinct == rows == job["counts"]["documents"], (docs, distinct, rows, job["counts"])
    assert status == "succeeded" and finished_at is not None
    metadata = api.get(f"/v1/jobs/{job['id']}/themes", params={"limit": 500}).json()["metadata"]
    assert nodes == metadata["n_categories"] + metadata["n_themes"] + metadata["n_sub_themes"]
    assert links == distinct_links


def stored_results(logs: str) -> dict[str, int]:
    """How many times each job's results were stored (``worker.runner.analyze`` logs it once per stored result)."""
    counts: dict[str, int] = {}
    for job_id in re.findall(r"job ([0-9a-f]{32}) succeeded: ", logs):
        counts[job_id] = counts.get(job_id, 0) + 1
    return counts


@pytest.mark.slow
def test_worker_sigkill_api_restart_failing_stage_and_redis_restart(fault_env, sample_csv, tmp_path):
    env, url, redis, procs = fault_env
    key = create_key(env, "acme")
    marker = f"kiwi-{uuid.uuid4().hex[:10]} unique comment"
    a_rows = sample_rows(sample_csv, 0, 36, "a") + [("a-bad1", "it shrank, it shrank", "five"),
                                                  ("a-bad2", marker, "n/a")]  # fmt: skip
    file_a = write_rows(tmp_path / "a.csv", a_rows)
    file_b = write_rows(tmp_path / "b.csv", sample_rows(sample_csv, 40, 70, "b"))
    worker = procs.start("worker-1", ["worker", "--queues", "cpu,gpu"], env)
    api, api_proc = start_api(procs, env, "api-1", key)
    try:
        # 1. the worker SIGKILLed (its whole process group) mid-job, and the API killed at the same moment
        job_a = post(api, file_a)
        wait_for(api, job_a["id"], lambda j: j["status"] == "running" and j["stage"] != "ingest", 120)
        procs.stop(worker, signal.SIGKILL)
        killed_at = time.monotonic()
        procs.stop(api_proc, signal.SIGKILL)
        api, api_proc = start_api(procs, env, "api-2", key)
        assert api.get(f"/v1/jobs/{job_a['id']}").json()["status"] == "running"  # nothing lost with the API

        # 2. while no worker runs: a job whose ingest stage will raise (its stored upload is gone)
        job_b = post(api, file_b)
        upload_b = Path(env["FEEDBACK_THEMES_DATA_DIR"]) / "uploads" / f"{job_b['id']}.csv"
        hidden = upload_b.rename(upload_b.with_suffix(".hidden"))

        time.sleep(max(0.0, killed_at + VISIBILITY + 1 - time.monotonic()))  # unacked long enough: redelivered
        worker = procs.start("worker-2", ["worker", "--queues", "cpu,gpu"], env)
        done_a = wait_for(api, job_a["id"], finished, 240)
        assert done_a["status"] == "succeeded", done_a
        assert done_a["counts"]["invalid_ratings"] == 2 and done_a["counts"]["documents"] == len(a_rows)
        check_counted_once(url, api, done_a, len(a_rows))
        logs = {p.stem: p.read_text(errors="replace") for p in (tmp_path / "logs").glob("worker-*.log")}
        cut = [t for t in re.findall(r"Task (feedback_themes\.\w+\[[0-9a-f-]+\]) received", logs["worker-1"])
               if f"Task {t} succeeded" not in logs["worker-1"] and f"Task {t} ignored" not in logs["worker-1"]]
        assert cut and all(f"Task {t} succeeded" in logs["worker-2"] for t in cut), cut  # redelivered, run again
        phases = [f"killed mid-task {cut}, redelivered and done {time.monotonic() - killed_at:.0f} s after the kill"]

        failed_b = wait_for(api, job_b["id"], finished, 120)
        assert failed_b["status"] == "failed" and failed_b["error"]["type"] == "/problems/job-failed", failed_b
        assert "FileNotFoundError during ingest" in failed_b["error"]["detail"]
        hidden.rename(upload_b)
        retried = api.post(f"/v1/jobs/{job_b['id']}/retry")
        assert retried.status_code == 202 and retried.json()["id"] == job_b["id"], retried.text
        done_b = wait_for(api, job_b["id"], finished, 120)
        assert done_b["status"] == "succeeded" and done_b["error"] is None, done_b
        check_counted_once(url, api, done_b, 30)
        token = api.post(f"/v1/projects/{job_b['project_id']}/report-token").json()["token"]
        base = str(api.base_url).rstrip("/")
        report = httpx.get(f"{base}/v1/projects/{job_b['project_id']}/reports/documents.csv?token={token}")
        assert report.status_code == 200 and report.text.count("\n") == 31  # the token works (and is used below)

        # 3. Redis killed and restarted empty mid-job, an upload while it is down (stored, queued, answered 202):
        #    no retry call is needed, the workers' watchdog re-queues what the empty Redis lost
        jobs = [post(api, write_rows(tmp_path / f"{p}.csv", sample_rows(sample_csv, start, start + 30, p)))
                for p, start in (("c", 80), ("d", 110))]  # fmt: skip
        wait_for(api, jobs[0]["id"], lambda j: j["status"] == "running" and j["progress"] >= 0.1, 60)
        redis.kill()
        restarted_at = time.monotonic()
        down = api.post("/v1/jobs", json={"items": [{"text": "while the broker is down"}, {"text": "still there"}]})
        assert down.status_code == 202, down.text
        time.sleep(3)
        redis.start()
        jobs.append(down.json())
        for job in jobs:
            job.update(wait_for(api, job["id"], finished, 240))
            assert job["status"] == "succeeded", job
        for job, rows in zip(jobs, (30, 30, 2)):
            check_counted_once(url, api, job, rows)
        phases.append(f"Redis restart: all done {time.monotonic() - restarted_at:.0f} s after it")
        assert worker.poll() is None, "the worker did not survive the Redis restart"  # it reconnected
        print("; ".join(phases))

        # exactly once: each job's results stored once, whatever ran twice; no secret or comment in any log
        logs = "\n".join(p.read_text(errors="replace") for p in (tmp_path / "logs").glob("*.log"))
        stored = stored_results(logs)
        assert all(stored.get(job["id"]) == 1 for job in (job_a, job_b, *jobs)), stored
        assert "reports/documents.csv?token=[redacted]" in logs  # the access log line is there, without its token
        for secret in (key, key[10:], token, token[10:], marker, marker.split()[0]):
            assert secret not in logs, secret
    except BaseException:
        print(procs.logs())
        raise


def test_the_worker_refuses_a_new_project_with_one_distinct_comment(client, alice, service_env):
    """A large upload gets only a streamed check in the API; the worker's ingest refuses it the same way (422
    ``too-few-comments`` in the job's problem), not with an internal error later."""
    import json

    from worker import runner
    from worker.pipeline.ingest import IngestError

    job = client.post("/v1/jobs", headers=alice, json={"items": [{"text": "a"}, {"text": "b"}]}).json()
    source = service_env.uploads_dir / f"{job['id']}.json"
    source.write_text(json.dumps([{"text": "same"}, {"text": "same"}]), encoding="utf-8")
    with pytest.raises(IngestError) as caught:
        runner.ingest(job["id"])
    assert caught.value.code == "too-few-comments"
    fail_job(job["id"], runner.ingest_problem(caught.value))
    failed = client.get(f"/v1/jobs/{job['id']}", headers=alice).json()
    assert failed["status"] == "failed" and failed["error"]["type"] == "/problems/too-few-comments"
    assert failed["error"]["status"] == 422


def test_the_redis_transport_treats_a_closed_channel_as_a_connection_error(tmp_path):
    """After a Redis restart, kombu's channel of the lost connection has no client; using it (to restore or
    acknowledge messages) must raise a connection error, which Celery logs and survives, not an AttributeError,
    which stops the worker. The real-process test above restarts Redis under a running worker."""
    from types import SimpleNamespace

    from redis.exceptions import ConnectionError as RedisConnectionError

    from service.settings import Settings
    from worker.celery_app import create_celery
    from worker.redis_transport import Channel, Transport

    closed = SimpleNamespace(connection=SimpleNamespace(client=None))
    with pytest.raises(RedisConnectionError):
        Channel._connparams(closed)
    assert RedisConnectionError in Transport.connection_errors
    redis_app = create_celery(Settings(data_dir=tmp_path, broker_url="redis://127.0.0.1:1/0"))
    assert redis_app.conf.broker_transport == "worker.redis_transport:Transport"
    assert create_celery(Settings(data_dir=tmp_path)).conf.broker_transport is None  # the embedded broker keeps kombu's own
