"""Fault benchmark with real processes: does every job end ``succeeded`` exactly once, with every comment counted,
whatever is killed while it runs?

The production shape on loopback: `feedback-themes api`, two `feedback-themes worker --queues cpu,gpu
--concurrency 2` (the compose default), a redis-server of its own (free port, no persistence) and a PostgreSQL
database of its own on 127.0.0.1:5432 (created, dropped at the end); for the last scenario an embedded
`feedback-themes serve` (SQLite, filesystem broker). Scenarios:

  0  baseline: 8 JSON jobs of 60 items posted back to back, then two simultaneous ~2,000-row CSV jobs
     (regression for the fork-safety bug: database connections shared by forked pool processes)
  1  the Celery pool child processes of both workers SIGKILLed mid-job (embed or train)
  2  one worker's whole process group SIGKILLed mid-job, a replacement started ~5 s later
  3  Redis killed during embedding and started again (empty) ~5 s later; a JSON job posted while it is down
  4  the same during training
  5  every PostgreSQL connection of the database terminated mid-job (pg_terminate_backend), at the first of
     embed/train seen, then again at each later stage of train and themes (where the results are stored)
  6  the API SIGKILLed mid-job, a new one started on the same port; polling goes on
  7  `serve`: its embedded worker (process group) SIGKILLed mid-job, serve must start it again and the job succeed;
     then serve itself SIGKILLed: its worker and the worker's pool processes must exit within 40 s (no orphan)

For each job: final status, documents counted in the job's project (count(*) and count(distinct doc_id)) against the
rows sent, themes rows of the job against metadata n_themes, how many times `job <id> succeeded` appears across the
worker logs (exactly 1), jobs.redrives; per scenario the seconds from the fault to all jobs done, and the workers
that exited by themselves (a replacement is started before the next scenario, as an orchestrator would). Every job is
checked again at the end, against the complete logs. Exit code 1 when any job did not succeed exactly once with every
document (or a fault could not be injected).

    .venv/bin/python -m bench faults [--heartbeat-timeout 120] [--watchdog-interval 30] [--only 0,3] [--rows 1.0]

(``python bench/faults.py ...`` runs it too.)

Texts: real reviews from ../shared/data/womens_clothing_reviews/reviews.csv when present, else the bundled sample.
Needs PostgreSQL on 127.0.0.1:5432 (trust auth, user postgres, database `test` for admin statements) and
redis-server on the PATH. Takes 15-30 minutes on a 2-core machine with a 20 s heartbeat timeout, more with the
product defaults (each re-drive waits for the heartbeat timeout plus up to one watchdog interval).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import platform
import re
import shlex
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import httpx
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import harness  # noqa: E402
from bench.harness import CLI, POSTGRES_ADMIN, ROOT, free_port, reachable, wait_healthy  # noqa: E402

SHARED_REVIEWS = ROOT.parent / "shared" / "data" / "womens_clothing_reviews" / "reviews.csv"
SAMPLE = ROOT / "service" / "sample" / "shop_feedback.csv"
MID_JOB = ("embed", "train")
ORPHAN_LIMIT = 40.0  # seconds within which serve's worker (and its pool) must exit once serve is SIGKILLed
NAMES = {0: "baseline", 1: "pool child killed", 2: "worker killed", 3: "redis restart (embed)",
         4: "redis restart (train)", 5: "postgres conns terminated", 6: "API killed", 7: "serve: worker killed"}


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


# ---------------------------------------------------------------- processes (copied, trimmed, from the test harness)


def service_env(data_dir: Path, **settings: str) -> dict[str, str]:
    return {**harness.service_env(data_dir, **settings), "PYTHONUNBUFFERED": "1"}


def create_key(env: dict[str, str], tenant: str, attempts: int = 5) -> str:
    for attempt in range(attempts):
        out = subprocess.run([*CLI, "keys", "create", "--tenant", tenant], env=env, capture_output=True, text=True,
                             timeout=300, cwd=ROOT)  # fmt: skip
        if out.returncode == 0:
            return out.stdout.strip().splitlines()[-1]
        say(f"keys create failed (attempt {attempt + 1}): {out.stderr.strip()[-500:]}")
        time.sleep(30)
    raise RuntimeError("could not create an API key")


def read_proc(pid: int, name: str) -> str | None:
    try:
        return Path(f"/proc/{pid}/{name}").read_text()
    except OSError:
        return None


def state(pid: int) -> str | None:
    """The process state letter (R, S, Z, ...), or None when there is no such process."""
    stat = read_proc(pid, "stat")
    return stat.rsplit(")", 1)[1].split()[0] if stat else None


def alive(pid: int) -> bool:
    return state(pid) not in (None, "Z", "X")  # a zombie has exited (waiting to be reaped by whoever adopted it)


def children(pid: int) -> list[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*") if Path(f"/proc/{pid}/task").is_dir() else []:
        text = read_proc(pid, f"task/{task.name}/children") or ""
        found.update(int(c) for c in text.split())
    if not found:  # fall back to scanning every process's parent pid
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.add(int(stat.parent.name))
    return sorted(found)


def descendants(pid: int) -> list[int]:
    out: list[int] = []
    todo = children(pid)
    while todo:
        child = todo.pop()
        out.append(child)
        todo.extend(children(child))
    return out


def cmdline(pid: int) -> str:
    return (read_proc(pid, "cmdline") or "").replace("\0", " ").strip()


def cpu_ticks(pid: int) -> int:
    total = 0
    for proc in [pid, *descendants(pid)]:
        stat = read_proc(proc, "stat")
        if stat:
            fields = stat.rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total


def killpg(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


class Processes:
    """Started processes, each in a session (process group) of its own, logs in one folder; stopped together."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.procs: list[tuple[str, subprocess.Popen]] = []
        self.groups: set[int] = set()  # every process group started here (or seen: serve's workers), killed at the end
        log_dir.mkdir(parents=True, exist_ok=True)

    def start(self, name: str, args: list[str], env: dict[str, str],
              command: list[str] | None = None) -> subprocess.Popen:  # fmt: skip
        log = (self.log_dir / f"{name}.log").open("ab")
        proc = subprocess.Popen(command or [*CLI, *args], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                                start_new_session=True)  # fmt: skip
        log.close()
        self.procs.append((name, proc))
        self.groups.add(proc.pid)
        return proc

    def log(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def kill(self, proc: subprocess.Popen, group: bool = True) -> None:
        """SIGKILL the process (and its process group) and reap it."""
        if group:
            killpg(proc.pid, signal.SIGKILL)
        elif proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)

    def stop(self, proc: subprocess.Popen, timeout: float = 20) -> None:
        """SIGTERM the process, SIGKILL its group after ``timeout``; then SIGKILL whatever is left in its group."""
        if proc.poll() is None:
            try:
                proc.terminate()
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        killpg(proc.pid, signal.SIGKILL)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass

    def stop_all(self) -> None:
        for _, proc in reversed(self.procs):
            if proc.poll() is None:
                try:
                    proc.terminate()
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 15
        for _, proc in reversed(self.procs):
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for pgid in self.groups:
            killpg(pgid, signal.SIGKILL)
        for _, proc in self.procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass


