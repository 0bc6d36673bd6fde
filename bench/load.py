"""Load on loopback against the production shape: `feedback-themes api` (one uvicorn process) + two Celery workers,
over a Redis (a redis-server of its own, on a free port) and PostgreSQL (a database of its own on 127.0.0.1:5432).

1. Uploads: N concurrent multipart uploads (default 20, 50 distinct real reviews each: the women's clothing reviews
   from the shared data folder, else the bundled sample), then every job polled to the end; checks each job
   succeeded and counted exactly its rows.
2. Polling while both workers are busy: one large job per worker (default 4,000 reviews each) is posted and, once
   both are past ingest, GET /v1/jobs/{id} is sent over the finished jobs at a fixed rate (default 200 requests/s
   for 60 s), open loop (each request is due on schedule, whether or not earlier ones have answered) over 32
   keep-alive connections of a minimal HTTP/1.1 client (cheap: it shares the machine); latency from when a request
   was due to the last byte of its answer (waiting for a free connection included), and from its send. The busy
   jobs must still be running when the polling ends (else the figure would not be "while busy").

Prints the figures (upload latency, time to all jobs done, polling p50/p95/p99/max, achieved rate, errors) and the
command. The API's per-key rate limit is raised for the run (one key polls at 200/s); it still runs on every request.

    .venv/bin/python -m bench load [--uploads 20] [--rows 50] [--rate 200] [--seconds 60] [--busy-rows 4000]

(``python bench/load.py ...`` runs it too.)
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import os
import platform
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import (  # noqa: E402
    ROOT,
    Database,
    Processes,
    RedisServer,
    children,
    create_key,
    free_port,
    service_env,
    wait_healthy,
)

WORKERS = 2
SHARED_REVIEWS = ROOT.parent / "shared" / "data" / "womens_clothing_reviews" / "reviews.csv"


def reviews(n: int) -> list[tuple[str, str]]:
    """n distinct (text, rating) pairs: real reviews when the shared data folder is there, else the sample's."""
    rows: list[tuple[str, str]] = []
    if SHARED_REVIEWS.exists():
        with SHARED_REVIEWS.open(encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                if row["Review Text"].strip():
                    rows.append((row["Review Text"], row["Rating"]))
                if len(rows) == n:
                    return rows
    with (ROOT / "service" / "sample" / "shop_feedback.csv").open(encoding="utf-8") as fh:
        sample = [(r["text"], r["rating"]) for r in csv.DictReader(fh)]
    return [(f"{text} (#{i // len(sample)})" if i >= len(sample) else text, rating)
            for i, (text, rating) in enumerate(sample[i % len(sample)] for i in range(n))]  # fmt: skip


def csv_bytes(rows: list[tuple[str, str]], prefix: str) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["id", "text", "rating"])
    writer.writerows((f"{prefix}-{i}", text, rating) for i, (text, rating) in enumerate(rows))
    return out.getvalue().encode()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its children so far (Linux /proc)."""
    total = 0.0
    for proc in [pid, *children(pid)]:
        try:
            fields = Path(f"/proc/{proc}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


async def upload_all(base: str, key: str, files: list[bytes]) -> tuple[list[dict], list[float]]:
    async with httpx.AsyncClient(base_url=base, headers={"X-API-Key": key}, timeout=120) as client:

        async def one(i: int, data: bytes) -> tuple[dict, float]:
            started = time.perf_counter()
            response = await client.post("/v1/jobs", files={"file": (f"u{i}.csv", data, "text/csv")},
                                         data={"text_column": "text", "id_column": "id", "rating_column": "rating"})  # fmt: skip
            elapsed = time.perf_counter() - started
            if response.status_code != 202:
                raise SystemExit(f"upload {i}: {response.status_code} {response.text}")
            return response.json(), elapsed

        results = await asyncio.gather(*(one(i, data) for i, data in enumerate(files)))
    return [r[0] for r in results], [r[1] for r in results]


async def wait_all(base: str, key: str, jobs: list[dict], timeout: float) -> list[dict]:
    async with httpx.AsyncClient(base_url=base, headers={"X-API-Key": key}, timeout=60) as client:
        deadline = time.monotonic() + timeout
        while True:
            states = [(await client.get(f"/v1/jobs/{job['id']}")).json() for job in jobs]
            if all(s["status"] in ("succeeded", "failed") for s in states):
                return states
            if time.monotonic() > deadline:
                raise SystemExit(f"jobs not done after {timeout:.0f} s: {[s['status'] for s in states]}")
            await asyncio.sleep(1.0)


class RawConnection:
    """One keep-alive HTTP/1.1 connection speaking just enough HTTP for GETs (the load generator must stay cheap:
    it shares the machine with the service)."""

    def __init__(self, port: int, key: str) -> None:
        self.port, self.key = port, key
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self, path: str) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        self.writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: {self.key}\r\n\r\n".encode())
        await self.writer.drain()
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        length = next(int(line.split(b":")[1]) for line in lines if line.lower().startswith(b"content-length:"))
        await self.reader.readexactly(length)
        return int(lines[0].split()[1])

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


async def poll(port: int, key: str, job_ids: list[str], rate: float, seconds: float, connections: int = 32):
    """Open loop: request i is due at start + i / rate; its latency runs from when it was due (so a slow answer
    that delays later requests counts against them too), through waiting for a free connection, to the last byte."""
    latencies: list[float] = []
    service: list[float] = []
    errors: dict[str, int] = {}
    idle: asyncio.Queue[RawConnection] = asyncio.Queue()
    for _ in range(connections):
        idle.put_nowait(RawConnection(port, key))

    async def one(job_id: str, due: float) -> None:
        conn = await idle.get()
        sent = time.perf_counter()
        try:
            status = await asyncio.wait_for(conn.get(f"/v1/jobs/{job_id}"), timeout=10)
            if status != 200:
                errors[str(status)] = errors.get(str(status), 0) + 1
                return
            done = time.perf_counter()
            latencies.append(done - due)
            service.append(done - sent)
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError, StopIteration) as exc:
            errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
            conn.close()
        finally:
            idle.put_nowait(conn)

    total = int(rate * seconds)
    tasks = []
    start = time.perf_counter()
    for i in range(total):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(job_ids[i % len(job_ids)], due)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    while not idle.empty():
        idle.get_nowait().close()
    ms = [1000 * v for v in latencies] or [float("nan")]
    return {"requests": total, "ok": len(latencies), "errors": errors, "elapsed_s": elapsed,
            "achieved_rps": len(latencies) / elapsed, "p50_ms": percentile(ms, 50), "p95_ms": percentile(ms, 95),
            "p99_ms": percentile(ms, 99), "max_ms": max(ms), "mean_ms": statistics.fmean(ms),
            "service_p99_ms": percentile([1000 * v for v in service] or [float("nan")], 99)}  # fmt: skip


async def wait_busy(base: str, key: str, jobs: list[dict], timeout: float = 600) -> None:
    """Until every job is past ingest (embedding or training: its worker is busy)."""
    async with httpx.AsyncClient(base_url=base, headers={"X-API-Key": key}, timeout=60) as client:
        deadline = time.monotonic() + timeout
        while True:
            states = [(await client.get(f"/v1/jobs/{job['id']}")).json() for job in jobs]
            if all(s["status"] == "running" and s["stage"] not in (None, "ingest") for s in states):
                return
            if time.monotonic() > deadline or any(s["status"] in ("succeeded", "failed") for s in states):
                raise SystemExit(f"the busy jobs did not get busy: {[(s['status'], s['stage']) for s in states]}")
            await asyncio.sleep(0.5)


def statuses(base: str, key: str, jobs: list[dict]) -> list[str]:
    with httpx.Client(base_url=base, headers={"X-API-Key": key}, timeout=60) as client:
        return [client.get(f"/v1/jobs/{job['id']}").json()["status"] for job in jobs]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--uploads", type=int, default=20)
    parser.add_argument("--rows", type=int, default=50, help="distinct reviews per upload")
    parser.add_argument("--rate", type=float, default=200.0, help="polling requests per second")
    parser.add_argument("--seconds", type=float, default=60.0, help="polling duration")
    parser.add_argument("--busy-rows", type=int, default=4000, help="reviews per job that keeps a worker busy")
    parser.add_argument("--api-workers", type=int, default=1, help="uvicorn processes of `feedback-themes api`")
    parser.add_argument("--job-timeout", type=float, default=1800.0)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stopped: still stop what it started (finally below)
    load_before = os.getloadavg()[0]
    if not shutil.which("redis-server"):
        print("error: redis-server is not on the PATH", file=sys.stderr)
        return 2
    database = Database("ft_load")
    tmp = Path(tempfile.mkdtemp(prefix="ft-load-"))
    redis = RedisServer(tmp / "redis.log")
    redis.start()
    procs = Processes(tmp / "logs")
    try:
        env = service_env(tmp / "data", database_url=database.url, broker_url=f"redis://127.0.0.1:{redis.port}/0",
                          rate_limit_per_minute="1000000")  # fmt: skip
        key = create_key(env, "load")
        port = free_port()
        for n in range(WORKERS):
            procs.start(f"worker-{n}", ["worker", "--queues", "cpu,gpu"], env)
        api = procs.start("api", ["api", "--port", str(port), "--workers", str(args.api_workers)], env)
        base = f"http://127.0.0.1:{port}"
        wait_healthy(base)

        texts = reviews(args.uploads * args.rows + WORKERS * args.busy_rows)
        files = [csv_bytes(texts[i * args.rows : (i + 1) * args.rows], f"u{i}") for i in range(args.uploads)]
        started = time.perf_counter()
        jobs, upload_latency = asyncio.run(upload_all(base, key, files))
        uploaded = time.perf_counter() - started
        states = asyncio.run(wait_all(base, key, jobs, args.job_timeout))
        all_done = time.perf_counter() - started
        wrong = [s for s in states if s["status"] != "succeeded" or s["counts"].get("documents") != args.rows]
        print(f"uploads: {args.uploads} concurrent × {args.rows} distinct reviews"
              f" ({'women’s clothing reviews' if SHARED_REVIEWS.exists() else 'bundled sample'});"
              f" all 202 in {uploaded:.2f} s (upload latency p50 {1000 * percentile(upload_latency, 50):.0f} ms,"
              f" max {1000 * max(upload_latency):.0f} ms); all jobs done in {all_done:.1f} s;"
              f" {len(states) - len(wrong)}/{len(states)} succeeded with documents == rows")  # fmt: skip
        for state in wrong:
            print(f"  wrong: {state['id']} {state['status']} {state['counts']} {state['error']}")

        first = args.uploads * args.rows
        busy_files = [csv_bytes(texts[first + i * args.busy_rows : first + (i + 1) * args.busy_rows], f"b{i}")
                      for i in range(WORKERS)]  # fmt: skip
        busy, _ = asyncio.run(upload_all(base, key, busy_files))
        asyncio.run(wait_busy(base, key, busy))
        cpu_before = cpu_seconds(api.pid)
        result = asyncio.run(poll(port, key, [job["id"] for job in jobs], args.rate, args.seconds))
        api_cpu_ms = 1000 * (cpu_seconds(api.pid) - cpu_before) / max(1, result["requests"])
        still_busy = statuses(base, key, busy)
        print(f"polling GET /v1/jobs/{{id}} at {args.rate:.0f}/s for {args.seconds:.0f} s while {WORKERS} workers are"
              f" busy ({WORKERS} jobs × {args.busy_rows} reviews; at the end: {', '.join(still_busy)}):"
              f" {result['requests']} requests,"
              f" {result['ok']} ok, errors {result['errors'] or 0}, achieved {result['achieved_rps']:.1f}/s;"
              f" latency (from when due) p50 {result['p50_ms']:.1f} ms, p95 {result['p95_ms']:.1f} ms,"
              f" p99 {result['p99_ms']:.1f} ms, max {result['max_ms']:.1f} ms, mean {result['mean_ms']:.1f} ms"
              f" (p99 from send: {result['service_p99_ms']:.1f} ms); API CPU {api_cpu_ms:.2f} ms per request")  # fmt: skip
        busy_throughout = all(s == "running" for s in still_busy)
        ok = not wrong and not result["errors"] and result["p99_ms"] <= 50 and busy_throughout
        print(f"targets (all jobs right; 0 errors; p99 ≤ 50 ms while the workers are busy): "
              f"{'met' if ok else 'NOT met'}")  # fmt: skip
        print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
              f"1-min load average before/after {load_before:.1f}/{os.getloadavg()[0]:.1f}; service: api "
              f"({args.api_workers} uvicorn process(es)) + {WORKERS} workers (prefork, concurrency 1, nice "
              f"{os.environ.get('FEEDBACK_THEMES_WORKER_NICE', 10)}) over Redis and PostgreSQL on loopback")  # fmt: skip
        print(f"command: .venv/bin/python -m bench load --uploads {args.uploads} --rows {args.rows} "
              f"--rate {args.rate:g} --seconds {args.seconds:g} --busy-rows {args.busy_rows} "
              f"--api-workers {args.api_workers}")  # fmt: skip
        return 0 if ok else 1
    finally:
        procs.stop_all()
        redis.kill()
        database.drop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
