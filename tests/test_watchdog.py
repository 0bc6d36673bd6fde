"""Job liveness and the watchdog, in process on SQLite: claims, chunk bookkeeping, re-drives from stored state, the
per-process database engine after a fork, and the embedded worker's supervisor."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from service.storage.models import Job, JobChunk, Project, Tenant, utcnow
from service.storage.session import engine_for, get_engine, session_scope
from worker import liveness, watchdog
from worker.celery_app import ANALYZE, EMBED_CHUNK, RUN_JOB

TIMEOUT = 60.0
ROOT = Path(__file__).resolve().parents[1]


class Sent:
    """A stand-in for the Celery app that records what would be queued."""

    def __init__(self) -> None:
        self.tasks: list[tuple[str, list, str]] = []

    def send_task(self, name: str, args: list, queue: str) -> None:
        self.tasks.append((name, args, queue))


def make_job(status: str = "queued", n_chunks: int = 0, idle: float = 0.0, **values) -> str:
    """A job row whose heartbeat is ``idle`` seconds old."""
    with session_scope() as session:
        tenant = Tenant(name=f"t-{os.urandom(4).hex()}")
        session.add(tenant)
        session.flush()
        project = Project(tenant_id=tenant.id)
        session.add(project)
        session.flush()
        job = Job(tenant_id=tenant.id, project_id=project.id, source="x", source_kind="json", status=status,
                  n_chunks=n_chunks, heartbeat_at=utcnow() - timedelta(seconds=idle), **values)  # fmt: skip
        session.add(job)
        session.flush()
        return job.id


def age(job_id: str, seconds: float) -> None:
    """Make the job's heartbeat ``seconds`` old."""
    with session_scope() as session:
        session.execute(update(Job).where(Job.id == job_id).values(heartbeat_at=utcnow() - timedelta(seconds=seconds)))


def job_row(job_id: str) -> Job:
    with session_scope() as session:
        return session.get(Job, job_id)


@pytest.fixture
def settings(service_env, monkeypatch):
    from service.settings import get_settings

    monkeypatch.setenv("FEEDBACK_THEMES_JOB_HEARTBEAT_TIMEOUT", str(TIMEOUT))
    monkeypatch.setenv("FEEDBACK_THEMES_JOB_MAX_REDRIVES", "2")
    get_settings.cache_clear()
    return get_settings()


def test_ingest_claim_is_held_by_one_task_until_its_heartbeat_stops(settings):
    job = make_job()
    assert liveness.claim_ingest(job, "task-a", TIMEOUT)
    assert liveness.claim_ingest(job, "task-a", TIMEOUT)  # the same message again (redelivered, retried)
    assert not liveness.claim_ingest(job, "task-b", TIMEOUT)  # a duplicate while task-a is alive
    age(job, TIMEOUT + 1)
    assert liveness.claim_ingest(job, "task-b", TIMEOUT)  # task-a went silent
    assert job_row(job).owner == "task-b"
    liveness.release(job, "task-b")
    with session_scope() as session:
        session.execute(update(Job).where(Job.id == job).values(n_chunks=2, status="running"))
    assert not liveness.claim_ingest(job, "task-c", TIMEOUT)  # ingested already: a late duplicate does nothing


def test_analysis_claim_and_finished_jobs(settings):
    job = make_job("running", n_chunks=1)
    assert liveness.claim_analysis(job, "an-1", TIMEOUT)
    assert not liveness.claim_analysis(job, "an-2", TIMEOUT)
    with session_scope() as session:
        session.execute(update(Job).where(Job.id == job).values(status="succeeded"))
    assert not liveness.claim_analysis(job, "an-1", TIMEOUT)
    assert not liveness.claim_ingest(job, "an-1", TIMEOUT)