class Redis:
    """A redis-server of the benchmark's own, without persistence: a restart loses every message (unacked too)."""

    def __init__(self, procs: Processes) -> None:
        self.procs, self.port, self.proc = procs, free_port(), None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        self.proc = self.procs.start(f"redis-{self.starts}", [], os.environ.copy(), command=[
            "redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        deadline = time.monotonic() + 20
        while not reachable(self.port):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)

    def kill(self) -> None:
        self.procs.kill(self.proc, group=False)


# ---------------------------------------------------------------- texts and uploads


class Texts:
    """Distinct real review texts with ratings, handed out without repeats (wrapping around when exhausted)."""

    def __init__(self) -> None:
        rows: list[tuple[str, str]] = []
        seen: set[str] = set()
        if SHARED_REVIEWS.exists():
            self.source = str(SHARED_REVIEWS)
            with SHARED_REVIEWS.open(encoding="utf-8") as fh:
                for row in csv.DictReader(fh):
                    text = (row.get("Review Text") or "").strip()
                    if text and text not in seen:
                        seen.add(text)
                        rows.append((text, row.get("Rating") or ""))
        else:
            self.source = str(SAMPLE)
            with SAMPLE.open(encoding="utf-8") as fh:
                for row in csv.DictReader(fh):
                    text = (row.get("text") or "").strip()
                    if text and text not in seen:
                        seen.add(text)
                        rows.append((text, row.get("rating") or ""))
        self.rows, self.next, self.wrapped = rows, 0, False

    def take(self, n: int) -> list[tuple[str, str]]:
        out = []
        for _ in range(n):
            if self.next >= len(self.rows):
                self.next, self.wrapped = 0, True
            out.append(self.rows[self.next])
            self.next += 1
        if len({t for t, _ in out}) < n:  # a job larger than the pool: make its texts distinct anyway
            out = [(f"{t} (#{i})", r) for i, (t, r) in enumerate(out)]
        return out


def csv_bytes(rows: list[tuple[str, str]], prefix: str) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["id", "text", "rating"])
    writer.writerows((f"{prefix}-{i}", text, rating) for i, (text, rating) in enumerate(rows))
    return out.getvalue().encode("utf-8")


@dataclass
class Job:
    id: str
    project_id: str
    rows: int
    label: str
    status: str = "?"
    docs: int = -1
    distinct_docs: int = -1
    api_documents: int | None = None
    themes_rows: int = -1
    n_themes: int | None = None
    succeeded_lines: int = 0
    redrives: int = -1
    error: str | None = None

    @property
    def docs_ok(self) -> bool:
        return self.docs == self.distinct_docs == self.rows and self.api_documents in (None, self.rows) \
            and self.n_themes is not None and self.themes_rows == self.n_themes  # fmt: skip

    @property
    def ok(self) -> bool:
        return self.status == "succeeded" and self.docs_ok and self.succeeded_lines == 1


@dataclass
class Result:
    number: int
    fault: str
    jobs: list[Job] = field(default_factory=list)
    seconds: float | None = None
    injected: bool = True
    notes: list[str] = field(default_factory=list)
    extra_ok: bool = True  # scenario-specific checks (the orphan check of scenario 7)
    exits: int = 0  # workers that exited by themselves during (or right after) the scenario
    checker: object = None  # Job -> Job: reads the job's final state from its database and the logs

    @property
    def ok(self) -> bool:
        return self.injected and self.extra_ok and bool(self.jobs) and all(j.ok for j in self.jobs)


# ---------------------------------------------------------------- API access


class Api:
    """The API's URL and key; requests survive the API being down (they are retried by the callers)."""

    def __init__(self, base: str, key: str) -> None:
        self.base, self.key = base, key
        self.client = httpx.Client(base_url=base, headers={"X-API-Key": key}, timeout=120)

    def post_csv(self, rows: list[tuple[str, str]], prefix: str, label: str) -> Job:
        upload = {"file": (f"{prefix}.csv", csv_bytes(rows, prefix), "text/csv")}
        columns = {"text_column": "text", "id_column": "id", "rating_column": "rating"}
        response = self.client.post("/v1/jobs", files=upload, data=columns)
        if response.status_code != 202:
            raise RuntimeError(f"upload {prefix}: {response.status_code} {response.text[:300]}")
        body = response.json()
        return Job(body["id"], body["project_id"], len(rows), label)

    def post_json(self, rows: list[tuple[str, str]], prefix: str, label: str) -> Job:
        items = [{"id": f"{prefix}-{i}", "text": t, "rating": float(r) if r else None} for i, (t, r) in enumerate(rows)]
        response = self.client.post("/v1/jobs", json={"items": items})
        if response.status_code != 202:
            raise RuntimeError(f"upload {prefix}: {response.status_code} {response.text[:300]}")
        body = response.json()
        return Job(body["id"], body["project_id"], len(rows), label)

    def get(self, job_id: str) -> dict | None:
        """The job's state, or None when the API does not answer (down, restarting, rate-limited)."""
        try:
            response = self.client.get(f"/v1/jobs/{job_id}", timeout=30)
        except httpx.HTTPError:
            return None
        return response.json() if response.status_code == 200 else None


