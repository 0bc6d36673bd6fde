"""Fuzzing benchmark: schemathesis cases from the API's own OpenAPI document, sent in-process to ``create_app()``,
on SQLite (the embedded settings) and on PostgreSQL (a database of its own on 127.0.0.1:5432, dropped afterwards).

Every operation gets valid (positive) and invalid (negative) generated requests with a real API key, on random ids
and on the ids of a real project and job (a job marked succeeded with stored themes and documents, so requests reach
past the 404s and 409s), and on real theme ids for the theme routes; each request body media type separately.
Request schemas the document refers to but lacks are added for the run (and named in the report). Hypothesis runs
with fixed seeds (schemathesis also steers generation by the answers, so the two databases may see slightly
different cases); the cases are spread over the operations, and operations whose inputs run out of new cases leave
their share to the others. Counts the cases and the answers by status class per mode and operation, prints a table
with the time per case and the first 5xx requests (as curl commands, secrets filtered), and exits 1 on any 5xx.

    .venv/bin/python -m bench fuzz [--cases 10000] [--modes sqlite,postgresql]    # or: python bench/fuzz.py
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import tempfile
import time
import warnings
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench.harness import Database  # noqa: E402

MODES = ("sqlite", "postgresql")
SETTINGS = ("DATABASE_URL", "BROKER_URL", "RESULT_BACKEND", "DATA_DIR", "RATE_LIMIT_PER_MINUTE", "MAX_UPLOAD_BYTES",
            "AUTH_FAILURES_PER_MINUTE")  # fmt: skip
THEME_IDS = (1, 2, 3)
CATEGORY_ID = 1_000_001  # the one category: every theme sits under it
FIXED_BODIES = {"POST /v1/projects/{project_id}/themes/{theme_id}/merge": {"themes": [2, 3]}}  # reach a real merge
EXAMPLES_SHOWN = 3


@dataclass
class Tally:
    """Cases, answers by status class and 5xx examples, per operation."""

    cases: Counter[str] = field(default_factory=Counter)
    classes: defaultdict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    seconds: Counter[str] = field(default_factory=Counter)
    examples: defaultdict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    def add(self, label: str, status: int | None, seconds: float, describe: Any) -> None:
        self.cases[label] += 1
        self.seconds[label] += seconds
        kind = "error" if status is None else f"{status // 100}xx"
        self.classes[label][kind] += 1
        if (status is None or status >= 500) and len(self.examples[label]) < EXAMPLES_SHOWN:
            self.examples[label].append(describe())

    def server_errors(self, label: str | None = None) -> int:
        labels = [label] if label else list(self.classes)
        return sum(self.classes[x]["5xx"] + self.classes[x]["error"] for x in labels)


@dataclass
class Slot:
    """One operation, generation mode and set of fixed path parameters, with its share of the cases."""

    operation: Any
    mode: Any
    fixed: dict[str, Any]
    media_type: str | None = None
    body: dict[str, Any] | None = None
    open: bool = True  # produced all it was asked for: it may have more


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=10_000, help="generated cases per mode (default 10000)")
    parser.add_argument("--modes", default=",".join(MODES), help="sqlite, postgresql or both (default both)")
    args = parser.parse_args(argv)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if unknown := set(modes) - set(MODES):
        parser.error(f"unknown modes: {', '.join(sorted(unknown))}")
    quiet()
    results = []
    for mode in modes:
        started = time.monotonic()
        with service(mode) as (app, headers, ids):
            tally = fuzz(app, headers, ids, args.cases)
        results.append((mode, tally, time.monotonic() - started))
        print(f"{mode}: {sum(tally.cases.values())} cases, {tally.server_errors()} 5xx, "
              f"{time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)  # fmt: skip
    report(results, args)
    return 1 if any(tally.server_errors() for _, tally, _ in results) else 0


def quiet() -> None:
    """No log lines or warnings per case: the 500s are counted and shown by the report."""
    import logging

    logging.disable(logging.CRITICAL)
    warnings.simplefilter("ignore")


@contextmanager
def service(mode: str) -> Iterator[tuple[Any, dict[str, str], dict[str, Any]]]:
    """The app for the mode's settings (a temporary data folder; PostgreSQL: a database of its own), a key, real ids."""
    from service.keys import create_key
    from service.settings import get_settings
    from service.storage.session import engine_for, session_scope, upgrade_database

    saved = {name: os.environ.get(f"FEEDBACK_THEMES_{name}") for name in SETTINGS}
    database = Database("ft_fuzz_bench") if mode == "postgresql" else None
    with tempfile.TemporaryDirectory(prefix="ft-fuzz-") as tmp:
        try:
            for name in SETTINGS:
                os.environ.pop(f"FEEDBACK_THEMES_{name}", None)
            os.environ.update(FEEDBACK_THEMES_DATA_DIR=str(Path(tmp) / "data"),
                              FEEDBACK_THEMES_RATE_LIMIT_PER_MINUTE="1000000",  # the limiter runs, never refuses
                              FEEDBACK_THEMES_AUTH_FAILURES_PER_MINUTE="1000000",
                              FEEDBACK_THEMES_MAX_UPLOAD_BYTES=str(1024 * 1024))  # fmt: skip
            if database:
                os.environ["FEEDBACK_THEMES_DATABASE_URL"] = database.url
            get_settings.cache_clear()
            upgrade_database()
            with session_scope() as session:
                key, _ = create_key(session, "fuzz")
            from service.api.app import create_app

            app, headers = create_app(), {"X-API-Key": key}
            yield app, headers, finished_project(app, headers)
        finally:
            restore(saved)
            get_settings.cache_clear()
            if database:
                engine_for(database.url).dispose()
                database.drop()


