"""Run the real service as processes (``serve``, or ``api`` + ``worker``) and drive it over HTTP, for the e2e tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

CLI = [sys.executable, "-m", "service.cli"]
ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def reachable(port: int) -> bool:
    """Something listens on 127.0.0.1:port."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def service_env(data_dir: Path, **settings: str) -> dict[str, str]:
    """The process environment for a service with this data folder and these FEEDBACK_THEMES_ settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEEDBACK_THEMES_")}
    env["FEEDBACK_THEMES_DATA_DIR"] = str(data_dir)
    env["PYTHONPATH"] = str(ROOT)
    env.update({f"FEEDBACK_THEMES_{k.upper()}": v for k, v in settings.items()})
    return env


def create_key(env: dict[str, str], tenant: str) -> str:
    out = subprocess.run([*CLI, "keys", "create", "--tenant", tenant], env=env, capture_output=True, text=True,
                         timeout=120, check=True)  # fmt: skip
    return out.stdout.strip().splitlines()[-1]


class Processes:
    """Started processes, their logs in a folder, stopped (and reaped) together."""

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
            os.killpg(proc.pid, sig)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)

    def stop_all(self) -> None:
        for _, proc in reversed(self.procs):
            self.stop(proc)

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-4000:]}" for p in self.log_dir.glob("*.log"))


def wait_healthy(base: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"{base} did not become healthy")


def upload_csv(client: httpx.Client, path: Path, **fields: str) -> httpx.Response:
    with path.open("rb") as fh:
        return client.post("/v1/jobs", files={"file": (path.name, fh, "text/csv")}, data=fields)


def poll_job(client: httpx.Client, location: str, timeout: float = 600) -> tuple[dict, list[tuple[str, float]]]:
    """Poll until the job ends; return the last state and every (stage, progress) seen."""
    seen: list[tuple[str, float]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(location).json()
        step = (job["stage"], job["progress"])
        if not seen or seen[-1] != step:
            seen.append(step)
        if job["status"] in ("succeeded", "failed"):
            return job, seen
        time.sleep(0.25)
    raise TimeoutError(f"job {location} still {job['status']} after {timeout}s: {job}")


def copy_rows(source: Path, target: Path, keep) -> Path:  # type: ignore[no-untyped-def]
    """Write the header and the data rows of ``source`` for which ``keep(row_index, line)`` is true."""
    lines = source.read_text(encoding="utf-8").splitlines(keepends=True)
    target.write_text(lines[0] + "".join(line for i, line in enumerate(lines[1:]) if keep(i, line)), encoding="utf-8")
    return target



@contextmanager
def embedded_service(tmp_path: Path, tenant: str) -> Iterator[tuple[str, str]]:
    """``feedback-themes serve`` on a free port with its own data folder: yields (base URL, API key).

    Logs are in ``tmp_path/logs`` and printed when the block fails; the processes stop afterwards.
    """
    env = service_env(tmp_path / "data")
    key = create_key(env, tenant)
    port = free_port()
    procs = Processes(tmp_path / "logs")
    procs.start("serve", ["serve", "--port", str(port)], env)
    try:
        wait_healthy(f"http://127.0.0.1:{port}")
        yield f"http://127.0.0.1:{port}", key
    except BaseException:
        print(procs.logs())
        raise
    finally:
        procs.stop_all()