def wait_stage(api: Api, job: Job, stages: tuple[str, ...], timeout: float) -> dict | None:
    """Poll until the job runs one of ``stages``; None when it finished first (or the timeout passed)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state_ = api.get(job.id)
        if state_:
            if state_["status"] == "running" and state_["stage"] in stages:
                return state_
            if state_["status"] in ("succeeded", "failed"):
                return None
        time.sleep(0.2)
    return None


def wait_done(api_of, jobs: list[Job], timeout: float, interval: float = 1.0) -> float | None:
    """Poll every job until all are finished; returns time.monotonic() when the last was seen done, None on timeout.
    ``api_of()`` gives the current Api (the API may be replaced meanwhile)."""
    todo = {j.id for j in jobs}
    deadline = time.monotonic() + timeout
    last_report = time.monotonic()
    while todo and time.monotonic() < deadline:
        api = api_of()
        for job_id in sorted(todo):
            state_ = api.get(job_id)
            if state_ and state_["status"] in ("succeeded", "failed"):
                todo.discard(job_id)
        if not todo:
            return time.monotonic()
        if time.monotonic() - last_report > 30:
            last_report = time.monotonic()
            states = [api.get(j) for j in sorted(todo)]
            say("  waiting: " + ", ".join(f"{j[:8]} {s['status']}/{s['stage']}/{s['progress']:.2f}" if s
                                         else f"{j[:8]} ?" for j, s in zip(sorted(todo), states)))  # fmt: skip
        time.sleep(interval)
    return None if todo else time.monotonic()


def count_succeeded(log_files: list[Path], job_id: str) -> int:
    pattern = f"job {job_id} succeeded:"
    return sum(p.read_text(errors="replace").count(pattern) for p in log_files if p.exists())


# ---------------------------------------------------------------- the production stack


class Stack:
    """API + workers over a Redis and a PostgreSQL database of the benchmark's own."""

    def __init__(self, tmp: Path, procs: Processes, args: argparse.Namespace) -> None:
        self.tmp, self.procs, self.args = tmp, procs, args
        self.db = f"ft_faults_{uuid.uuid4().hex[:10]}"
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{self.db}"
        self.redis = Redis(procs)
        self.workers: list[tuple[str, subprocess.Popen]] = []
        self.n_workers = 0
        self.n_apis = 0
        self.api_proc: subprocess.Popen | None = None
        self.api: Api | None = None
        self.db_created = False

    def setup(self) -> None:
        with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.db}"')
        self.db_created = True
        self.redis.start()
        self.env = service_env(self.tmp / "data", database_url=self.url,
                               broker_url=f"redis://127.0.0.1:{self.redis.port}/0", embedding_backend="torch",
                               job_heartbeat_timeout=str(self.args.heartbeat_timeout),
                               job_heartbeat_seconds=str(self.args.heartbeat_seconds),
                               watchdog_interval=str(self.args.watchdog_interval),
                               rate_limit_per_minute="0")  # fmt: skip
        self.key = create_key(self.env, "faults")
        self.port = free_port()
        self.start_api()
        for _ in range(2):
            self.start_worker(wait=False)
        for name, _ in self.workers:
            self.wait_ready(name)

    def teardown(self) -> None:
        if self.db_created:
            try:
                with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{self.db}" WITH (FORCE)')
                say(f"dropped database {self.db}")
            except Exception as exc:  # noqa: BLE001
                say(f"could not drop database {self.db}: {exc}")

    def start_api(self) -> None:
        self.n_apis += 1
        self.api_proc = self.procs.start(f"api-{self.n_apis}", ["api", "--port", str(self.port)], self.env)
        wait_healthy(f"http://127.0.0.1:{self.port}", 180, self.api_proc)
        self.api = Api(f"http://127.0.0.1:{self.port}", self.key)

    def start_worker(self, wait: bool = True) -> str:
        self.n_workers += 1
        name = f"worker-{self.n_workers}"
        proc = self.procs.start(name, ["worker", "--queues", "cpu,gpu", "--concurrency", "2"], self.env)
        self.workers.append((name, proc))
        if wait:
            self.wait_ready(name)
        return name

    def wait_ready(self, name: str, timeout: float = 300) -> None:
        proc = dict(self.workers)[name]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{self.procs.log(name).read_text()[-3000:]}")
            if " ready." in self.procs.log(name).read_text(errors="replace"):
                return
            time.sleep(0.5)
        raise TimeoutError(f"{name} not ready after {timeout:.0f} s")

    def healthy(self) -> None:
        """Before a scenario: Redis, the API and two workers are up (restarting what died unexpectedly)."""
        if self.redis.proc.poll() is not None:
            say("redis was down: starting it")
            self.redis.start()
        if self.api_proc.poll() is not None:
            say("the API was down: starting it")
            self.start_api()
        self.reap_exits()  # (reported by the scenario that caused them)
        while len(self.workers) < 2:
            say(f"  starting {self.start_worker(wait=False)} (two workers before each scenario)")
        for name, _ in self.workers:
            self.wait_ready(name)

    def reap_exits(self) -> list[str]:
        """Workers that exited by themselves (none was asked to), or that logged Celery's "Unrecoverable error" and
        are shutting down: removed from the stack (a dying one is given 60 s to exit, then killed), one note each
        with the worker's "Unrecoverable error" line."""
        notes = []
        for name, proc in list(self.workers):
            log = self.procs.log(name).read_text(errors="replace")
            fatal = [line.strip()[:200] for line in log.splitlines() if "Unrecoverable error" in line]
            if proc.poll() is None and not fatal:
                continue
            self.workers.remove((name, proc))
            if proc.poll() is None:
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    self.procs.kill(proc)
                    notes.append(f"{name} logged an unrecoverable error but was still running 60 s later: killed "
                                 f"here; its log: {fatal[0]}")  # fmt: skip
                    say(f"  {notes[-1]}")
                    continue
            notes.append(f"{name} exited by itself with code {proc.returncode}"
                         + (f"; its log: {fatal[0]}" if fatal else ""))  # fmt: skip
            say(f"  {notes[-1]}")
        return notes

    def active(self) -> list[str]:
        with psycopg.connect(f"postgresql://postgres@127.0.0.1:5432/{self.db}") as conn:
            return [r[0] for r in conn.execute("select id from jobs where status in ('queued', 'running')")]

    def wait_idle(self, timeout: float) -> list[str]:
        """Wait until no job is queued or running (a scenario starts on a quiet stack); returns those left."""
        deadline = time.monotonic() + timeout
        left = self.active()
        if left:
            say(f"  waiting for {len(left)} unfinished job(s) of earlier scenarios: {[j[:8] for j in left]}")
        while left and time.monotonic() < deadline:
            time.sleep(2)
            left = self.active()
        return left

    def worker_logs(self) -> list[Path]:
        return sorted(self.procs.log_dir.glob("worker-*.log"))

    def log_marks(self) -> dict[Path, int]:
        """The size of each worker log now: :meth:`new_log` reads what was written after."""
        return {p: p.stat().st_size for p in self.worker_logs()}

    def new_log(self, marks: dict[Path, int], only: str | None = None) -> str:
        parts = []
        for path in self.worker_logs():
            if only is None or path.stem == only:
                with path.open("rb") as fh:
                    fh.seek(marks.get(path, 0))
                    parts.append(fh.read().decode(errors="replace"))
        return "\n".join(parts)

    def log_events(self, marks: dict[Path, int]) -> str:
        return log_events(self.new_log(marks))

    def check(self, job: Job) -> Job:
        with psycopg.connect(f"postgresql://postgres@127.0.0.1:5432/{self.db}") as conn:
            job.docs, job.distinct_docs = conn.execute(
                "select count(*), count(distinct doc_id) from documents where project_id = %s",
                (job.project_id,)).fetchone()  # fmt: skip
            job.themes_rows = conn.execute("select count(*) from themes where job_id = %s", (job.id,)).fetchone()[0]
            status, redrives, result, counts, error = conn.execute(
                "select status, redrives, result, counts, error from jobs where id = %s",
                (job.id,)).fetchone()  # fmt: skip
        finish(job, status, redrives, result, counts, error)
        job.succeeded_lines = count_succeeded(self.worker_logs(), job.id)
        return job