def restore(saved: dict[str, str | None]) -> None:
    for name, value in saved.items():
        os.environ.pop(f"FEEDBACK_THEMES_{name}", None)
        if value is not None:
            os.environ[f"FEEDBACK_THEMES_{name}"] = value


def finished_project(app: Any, headers: dict[str, str]) -> dict[str, Any]:
    """A job of the fuzzing tenant, marked succeeded as the worker leaves it: documents, themes 1-3, their members,
    a category over them. Returns the ids fuzzed requests may use."""
    from starlette.testclient import TestClient

    from service.storage.models import Document, DocumentTheme, Job, Project
    from service.storage.session import session_scope

    texts = ["late parcel", "soft wool", "refund took weeks", "lovely colour"]
    answer = TestClient(app).post("/v1/jobs", headers=headers, json={"items": [{"text": t} for t in texts]})
    if answer.status_code != 202:
        raise RuntimeError(f"seeding the project failed: {answer.status_code} {answer.text}")
    job_id, project_id = answer.json()["id"], answer.json()["project_id"]
    with session_scope() as session:
        job = session.get(Job, job_id)
        job.status, job.stage, job.progress, job.result = "succeeded", "themes", 1.0, {"n_documents": len(texts)}
        session.get(Project, project_id).current_job_id = job_id
        docs = [Document(project_id=project_id, job_id=job_id, doc_id=str(i + 1), text=t, rating=float(1 + i),
                         date=datetime(2026, 1 + i, 1, tzinfo=UTC), sentiment_score=0.1 * i,
                         sentiment_label="neutral") for i, t in enumerate(texts)]  # fmt: skip
        session.add_all(docs)
        session.flush()
        for theme_id in THEME_IDS:
            session.add(theme_row(job_id, project_id, theme_id))
            session.add_all(DocumentTheme(job_id=job_id, theme_id=theme_id, document_id=d.id, activation=0.5)
                            for d in docs[theme_id - 1 : theme_id + 1])  # fmt: skip
        session.add(theme_row(job_id, project_id, CATEGORY_ID, level=1, children=list(THEME_IDS), size=4))
        session.add_all(DocumentTheme(job_id=job_id, theme_id=CATEGORY_ID, document_id=d.id, activation=0.5)
                        for d in docs)  # fmt: skip
    return {"project_id": project_id, "job_id": job_id}


def theme_row(job_id: str, project_id: str, theme_id: int, level: int = 2, children: list[int] | None = None,
              size: int = 2) -> Any:  # fmt: skip
    """A node row: a theme (under the category when it is one of its children), or with ``level=1`` a category."""
    from service.storage.models import ThemeRow

    parent = None if level == 1 else CATEGORY_ID
    name = f"node {theme_id}"
    record = {"id": theme_id, "level": level, "parent": parent, "children": children or [], "name": name,
              "label": name, "keywords": ["late", "parcel"], "size": size, "share": 0.5,
              "sentiment": {"mean": 0.1, "negative": 0, "neutral": 2, "positive": 0}, "rating": None, "examples": [],
              "features": [theme_id], "first_seen_job": job_id, "is_new": True}  # fmt: skip
    return ThemeRow(job_id=job_id, theme_id=theme_id, project_id=project_id, level=level, parent_id=parent,
                    label=name, size=size, sentiment_mean=0.1, first_seen_job=job_id, record=record)  # fmt: skip


