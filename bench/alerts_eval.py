"""Alerts on a known subject planted into one day of real feedback.

The airline tweets (``twitter_airline_sentiment/Tweets.csv``, duplicate tweet ids dropped) are split by the local
date of ``tweet_created`` into daily uploads (the 4 tweets of 16 February go with the 17th), each uploaded in order to
one project and run through the worker's own steps in this process (:func:`worker.runner.ingest`,
:func:`~worker.runner.embed_chunk`, :func:`~worker.runner.analyze_job`, which stores the job's alerts) over a SQLite
data folder of the benchmark's own, with the product's defaults (torch backend on the CPU; spans; smoothing; the
theme tree). Embeddings come through the benchmarks' embedding cache (``data/bench-cache``), so reruns embed nothing.

Into the day ``--planted-day`` (default the last, 24 February: 1,344 tweets) the Banking77 ``card_arrival`` queries
(``banking77/train.csv``) are planted at each ``--shares`` (1 %, 2 %, 5 % of that day's upload), addressed to the
airlines' @handles of that day ("@united I am still waiting on my card?"). The project before the planted day is
built once and copied for each share, so a share reruns only the uploads from that day on.

Figures:

- per share: whether an alert on the planted subject fires (an alert whose node's comments in the alert's window are
  mostly planted ones and whose name is about cards), its kind, window, name and figures; the other alerts of that
  upload;
- over the uploads without a planted subject (every upload after the first, before the planted day): alerts per
  upload (each is a false alert: nothing was planted; goal ≤ 1 on average).

    python -m bench alerts [--shares 0.01,0.02,0.05] [--planted-day 2015-02-24] [--seed 0] [--work DIR] [--json OUT]

The pipeline's results are kept under ``--work`` (default ``data/alerts-bench``) keyed by the options that change
them; a rerun recomputes only the alerts (``store_job_alerts`` over the stored jobs) unless ``--fresh``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench import datasets

PLANTED_PREFIX = "p"  # planted comments' ids: p0, p1, …
CARD_WORDS = re.compile(r"\bcards?\b", re.IGNORECASE)


def daily_uploads(frame: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The tweets as uploads, one per local date (the few of the first date go with the next): id, text, date."""
    local = frame["tweet_created"].astype(str).str.slice(0, 19)  # "2015-02-24 11:35:52 -0800" → local time
    day = local.str.slice(0, 10)
    days = sorted(day.unique())
    if len(days) > 1 and (day == days[0]).sum() < 50:
        day = day.where(day != days[0], days[1])
    items = pd.DataFrame({"id": [f"t{i}" for i in frame["tweet_id"]], "text": frame["text"].to_numpy(),
                          "date": local.to_numpy(), "day": day.to_numpy()})  # fmt: skip
    return {d: part.drop(columns="day").sort_values("date").reset_index(drop=True) for d, part in items.groupby("day")}


def airline_handles(upload: pd.DataFrame, n: int = 6) -> list[str]:
    """The @handles the upload's tweets most often start with."""
    first = upload["text"].str.extract(r"^(@\w+)", expand=False).dropna()
    return first.value_counts().index[:n].tolist()


def planted_items(share: float, upload: pd.DataFrame, seed: int) -> pd.DataFrame:
    """``card_arrival`` queries making ``share`` of the upload once added, each addressed to one of the upload's
    airline handles, at random times of the upload's day."""
    bank = pd.read_csv(datasets.data_dir() / "banking77" / "train.csv")
    queries = bank.loc[bank["category"] == "card_arrival", "text"].astype(str).drop_duplicates().tolist()
    n = round(share * len(upload) / (1 - share))
    if n > len(queries):
        raise ValueError(f"{share:.0%} of this upload needs {n} planted comments; only {len(queries)} exist")
    rng = np.random.default_rng(seed)
    chosen = [queries[i] for i in rng.permutation(len(queries))[:n]]
    handles = airline_handles(upload)
    day = pd.Timestamp(upload["date"].iloc[0][:10])
    times = sorted(day + pd.to_timedelta(rng.integers(0, 86_400, size=n), unit="s"))
    return pd.DataFrame({"id": [f"{PLANTED_PREFIX}{i}" for i in range(n)],
                         "text": [f"{handles[i % len(handles)]} {q}" for i, q in enumerate(chosen)],
                         "date": [t.strftime("%Y-%m-%d %H:%M:%S") for t in times]})  # fmt: skip