def log_events(text: str) -> str:
    """What workers logged about a fault: watchdog re-queues, task retries, lost pool processes, acknowledgements
    lost with the broker connection, broker connections lost, duplicate deliveries that found nothing to do."""
    counts = {"watchdog re-queues": text.count("showed no heartbeat for"),
              "task retries": len(re.findall(r"\] retry: Retry in", text)),
              "pool processes lost": text.count("exited with 'signal"),
              "acks lost": text.count("Couldn't ack"),
              "broker connections lost": text.count("Connection to broker lost"),
              "'nothing to do' (duplicate deliveries)": text.count("nothing to do")}  # fmt: skip
    return "worker log: " + ", ".join(f"{v} {k}" for k, v in counts.items())


def finish(job: Job, status: str, redrives: int, result, counts, error) -> None:  # type: ignore[no-untyped-def]
    result = json.loads(result) if isinstance(result, str) else result
    counts = json.loads(counts) if isinstance(counts, str) else counts
    error = json.loads(error) if isinstance(error, str) else error
    job.status, job.redrives = status, redrives
    job.n_themes = (result or {}).get("n_themes")
    job.api_documents = (counts or {}).get("documents")
    if error:
        job.error = f"{error.get('type')}: {error.get('detail')}"


# ---------------------------------------------------------------- scenarios


def scaled(args: argparse.Namespace, n: int, least: int = 20) -> int:
    return max(least, round(n * args.rows))


def finish_scenario(stack: Stack, result: Result, jobs: list[Job], fault_at: float, timeout: float) -> Result:
    done_at = wait_done(lambda: stack.api, jobs, timeout)
    result.seconds = None if done_at is None else done_at - fault_at
    if done_at is None:
        result.notes.append(f"not all jobs done after {timeout:.0f} s")
    result.jobs = [stack.check(j) for j in jobs]
    result.checker = stack.check
    exits = stack.reap_exits()
    result.exits += len(exits)
    result.notes.extend(exits)
    return result


def busiest_worker(stack: Stack) -> tuple[str, subprocess.Popen]:
    before = {name: cpu_ticks(p.pid) for name, p in stack.workers}
    time.sleep(1.0)
    usage = {name: cpu_ticks(p.pid) - before[name] for name, p in stack.workers}
    name = max(usage, key=usage.get)
    return name, dict(stack.workers)[name]


