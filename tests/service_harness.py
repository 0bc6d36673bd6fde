"""Run the real service as processes (``serve``, or ``api`` + ``worker``) and drive it over HTTP, for the e2e tests."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from bench.harness import (  # noqa: F401 - the processes and helpers the benchmarks use too
    CLI,
    ROOT,
    Processes,
    create_key,
    free_port,
    reachable,
    service_env,
    wait_healthy,
)


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