def test_the_last_chunk_queues_the_analysis_once(settings):
    job = make_job("running", n_chunks=3)
    assert not liveness.finish_chunk(job, 0)
    assert not liveness.finish_chunk(job, 0)  # a chunk done twice counts once
    assert not liveness.finish_chunk(job, 2)
    assert liveness.finish_chunk(job, 1)
    assert not liveness.finish_chunk(job, 1)  # a redelivered last chunk: the analysis is queued already
    assert liveness.done_chunks(job) == {0, 1, 2}
    liveness.unsend_analysis(job)  # queueing failed: the next one to finish sends it
    assert liveness.finish_chunk(job, 2)


def test_heartbeat_thread_touches_the_job(settings):
    job = make_job("running", n_chunks=1, idle=500)
    before = job_row(job).heartbeat_at
    with liveness.heartbeat(job, 0.05):
        time.sleep(0.3)
    assert job_row(job).heartbeat_at > before + timedelta(seconds=400)


def test_watchdog_requeues_each_stalled_job_from_its_stored_state(settings, monkeypatch):
    monkeypatch.setattr(watchdog, "queue_depths", lambda s: {"cpu": 0, "gpu": 0})
    fresh = make_job("running", n_chunks=2, idle=5)
    queued = make_job("queued", idle=TIMEOUT + 5)
    embedding = make_job("running", n_chunks=3, idle=TIMEOUT + 5)
    liveness.finish_chunk(embedding, 1)
    analysing = make_job("running", n_chunks=1, owner="dead-task")
    liveness.finish_chunk(analysing, 0)  # the analysis was queued, then its worker died
    age(analysing, TIMEOUT + 5)
    celery = Sent()
    done = watchdog.scan(celery, settings)
    assert done == {queued: "ingest", embedding: "embed", analysing: "analyze"}
    assert sorted(celery.tasks) == sorted([
        (RUN_JOB, [queued], "cpu"), (EMBED_CHUNK, [embedding, 0], "cpu"), (EMBED_CHUNK, [embedding, 2], "cpu"),
        (ANALYZE, [analysing], "cpu")])  # fmt: skip
    row = job_row(analysing)
    assert row.owner is None and row.redrives == 1 and row.analyze_sent_at is not None
    assert liveness.claim_analysis(analysing, "new-task", TIMEOUT)  # the re-queued analysis can take it
    assert fresh not in done
    assert watchdog.scan(Sent(), settings) == {}  # their heartbeats are fresh again


def test_watchdog_waits_for_a_busy_queue_and_acts_once(settings, monkeypatch):
    job = make_job("queued", idle=TIMEOUT + 5)
    monkeypatch.setattr(watchdog, "queue_depths", lambda s: {"cpu": 4, "gpu": 0})
    assert watchdog.scan(Sent(), settings) == {}  # its message may be waiting behind four others
    depths = {"cpu": 0, "gpu": 0}
    stalled = watchdog.stalled_jobs(TIMEOUT)
    first, second = Sent(), Sent()
    assert watchdog.redrive(first, settings, stalled[0], depths) == "ingest"
    assert watchdog.redrive(second, settings, stalled[0], depths) is None  # another watchdog read the same row
    assert len(first.tasks) == 1 and not second.tasks
    assert job_row(job).redrives == 1


def test_a_job_lost_too_often_ends_failed(settings, monkeypatch):
    monkeypatch.setattr(watchdog, "queue_depths", lambda s: {})
    job = make_job("running", n_chunks=1, idle=TIMEOUT + 5, redrives=2)
    celery = Sent()
    assert watchdog.scan(celery, settings) == {job: "failed"}
    row = job_row(job)
    assert row.status == "failed" and row.error["type"] == "/problems/job-lost" and not celery.tasks
    assert f"POST /v1/jobs/{job}/retry" in row.error["detail"]