def scenario_0(stack: Stack, texts: Texts, args: argparse.Namespace) -> Result:
    result = Result(0, f"none: 8 JSON jobs x {scaled(args, 60, 10)} back to back, then 2 simultaneous "
                       f"{scaled(args, 2000)}-row CSV jobs")  # fmt: skip
    started = time.monotonic()
    jobs = [stack.api.post_json(texts.take(scaled(args, 60, 10)), f"s0j{i}", f"json {i}") for i in range(8)]
    payloads = [texts.take(scaled(args, 2000)) for _ in range(2)]
    posted: list[Job | BaseException] = [None, None]  # type: ignore[list-item]

    def post(i: int) -> None:
        try:
            posted[i] = Api(stack.api.base, stack.key).post_csv(payloads[i], f"s0c{i}", f"csv {i}")
        except BaseException as exc:  # noqa: BLE001
            posted[i] = exc

    threads = [threading.Thread(target=post, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for p in posted:
        if isinstance(p, BaseException):
            raise p
        jobs.append(p)
    return finish_scenario(stack, result, jobs, started, args.job_timeout)


def scenario_1(stack: Stack, texts: Texts, args: argparse.Namespace) -> Result:
    result = Result(1, "SIGKILL the pool children of both workers (embed/train)")
    job = stack.api.post_csv(texts.take(scaled(args, 600)), "s1", "csv")
    running = wait_stage(stack.api, job, MID_JOB, args.job_timeout)
    if running is None:
        result.injected = False
        result.notes.append("the job finished before it reached embed/train: fault not injected")
        return finish_scenario(stack, result, [job], time.monotonic(), args.job_timeout)
    killed = []
    for name, proc in stack.workers:
        for child in children(proc.pid):
            try:
                os.kill(child, signal.SIGKILL)
                killed.append(child)
            except ProcessLookupError:
                pass
    fault_at = time.monotonic()
    result.notes.append(f"killed {len(killed)} pool processes at stage {running['stage']} "
                        f"(progress {running['progress']:.2f})")  # fmt: skip
    say(f"  {result.notes[-1]}")
    return finish_scenario(stack, result, [job], fault_at, args.job_timeout)


def scenario_2(stack: Stack, texts: Texts, args: argparse.Namespace) -> Result:
    result = Result(2, "SIGKILL one worker's process group (embed/train), replacement 5 s later")
    marks = stack.log_marks()
    job = stack.api.post_csv(texts.take(scaled(args, 600)), "s2", "csv")
    running = wait_stage(stack.api, job, MID_JOB, args.job_timeout)
    if running is None:
        result.injected = False
        result.notes.append("the job finished before it reached embed/train: fault not injected")
        return finish_scenario(stack, result, [job], time.monotonic(), args.job_timeout)
    name, proc = busiest_worker(stack)
    stage = (stack.api.get(job.id) or running)["stage"]
    stack.procs.kill(proc)
    fault_at = time.monotonic()
    stack.workers.remove((name, proc))
    log = stack.new_log(marks, only=name)
    cut = [t for t in re.findall(r"Task feedback_themes\.(\w+\[[0-9a-f-]+\]) received", log)
           if f"{t} succeeded" not in log and f"{t} ignored" not in log]  # fmt: skip
    result.notes.append(f"killed {name} (the busiest) at stage {stage}; tasks cut: {', '.join(cut) or 'none'}")
    say(f"  {result.notes[-1]}")
    time.sleep(5)
    replacement = stack.start_worker(wait=False)
    result.notes.append(f"started {replacement}")
    return finish_scenario(stack, result, [job], fault_at, args.job_timeout)


def scenario_redis(number: int, stage: str, stack: Stack, texts: Texts, args: argparse.Namespace) -> Result:
    result = Result(number, f"kill Redis at stage {stage}, start it again (empty) 5 s later; a JSON job posted "
                            "while it is down")  # fmt: skip
    job = stack.api.post_csv(texts.take(scaled(args, 2000)), f"s{number}", "csv")
    running = wait_stage(stack.api, job, (stage,), args.job_timeout)
    if running is None:
        result.injected = False
        result.notes.append(f"the job never showed stage {stage}: fault not injected")
        return finish_scenario(stack, result, [job], time.monotonic(), args.job_timeout)
    stack.redis.kill()
    fault_at = time.monotonic()
    say(f"  killed Redis at stage {stage} (progress {running['progress']:.2f})")
    jobs = [job]
    try:
        t0 = time.monotonic()
        jobs.append(stack.api.post_json(texts.take(scaled(args, 60, 10)), f"s{number}down", "json, Redis down"))
        result.notes.append(f"upload while Redis was down answered 202 in {time.monotonic() - t0:.1f} s")
    except Exception as exc:  # noqa: BLE001
        result.extra_ok = False
        result.notes.append(f"upload while Redis was down failed: {exc}")
    time.sleep(max(0.0, fault_at + 5 - time.monotonic()))
    stack.redis.start()
    say("  Redis started again")
    return finish_scenario(stack, result, jobs, fault_at, args.job_timeout)


def terminate_connections(stack: Stack) -> int:
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as conn:
        rows = conn.execute("select pg_terminate_backend(pid) from pg_stat_activity "
                            "where datname = %s and pid <> pg_backend_pid()", (stack.db,)).fetchall()  # fmt: skip
    return sum(1 for (r,) in rows if r)


def scenario_5(stack: Stack, texts: Texts, args: argparse.Namespace) -> Result:
    result = Result(5, "pg_terminate_backend on every connection of the database, at the first of embed/train "
                       "seen, then again at each later stage of train and themes")  # fmt: skip
    job = stack.api.post_csv(texts.take(scaled(args, 600)), "s5", "csv")
    running = wait_stage(stack.api, job, MID_JOB, args.job_timeout)
    if running is None:
        result.injected = False
        result.notes.append("the job finished before it reached embed/train: fault not injected")
        return finish_scenario(stack, result, [job], time.monotonic(), args.job_timeout)
    order = ["embed", "train", "themes"]
    done = [f"{terminate_connections(stack)} at {running['stage']}"]
    fault_at = time.monotonic()
    say(f"  terminated {done[-1]}")
    remaining = order[order.index(running["stage"]) + 1 :]
    while remaining:  # again in the later stages (themes ends with the transaction that stores the results)
        seen = wait_stage(stack.api, job, tuple(remaining), args.job_timeout)
        if seen is None:
            break
        done.append(f"{terminate_connections(stack)} at {seen['stage']}")
        say(f"  terminated {done[-1]}")
        remaining = order[order.index(seen["stage"]) + 1 :]
    result.notes.append(f"terminated connections: {', '.join(done)}")
    return finish_scenario(stack, result, [job], fault_at, args.job_timeout)


def scenario_6(stack: Stack, texts: Texts, args: argparse.Namespace) -> Result:
    result = Result(6, "SIGKILL the API (embed/train), start a new one, keep polling")
    job = stack.api.post_csv(texts.take(scaled(args, 600)), "s6", "csv")
    running = wait_stage(stack.api, job, MID_JOB, args.job_timeout)
    if running is None:
        result.injected = False
        result.notes.append("the job finished before it reached embed/train: fault not injected")
        return finish_scenario(stack, result, [job], time.monotonic(), args.job_timeout)
    stack.procs.kill(stack.api_proc)
    fault_at = time.monotonic()
    say(f"  killed the API at stage {running['stage']}")
    while stack.api.get(job.id) is None and time.monotonic() - fault_at < 1:
        time.sleep(0.1)
    stack.start_api()
    result.notes.append(f"new API answering {time.monotonic() - fault_at:.1f} s after the kill")
    return finish_scenario(stack, result, [job], fault_at, args.job_timeout)


def serve_worker(serve: subprocess.Popen) -> int | None:
    for child in children(serve.pid):
        line = cmdline(child)
        if "service.cli" in line and " worker" in line and alive(child):
            return child
    return None


def scenario_7(tmp: Path, procs: Processes, texts: Texts, args: argparse.Namespace) -> Result:
    result = Result(7, "serve: SIGKILL its worker's process group (embed/train); then SIGKILL serve")
    data = tmp / "serve-data"
    env = service_env(data, embedding_backend="torch", job_heartbeat_timeout=str(args.heartbeat_timeout),
                      job_heartbeat_seconds=str(args.heartbeat_seconds), watchdog_interval=str(args.watchdog_interval),
                      rate_limit_per_minute="0")  # fmt: skip
    key = create_key(env, "faults")
    port = free_port()
    serve = procs.start("serve", ["serve", "--port", str(port)], env)
    log_files = [procs.log("serve")]
    try:
        base = f"http://127.0.0.1:{port}"
        wait_healthy(base, 180, serve)
        api = Api(base, key)
        deadline = time.monotonic() + 300
        while serve_worker(serve) is None or " ready." not in procs.log("serve").read_text(errors="replace"):
            if time.monotonic() > deadline:
                raise TimeoutError("serve's worker did not get ready")
            time.sleep(0.5)
        job = api.post_csv(texts.take(scaled(args, 600)), "s7", "csv")
        running = wait_stage(api, job, MID_JOB, args.job_timeout)
        if running is None:
            result.injected = False
            result.notes.append("the job finished before it reached embed/train: fault not injected")
            fault_at = time.monotonic()
        else:
            worker = serve_worker(serve)
            if worker is None:
                raise RuntimeError("serve has no worker process")
            procs.groups.add(worker)
            killpg(worker, signal.SIGKILL)
            fault_at = time.monotonic()
            say(f"  killed serve's worker {worker} (its process group) at stage {running['stage']}")
            restarted = None
            while time.monotonic() - fault_at < 120:
                new = serve_worker(serve)
                if new is not None and new != worker:
                    procs.groups.add(new)
                    restarted = time.monotonic() - fault_at
                    break
                time.sleep(0.2)
            result.notes.append(f"worker restarted by serve after {restarted:.1f} s" if restarted is not None
                                else "serve did not restart its worker within 120 s")  # fmt: skip
            if restarted is None:
                result.extra_ok = False
        done_at = wait_done(lambda: api, [job], args.job_timeout)
        result.seconds = None if done_at is None else done_at - fault_at
        if done_at is None:
            result.notes.append(f"job not done after {args.job_timeout:.0f} s")

        def check(job: Job) -> Job:  # the job in serve's SQLite database
            conn = sqlite3.connect(data / "feedback-themes.sqlite", timeout=60)
            try:
                job.docs, job.distinct_docs = conn.execute(
                    "select count(*), count(distinct doc_id) from documents where project_id = ?",
                    (job.project_id,)).fetchone()  # fmt: skip
                job.themes_rows = conn.execute("select count(*) from themes where job_id = ?", (job.id,)).fetchone()[0]
                row = conn.execute("select status, redrives, result, counts, error from jobs where id = ?",
                                   (job.id,)).fetchone()  # fmt: skip
            finally:
                conn.close()
            finish(job, *row)
            job.succeeded_lines = count_succeeded(log_files, job.id)
            return job

        result.jobs, result.checker = [check(job)], check
        result.notes.append(log_events(procs.log("serve").read_text(errors="replace")))

        # serve SIGKILLed: its worker (own session) and the worker's pool processes must exit by themselves
        worker = serve_worker(serve)
        if worker is None:
            result.extra_ok = False
            result.notes.append("no worker to watch when serve was killed")
        else:
            tree = [worker, *descendants(worker)]
            procs.groups.add(worker)
            serve.kill()
            serve.wait(timeout=30)
            killed_at = time.monotonic()
            while any(alive(p) for p in tree) and time.monotonic() - killed_at < ORPHAN_LIMIT + 20:
                time.sleep(0.2)
            left = [p for p in tree if alive(p)]
            gone_after = time.monotonic() - killed_at
            if left:
                result.extra_ok = False
                still = [(p, cmdline(p)[:60]) for p in left]
                result.notes.append(f"serve killed: {len(left)} of {len(tree)} worker processes still alive after "
                                    f"{gone_after:.0f} s: {still} (killed now)")  # fmt: skip
                for p in left:
                    try:
                        os.kill(p, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
            else:
                ok = gone_after <= ORPHAN_LIMIT
                result.extra_ok = result.extra_ok and ok
                result.notes.append(f"serve killed: its worker and {len(tree) - 1} pool processes exited after "
                                    f"{gone_after:.1f} s{'' if ok else f' (over {ORPHAN_LIMIT:.0f} s)'}")  # fmt: skip
            say(f"  {result.notes[-1]}")
    finally:
        procs.stop(serve)
    return result


# ---------------------------------------------------------------- report


def table(results: list[Result]) -> str:
    head = ["#", "fault", "jobs", "succeeded", "docs ok", "exactly-once", "redrives", "s to done", "worker exits"]
    rows = []
    for r in results:
        n = len(r.jobs)
        rows.append([str(r.number), NAMES[r.number] + ("" if r.injected else " (NOT INJECTED)"), str(n),
                     f"{sum(j.status == 'succeeded' for j in r.jobs)}/{n}", f"{sum(j.docs_ok for j in r.jobs)}/{n}",
                     f"{sum(j.succeeded_lines == 1 for j in r.jobs)}/{n}",
                     ",".join(str(j.redrives) for j in r.jobs) if n <= 4 else
                     f"sum {sum(j.redrives for j in r.jobs)} max {max(j.redrives for j in r.jobs)}",
                     "-" if r.seconds is None else f"{r.seconds:.0f}", str(r.exits)])  # fmt: skip
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(head)]
    line = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    out = [line(head), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *(line(r) for r in rows)]
    return "\n".join(out)


def details(results: list[Result]) -> str:
    out = []
    for r in results:
        out.append(f"{r.number} {NAMES[r.number]}: {r.fault}; {'OK' if r.ok else 'FAILED'}")
        for note in r.notes:
            out.append(f"    - {note}")
        for j in r.jobs:
            flag = "ok " if j.ok else "BAD"
            out.append(f"    {flag} job {j.id} ({j.label}, {j.rows} rows): {j.status}, documents {j.docs} "
                       f"(distinct {j.distinct_docs}, counts {j.api_documents}), themes rows {j.themes_rows} / "
                       f"n_themes {j.n_themes}, 'succeeded' lines {j.succeeded_lines}, redrives {j.redrives}"
                       + (f", error {j.error}" if j.error else ""))  # fmt: skip
    return "\n".join(out)


def machine() -> str:
    mem = ""
    try:
        total = next(line for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal"))
        kb = int(total.split()[1])
        mem = f", {kb / 2**20:.0f} GiB memory"
    except (OSError, StopIteration, ValueError):
        pass
    return (f"{platform.platform()}, {platform.machine()}, os.cpu_count()={os.cpu_count()}{mem}, "
            f"Python {platform.python_version()}")


def code_fingerprint() -> str:
    """A hash of the product's Python files (service/, worker/, sae/): other people may edit them during a run."""
    import hashlib

    digest = hashlib.sha256()
    for folder in ("service", "worker", "sae"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            digest.update(str(path.relative_to(ROOT)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def git_state() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True).stdout.strip()  # fmt: skip
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True,
                               text=True).stdout.strip()  # fmt: skip
        return f"{head}{' + uncommitted changes' if dirty else ''}"
    except OSError:
        return "?"


# ---------------------------------------------------------------- main


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--heartbeat-timeout", type=float, default=120.0,
                        help="FEEDBACK_THEMES_JOB_HEARTBEAT_TIMEOUT (product default 120)")
    parser.add_argument("--watchdog-interval", type=float, default=30.0,
                        help="FEEDBACK_THEMES_WATCHDOG_INTERVAL (product default 30)")
    parser.add_argument("--heartbeat-seconds", type=float, default=None,
                        help="FEEDBACK_THEMES_JOB_HEARTBEAT_SECONDS (default: the product's 10, or a quarter of the "
                             "heartbeat timeout when that is below 40)")
    parser.add_argument("--only", default="", help="comma-separated scenario numbers (default: all, 0-7)")
    parser.add_argument("--rows", type=float, default=1.0, help="scale the job sizes (1.0: 60 / 600 / 2,000 rows)")
    parser.add_argument("--job-timeout", type=float, default=None,
                        help="seconds a scenario waits for its jobs (default 3600 + 4 x (timeout + interval))")
    parser.add_argument("--keep-logs", action="store_true", help="keep the log folder even when everything passed")
    parser.add_argument("--report", type=Path, default=None, help="also write the final report to this file")
    args = parser.parse_args(argv)
    if args.heartbeat_seconds is None:
        args.heartbeat_seconds = min(10.0, args.heartbeat_timeout / 4)
    if args.job_timeout is None:
        args.job_timeout = 3600 + 4 * (args.heartbeat_timeout + args.watchdog_interval)
    args.scenarios = sorted({int(s) for s in args.only.split(",") if s.strip()}) if args.only else list(range(8))
    bad = [s for s in args.scenarios if s not in NAMES]
    if bad:
        parser.error(f"no such scenario: {bad}")
    return args


def _raise_on_term(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    signal.signal(signal.SIGTERM, _raise_on_term)
    python = os.path.relpath(sys.executable, ROOT)
    command = f"cd {ROOT} && {python} -m bench faults {shlex.join(sys.argv[1:] if argv is None else argv)}".rstrip()
    if not reachable(5432) or not shutil.which("redis-server"):
        print("needs PostgreSQL on 127.0.0.1:5432 and redis-server on the PATH", file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="ft-faults-"))
    procs = Processes(tmp / "logs")
    texts = Texts()
    started_at = datetime.now(timezone.utc)
    code_before = code_fingerprint()
    t0 = time.monotonic()
    settings_line = (f"heartbeat timeout {args.heartbeat_timeout:g} s, watchdog interval {args.watchdog_interval:g} s, "
                     f"heartbeat every {args.heartbeat_seconds:g} s, broker visibility timeout: product default, "
                     f"rows x{args.rows:g}, scenarios {','.join(map(str, args.scenarios))}")  # fmt: skip
    say(f"fault benchmark: {settings_line}")
    say(f"logs and data in {tmp}; texts from {texts.source} ({len(texts.rows)} distinct)")
    results: list[Result] = []
    stack = None
    error = None
    try:
        production = [s for s in args.scenarios if s != 7]
        if production:
            stack = Stack(tmp, procs, args)
            say(f"starting PostgreSQL database {stack.db}, Redis on port {stack.redis.port}, API, 2 workers")
            stack.setup()
            say(f"API on {stack.api.base}; workers ready")
        for number in args.scenarios:
            say(f"scenario {number}: {NAMES[number]}")
            t = time.monotonic()
            try:
                if number == 7:
                    result = scenario_7(tmp, procs, texts, args)
                else:
                    left = stack.wait_idle(args.job_timeout)
                    if left:
                        say(f"  still unfinished after {args.job_timeout:.0f} s: {left}; going on")
                    exits = stack.reap_exits()
                    if exits and results:  # after the previous scenario's jobs were done
                        results[-1].exits += len(exits)
                        results[-1].notes.extend(f"(after its jobs were done) {e}" for e in exits)
                    stack.healthy()
                    marks = stack.log_marks()
                    runner = {0: scenario_0, 1: scenario_1, 2: scenario_2, 5: scenario_5, 6: scenario_6}.get(number)
                    if runner is not None:
                        result = runner(stack, texts, args)
                    else:
                        result = scenario_redis(number, "embed" if number == 3 else "train", stack, texts, args)
                    result.notes.append(stack.log_events(marks))
            except Exception as exc:  # noqa: BLE001 - one scenario's error (an upload refused...): go on with the rest
                say(f"  scenario {number} raised {type(exc).__name__}: {exc}")
                result = Result(number, NAMES[number], injected=False,
                                notes=[f"the scenario raised {type(exc).__name__}: {str(exc)[:300]}"])  # fmt: skip
            results.append(result)
            say(f"scenario {number}: {'OK' if result.ok else 'FAILED'} in {time.monotonic() - t:.0f} s "
                f"(fault to done: {'-' if result.seconds is None else f'{result.seconds:.0f} s'})")  # fmt: skip
            for line in details([result]).splitlines()[1:]:
                say(line)
        if stack is not None and stack.api is not None:  # late finishes and late duplicates count too
            left = stack.wait_idle(args.job_timeout)
            if left:
                say(f"still unfinished at the end: {left}")
            time.sleep(2 * args.watchdog_interval)  # a last watchdog pass: a re-drive of a finished job would show
            exits = stack.reap_exits()
            production_results = [r for r in results if r.number != 7]
            if exits and production_results:
                production_results[-1].exits += len(exits)
                production_results[-1].notes.extend(f"(after its jobs were done) {e}" for e in exits)
        say("final check of every job (database and complete logs)")
        for result in results:
            if result.checker is not None:
                result.jobs = [result.checker(j) for j in result.jobs]
    except BaseException as exc:  # noqa: BLE001 - report what ran, then stop everything
        error = exc
        say(f"benchmark aborted: {type(exc).__name__}: {exc}")
    finally:
        say("stopping processes")
        procs.stop_all()
        if stack is not None:
            stack.teardown()
    wall = time.monotonic() - t0
    code_after = code_fingerprint()
    code_line = (f"product code (service/ worker/ sae/ *.py) sha256 {code_before}" if code_after == code_before else
                 f"product code CHANGED during the run: sha256 {code_before} at the start, {code_after} at the end "
                 f"(processes started at different times ran different code)")  # fmt: skip
    failed = error is not None or len(results) < len(args.scenarios) or not all(r.ok for r in results)
    report = "\n".join([
        "",
        f"Fault benchmark, {started_at:%Y-%m-%d %H:%M} UTC, {wall / 60:.1f} min wall; code {git_state()}",
        f"machine: {machine()}",
        code_line,
        f"settings: {settings_line}",
        "stack: feedback-themes api + 2 x worker --queues cpu,gpu --concurrency 2, redis-server (no persistence), "
        "PostgreSQL; scenario 7: feedback-themes serve (SQLite, filesystem broker); EMBEDDING_BACKEND=torch",
        f"texts: {texts.source}{' (wrapped around: some texts repeat across jobs)' if texts.wrapped else ''}",
        "",
        table(results),
        "worker exits: workers that exited by themselves (not killed here); a replacement is started before the next "
        "scenario, as an orchestrator would (compose: restart: unless-stopped)",
        "",
        details(results),
        "" if error is None else f"\nABORTED: {type(error).__name__}: {error}",
        f"result: {'FAILED' if failed else 'all jobs succeeded exactly once with every document'}",
        f"reproduce: {command}",
    ])  # fmt: skip
    keep = failed or args.keep_logs
    if keep:
        report += f"\nlogs: {tmp / 'logs'} (kept)"
    else:
        shutil.rmtree(tmp, ignore_errors=True)
        report += f"\nlogs: {tmp / 'logs'} (removed: everything passed; --keep-logs keeps them)"
    print(report, flush=True)
    if args.report:
        args.report.write_text(report.lstrip("\n") + "\n", encoding="utf-8")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