def fuzz(app: Any, headers: dict[str, str], ids: dict[str, Any], cases: int) -> Tally:
    """Run at least ``cases`` generated cases (fewer only if every operation runs out of new ones)."""
    import schemathesis

    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    slots = make_slots([result.ok() for result in schema.get_all_operations()], ids)
    tally = Tally()
    for round_no in range(20):
        open_slots = [s for s in slots if s.open]
        missing = cases - sum(tally.cases.values())
        if missing <= 0 or not open_slots:
            break
        share = math.ceil(missing / len(open_slots))
        for slot in open_slots:
            before = tally.cases[slot.operation.label]
            run_slot(slot, share, round_no, headers, tally)
            slot.open = slot.open and tally.cases[slot.operation.label] - before >= share
    return tally


def make_slots(operations: list[Any], ids: dict[str, Any]) -> list[Slot]:
    """Per operation, mode and request media type: random path ids, the real project/job ids, and those with real
    theme ids; and a real merge."""
    from schemathesis import GenerationMode

    slots = []
    for operation in operations:
        names = {p.name for p in operation.path_parameters}
        id_sets: list[dict[str, Any]] = [{}]
        if real := {k: v for k, v in ids.items() if k in names}:
            id_sets.append(real)
            if "theme_id" in names:
                id_sets += [{**real, "theme_id": theme_id} for theme_id in THEME_IDS[:2]]
        media_types = [body.media_type for body in operation.body] or [None]
        modes = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
        slots += [Slot(operation, mode, fixed, media_type) for mode in modes for fixed in id_sets
                  for media_type in media_types]  # fmt: skip
        if body := FIXED_BODIES.get(operation.label):
            fixed = {**ids, "theme_id": THEME_IDS[0]}
            slots.append(Slot(operation, GenerationMode.POSITIVE, {k: fixed[k] for k in names}, media_types[0], body))
    return slots


def run_slot(slot: Slot, examples: int, round_no: int, headers: dict[str, str], tally: Tally) -> None:
    """Up to ``examples`` cases of one slot, each sent and counted (a 5xx is counted, not raised)."""
    from hypothesis import HealthCheck, Phase, given, seed, settings
    from hypothesis.errors import Unsatisfiable

    label = slot.operation.label
    fixed_body = {} if slot.body is None else {"body": slot.body}
    strategy = slot.operation.as_strategy(generation_mode=slot.mode, path_parameters=slot.fixed or None,
                                          media_type=slot.media_type, **fixed_body)  # fmt: skip

    @seed(round_no)
    @given(case=strategy)
    @settings(max_examples=examples, deadline=None, database=None, phases=[Phase.explicit, Phase.generate],
              suppress_health_check=list(HealthCheck))  # fmt: skip
    def run(case: Any) -> None:
        started = time.perf_counter()
        try:
            status: int | None = case.call(headers=headers).status_code
        except Exception as exc:  # noqa: BLE001 - a transport error counts as a server error
            status = None
            failure = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"[:300]
        else:
            failure = None
        tally.add(label, status, time.perf_counter() - started, lambda: describe(case, headers, status, failure))

    try:
        run()
    except Unsatisfiable:  # nothing to make invalid (no inputs), or no new case left
        slot.open = False


def describe(case: Any, headers: dict[str, str], status: int | None, failure: str | None) -> str:
    try:
        command = case.as_curl_command(headers=headers)
    except Exception:  # noqa: BLE001 - a body curl cannot show
        command = f"{case.method} {case.formatted_path}"
    return f"{status or failure} <- {command[:400]}"


def report(results: list[tuple[str, Tally, float]], args: argparse.Namespace) -> None:
    print(f"Fuzzing the OpenAPI document with schemathesis, in process; machine: {machine()}")
    print(f"Command: .venv/bin/python -m bench fuzz --cases {args.cases} --modes {args.modes}")
    print()
    for mode, tally, seconds in results:
        total = sum(tally.cases.values())
        print(f"== {mode}: {total} cases, {tally.server_errors()} 5xx, {seconds:.0f} s ({total / seconds:.0f} cases/s)")
        print(f"{'operation':<58} {'cases':>6} {'2xx':>6} {'4xx':>6} {'5xx':>5} {'ms/case':>8}")
        for label in sorted(tally.cases):
            c = tally.classes[label]
            print(f"{label:<58} {tally.cases[label]:>6} {c['2xx']:>6} {c['4xx']:>6} {tally.server_errors(label):>5} "
                  f"{1000 * tally.seconds[label] / tally.cases[label]:>8.1f}")  # fmt: skip
        for label, examples in sorted(tally.examples.items()):
            for example in examples:
                print(f"  5xx {label}: {example}")
        print()
    verdict = "no 5xx" if not any(t.server_errors() for _, t, _ in results) else "5xx found (exit 1)"
    print(f"Result: {verdict}")


def machine() -> str:
    info = Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []
    cpu = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), platform.processor())
    return f"{os.cpu_count()} CPUs, {cpu or platform.machine()}, Python {platform.python_version()}"


if __name__ == "__main__":
    sys.exit(main())