def test_results_are_stored_only_by_the_task_that_holds_the_job(settings):
    from worker.runner import JobGone, store_results

    job = make_job("running", n_chunks=1, owner="new-owner")
    with session_scope() as session:
        project = session.get(Job, job).project_id
    document = {"themes": [], "groups": [], "metadata": {"n_themes": 0}}
    import pandas as pd

    docs = pd.DataFrame({"id": [], "doc_id": [], "text": [], "rating": [], "date": []})
    with pytest.raises(JobGone):
        store_results(job, project, None, document, [], docs, "sae", {}, owner="old-owner")
    assert job_row(job).status == "running"
    store_results(job, project, None, document, [], docs, "sae", {}, owner="new-owner")
    row = job_row(job)
    assert row.status == "succeeded" and row.owner is None
    with pytest.raises(JobGone):  # exactly once
        store_results(job, project, None, document, [], docs, "sae", {}, owner="new-owner")


def test_retry_clears_the_liveness_state(client, alice, settings):
    from worker.liveness import fail_job
    from worker.runner import unexpected_problem

    response = client.post("/v1/jobs", headers=alice, json={"items": [{"text": "a"}, {"text": "b"}]})
    job = response.json()["id"]
    with session_scope() as session:
        session.execute(update(Job).where(Job.id == job).values(n_chunks=2, owner="x", redrives=3))
    liveness.finish_chunk(job, 0)
    fail_job(job, unexpected_problem("embed", RuntimeError("boom")))
    assert client.post(f"/v1/jobs/{job}/retry", headers=alice).status_code == 202
    row = job_row(job)
    assert (row.status, row.owner, row.redrives, row.n_chunks, row.analyze_sent_at) == ("queued", None, 0, 0, None)
    with session_scope() as session:
        assert not session.scalars(select(JobChunk).where(JobChunk.job_id == job)).all()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_process_gets_its_own_engine(service_env):
    parent = get_engine()
    with parent.connect():
        pass  # the parent has a pooled connection now, as the worker's main process does after its upgrade
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: a new engine, and it works
        try:
            ok = get_engine() is not parent and engine_for(str(parent.url)) is get_engine()
            with session_scope() as session:
                ok = ok and session.scalar(select(1)) == 1
            os.write(write, b"1" if ok else b"0")
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(read, 1) == b"1"
    assert get_engine() is parent


def test_supervisor_restarts_its_child_and_stops_it(tmp_path):
    from service.supervise import Supervisor

    said: list[str] = []
    sup = Supervisor([sys.executable, "-c", "import time; time.sleep(60)"], env=dict(os.environ), say=said.append,
                     steady_after=0.0).start()  # fmt: skip
    first = sup.pid
    os.kill(first, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while (sup.pid == first or sup.proc.poll() is not None) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sup.pid != first and sup.proc.poll() is None and sup.restarts == 1 and "exited" in said[0]
    sup.stop(timeout=5)
    assert sup.proc.poll() is not None


def test_a_worker_exits_when_its_parent_dies(tmp_path):
    """``exit_with_parent``: a child whose parent is SIGKILLed stops by itself (here: a plain Python process)."""
    child_py = tmp_path / "child.py"
    child_py.write_text("import os, signal, sys, time\n"
                        "from service.supervise import exit_with_parent\n"
                        "signal.signal(signal.SIGQUIT, lambda *a: os._exit(3))\n"
                        "exit_with_parent(int(sys.argv[1]), interval=0.1)\n"
                        "time.sleep(60)\n")  # fmt: skip
    parent_py = tmp_path / "parent.py"
    parent_py.write_text("import os, subprocess, sys, time\n"
                         "child = subprocess.Popen([sys.executable, sys.argv[1], str(os.getpid())], start_new_session=True)\n"
                         "print(child.pid, flush=True)\n"
                         "time.sleep(60)\n")  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    parent = subprocess.Popen([sys.executable, str(parent_py), str(child_py)], stdout=subprocess.PIPE, text=True,
                              env=env)  # fmt: skip
    child = int(parent.stdout.readline())
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and alive(child):
        time.sleep(0.05)
    if alive(child):
        os.kill(child, signal.SIGKILL)
        pytest.fail("the child outlived its parent")


def alive(pid: int) -> bool:
    """The process exists and is not a zombie (an orphan's exit is reaped by init, whenever it gets to it)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