# ---------------------------------------------------------------- the project, through the worker's steps


def use_data_dir(folder: Path) -> None:
    """Point this process's settings at ``folder`` (torch on the CPU, so embeddings are the benchmark cache's)."""
    from service.settings import get_settings
    from service.storage.session import upgrade_database

    os.environ.update(FEEDBACK_THEMES_DATA_DIR=str(folder), FEEDBACK_THEMES_EMBEDDING_BACKEND="torch",
                      FEEDBACK_THEMES_DEVICE="cpu", HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")  # fmt: skip
    for name in ("DATABASE_URL", "BROKER_URL", "RESULT_BACKEND"):
        os.environ.pop(f"FEEDBACK_THEMES_{name}", None)
    get_settings.cache_clear()
    upgrade_database()


def new_tenant() -> str:
    from service.keys import create_key
    from service.storage.session import session_scope

    with session_scope() as session:
        _, tenant = create_key(session, "alerts-bench")
        return tenant.id


def prefill_embeddings(job_id: str) -> None:
    """Copy the job's distinct model texts' vectors from the benchmark cache (embedding the missing ones into it)
    into the database's cache, so the job's ``embed_chunk`` tasks find them all."""
    from bench.systems import bench_cache
    from service.settings import get_settings
    from service.storage.embeddings import DatabaseEmbeddingCache
    from service.storage.models import Job
    from service.storage.session import session_scope
    from worker import runner
    from worker.pipeline.embed import embed_texts
    from worker.pipeline.embed_cache import text_key

    with session_scope() as session:
        cut = bool((session.get(Job, job_id).counts or {}).get("cut_spans"))
    texts = runner.distinct_texts(job_id, cut)
    model = get_settings().embedding_model
    cache = bench_cache()
    try:
        vectors, _ = embed_texts(texts, model, device="cpu", batch_size=64, cache=cache, backend="torch")
    finally:
        cache.close()
    DatabaseEmbeddingCache().put_many([text_key(model, t) for t in texts], vectors)


def run_upload(folder: Path, tenant_id: str, project_id: str | None, day: str, items: pd.DataFrame) -> tuple[str, str]:
    """One upload as a job, through the worker's steps; returns (job id, project id)."""
    from service.storage.jobs import NewJob, create_job
    from service.storage.session import session_scope
    from worker import runner

    source = folder / "uploads" / f"{day}.json"
    source.parent.mkdir(parents=True, exist_ok=True)
    source.write_text(json.dumps(items.to_dict("records"), ensure_ascii=False), encoding="utf-8")
    with session_scope() as session:
        job, _ = create_job(session, NewJob(job_id=hashlib.sha256(f"{folder}{day}".encode()).hexdigest()[:32],
                                            tenant_id=tenant_id, project_id=project_id, source=str(source),
                                            source_kind="json", columns={}, idempotency_key=None,
                                            payload_hash="-", project_name="airline tweets"))  # fmt: skip
        job_id, project_id = job.id, job.project_id
    started = time.perf_counter()
    n_chunks = runner.ingest(job_id)
    prefill_embeddings(job_id)
    for index in range(n_chunks):
        runner.embed_chunk(job_id, index)
    runner.analyze_job(job_id)
    print(f"  {day}: {len(items)} comments, job {job_id[:8]}, {time.perf_counter() - started:.0f} s", flush=True)
    return job_id, project_id


def copy_data_dir(source: Path, target: Path) -> None:
    """A consistent copy of a data folder's SQLite database (WAL included) and its project files."""
    from service.storage.session import _ENGINES

    for engine in _ENGINES.values():
        engine.dispose()
    target.mkdir(parents=True, exist_ok=True)
    name = "feedback-themes.sqlite"
    with sqlite3.connect(source / name) as src, sqlite3.connect(target / name) as dst:
        src.backup(dst)
    if (source / "projects").exists():
        shutil.copytree(source / "projects", target / "projects", dirs_exist_ok=True)


def build(work: Path, uploads: dict[str, pd.DataFrame], planted_day: str, shares: list[float], seed: int,
          fresh: bool, fresh_shares: bool = False) -> dict[str, Any]:  # fmt: skip
    """The base project (every upload before the planted day) and, per share, its copy with the uploads from the
    planted day on (the planted subject in the first); kept in ``work`` (``state.json``) and reused."""
    state_path = work / "state.json"
    state = json.loads(state_path.read_text()) if state_path.exists() and not fresh else {}
    if fresh and work.exists():
        shutil.rmtree(work)
    if fresh_shares:
        state = {k: v for k, v in state.items() if not k.startswith("share-")}
    before = [d for d in uploads if d < planted_day]
    after = [d for d in uploads if d >= planted_day]
    base = work / "base"
    if "base" not in state:
        print(f"base project: uploads {before[0]} … {before[-1]}", flush=True)
        use_data_dir(base)
        tenant, project, jobs = new_tenant(), None, []
        for day in before:
            job_id, project = run_upload(base, tenant, project, day, uploads[day])
            jobs.append({"day": day, "job_id": job_id})
        state["base"] = {"tenant": tenant, "project": project, "jobs": jobs}
        work.mkdir(parents=True, exist_ok=True)
        state_path.write_text(json.dumps(state, indent=1))
    for share in shares:
        key = f"share-{share:g}"
        if key in state:
            continue
        folder = work / key
        if folder.exists():
            shutil.rmtree(folder)
        copy_data_dir(base, folder)
        use_data_dir(folder)
        print(f"planted {share:.0%}: uploads {after[0]} … {after[-1]}", flush=True)
        jobs = []
        planted = planted_items(share, uploads[planted_day], seed)
        for day in after:
            items = pd.concat([uploads[day], planted]).sort_values("date") if day == planted_day else uploads[day]
            job_id, _ = run_upload(folder, state["base"]["tenant"], state["base"]["project"], day, items)
            jobs.append({"day": day, "job_id": job_id, "planted": len(planted) if day == planted_day else 0})
        state[key] = {"jobs": jobs}
        state_path.write_text(json.dumps(state, indent=1))
    return state


# ---------------------------------------------------------------- the alerts


def job_alerts(job_id: str) -> list[dict[str, Any]]:
    """Recompute and store the job's alerts (the current rules and settings); the alerts as the API lists them, each
    with the doc ids of its node's comments in its window (``window_doc_ids``)."""
    from service.storage.alerts import list_job_alerts, store_job_alerts
    from service.storage.session import session_scope

    with session_scope() as session:
        store_job_alerts(session, job_id)
    with session_scope() as session:
        alerts = list_job_alerts(session, job_id)
        for alert in alerts:
            alert["window_doc_ids"] = window_doc_ids(session, alert)
    return alerts


def window_doc_ids(session: Any, alert: dict[str, Any]) -> list[str]:
    """The doc ids of the alert's node's comments in the alert's window (its job's upload, or its dates)."""
    from sqlalchemy import select

    from service.storage.models import Document, DocumentTheme

    query = (select(Document.doc_id, Document.job_id, Document.date)
             .join(DocumentTheme, DocumentTheme.document_id == Document.id)
             .where(DocumentTheme.job_id == alert["job_id"], DocumentTheme.theme_id == alert["theme"]["id"]))  # fmt: skip
    rows = session.execute(query).all()
    if alert["window"] == "batch":
        return [d for d, job, _ in rows if job == alert["job_id"]]
    start, end = (pd.Timestamp(alert["figures"][k]) for k in ("window_start", "window_end"))
    return [d for d, _, when in rows
            if when is not None and start <= pd.Timestamp(when).tz_localize(None).normalize() <= end]  # fmt: skip


def about_planted(alert: dict[str, Any]) -> tuple[bool, float]:
    """Whether the alert names the planted subject: most of its node's comments in the window are planted and its
    name is about cards; and the planted share of those comments."""
    ids = alert["window_doc_ids"]
    planted = sum(i.startswith(PLANTED_PREFIX) for i in ids) / max(1, len(ids))
    name = (alert.get("theme") or {}).get("name") or ""
    return planted > 0.5 and bool(CARD_WORDS.search(name)), round(planted, 3)


def brief(alert: dict[str, Any]) -> dict[str, Any]:
    theme = alert.get("theme") or {}
    keep = ("count", "n", "share", "baseline_share", "lift", "sentiment_mean", "baseline_sentiment", "q_value")
    return {"kind": alert["kind"], "window": alert["window"], "level": theme.get("level"), "name": theme.get("name"),
            "title": alert["title"], "figures": {k: alert["figures"].get(k) for k in keep}}  # fmt: skip


def evaluate(work: Path, state: dict[str, Any], shares: list[float]) -> dict[str, Any]:
    use_data_dir(work / "base")
    unplanted = []
    for job in state["base"]["jobs"][1:]:  # the first upload has no history: no alerts
        alerts = job_alerts(job["job_id"])
        unplanted.append({"day": job["day"], "alerts": len(alerts), "list": [brief(a) for a in alerts]})
    planted = []
    for share in shares:
        use_data_dir(work / f"share-{share:g}")
        for earlier in state["base"]["jobs"][1:]:  # the previous jobs' alerts, as the rules now make them
            job_alerts(earlier["job_id"])
        job = state[f"share-{share:g}"]["jobs"][0]
        alerts = job_alerts(job["job_id"])
        hits = [(a, *about_planted(a)) for a in alerts]
        found = [a for a, ok, _ in hits if ok]
        planted.append({"share": share, "planted": job["planted"], "fired": bool(found),
                        "alert": brief(found[0]) if found else None,
                        "other_alerts": [brief(a) | {"planted_share": p} for a, ok, p in hits if not ok]})  # fmt: skip
    mean_false = float(np.mean([u["alerts"] for u in unplanted])) if unplanted else 0.0
    return {"planted": planted, "unplanted": unplanted, "false_alerts_per_upload": round(mean_false, 2)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shares", default="0.01,0.02,0.05", help="planted shares of the planted day's upload")
    parser.add_argument("--planted-day", default="2015-02-24", help="the upload (local date) the subject is planted in")
    parser.add_argument("--seed", type=int, default=0, help="which queries are planted, and when")
    parser.add_argument("--work", default=str(datasets.ROOT / "data" / "alerts-bench"), help="kept results")
    parser.add_argument("--fresh", action="store_true", help="rerun the pipeline even where results are kept")
    parser.add_argument("--fresh-shares", action="store_true", help="rerun the uploads from the planted day on "
                        "(keep the base project)")  # fmt: skip
    parser.add_argument("--no-recent-floor", action="store_true", help="themes need 0.5 %% of the project's comments "
                        "even when most are in the newest upload (the product before that floor)")  # fmt: skip
    parser.add_argument("--json", default=None, help="write the figures here")
    args = parser.parse_args(argv)
    shares = [float(s) for s in args.shares.split(",")]
    if args.no_recent_floor:
        from worker import runner

        runner.upload_rows = lambda job_id, document_ids: None  # analyze(..., recent=None)
    uploads = daily_uploads(datasets._airline_frame())
    if args.planted_day not in uploads:
        parser.error(f"--planted-day: one of {', '.join(uploads)}")
    started = time.perf_counter()
    variant = "-no-recent-floor" if args.no_recent_floor else ""
    work = Path(args.work).resolve() / f"seed{args.seed}-{args.planted_day}{variant}"
    state = build(work, uploads, args.planted_day, shares, args.seed, args.fresh, args.fresh_shares)
    figures = evaluate(work, state, shares)
    for row in figures["planted"]:
        alert = row["alert"]
        print(f"planted {row['share']:.0%} ({row['planted']} comments): "
              + (f"fired: {alert['kind']} ({alert['window']}) “{alert['name']}” {json.dumps(alert['figures'])}"
                 if alert else "no alert on the planted subject")
              + f"; {len(row['other_alerts'])} other alerts")  # fmt: skip
        for other in row["other_alerts"]:
            print(f"    other: {other['kind']} ({other['window']}) “{other['name']}” planted {other['planted_share']}")
    for row in figures["unplanted"]:
        print(f"unplanted {row['day']}: {row['alerts']} alerts "
              + "; ".join(f"{a['kind']} ({a['window']}) “{a['name']}”" for a in row["list"]))  # fmt: skip
    print(f"false alerts per unplanted upload: {figures['false_alerts_per_upload']} (goal ≤ 1); "
          f"{time.perf_counter() - started:.0f} s")  # fmt: skip
    print(f"command: python -m bench alerts --shares {args.shares} --planted-day {args.planted_day} --seed {args.seed}"
          + (" --no-recent-floor" if args.no_recent_floor else ""))  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1, ensure_ascii=False), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
