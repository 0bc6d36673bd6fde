"""Processes for the benchmarks: start the real service (``api``, ``worker``, ``serve``, a redis-server, a database
of its own) on loopback, and stop everything afterwards (used by ``python -m bench faults``, ``fuzz`` and ``load``;
the tests' service harness imports it too). Benchmarks never import the test suite."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "service.cli"]
POSTGRES_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def reachable(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def service_env(data_dir: Path, **settings: str) -> dict[str, str]:
    """The process environment for a service with this data folder and these FEEDBACK_THEMES_ settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEEDBACK_THEMES_")}
    env.update(FEEDBACK_THEMES_DATA_DIR=str(data_dir), PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1")
    env.update({f"FEEDBACK_THEMES_{k.upper()}": v for k, v in settings.items()})
    return env


def create_key(env: dict[str, str], tenant: str) -> str:
    out = subprocess.run([*CLI, "keys", "create", "--tenant", tenant], env=env, capture_output=True, text=True,
                         timeout=120, check=True)  # fmt: skip
    return out.stdout.strip().splitlines()[-1]


def wait_healthy(base: str, timeout: float = 120, proc: subprocess.Popen | None = None) -> None:
    """Until ``base``/healthz answers 200; fails early when ``proc`` (the server's process) has exited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{base}: the process exited with {proc.returncode} before it answered")
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"{base} did not become healthy in {timeout:.0f} s")


def children(pid: int) -> list[int]:
    """Every descendant of a process (Linux /proc)."""
    try:
        found = [int(c) for t in Path(f"/proc/{pid}/task").iterdir() for c in (t / "children").read_text().split()]
    except OSError:
        return []
    return found + [g for c in found for g in children(c)]


class Processes:
    """Started processes, each in a session of its own with its log in a folder; stopped together."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.procs: list[tuple[str, subprocess.Popen]] = []
        log_dir.mkdir(parents=True, exist_ok=True)

    def start(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen:
        log = (self.log_dir / f"{name}.log").open("ab")
        proc = subprocess.Popen([*CLI, *args], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                                start_new_session=True)  # fmt: skip
        self.procs.append((name, proc))
        return proc

    def stop(self, proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, sig)
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
            except ProcessLookupError:
                pass

    def stop_all(self) -> None:
        for _, proc in reversed(self.procs):
            self.stop(proc)

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-4000:]}" for p in self.log_dir.glob("*.log"))


class RedisServer:
    """A redis-server of its own on a free port, without persistence (a restart loses every message)."""

    def __init__(self, log: Path) -> None:
        self.port, self.log, self.proc = free_port(), log, None

    def start(self) -> None:
        self.proc = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no"], stdout=self.log.open("ab"), stderr=subprocess.STDOUT,
                                     start_new_session=True)  # fmt: skip
        deadline = time.monotonic() + 10
        while not reachable(self.port):
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


class Database:
    """A PostgreSQL database of its own on 127.0.0.1:5432, dropped on :meth:`drop`."""

    def __init__(self, prefix: str) -> None:
        import uuid

        import psycopg

        self.name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.name}"')
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{self.name}"

    def drop(self) -> None:
        import psycopg

        with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
