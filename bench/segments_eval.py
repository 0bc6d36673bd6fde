"""Segments: how fast a segment filter answers on a large project, and what a real comparison of two segments finds.

``latency``: a 100,000-comment project on PostgreSQL (a database of its own on 127.0.0.1:5432, dropped afterwards)
whose rows are stored by the worker's own functions (:func:`worker.runner.store_documents`,
:func:`~worker.runner.store_metadata`, :func:`~worker.runner.store_results`) without running the model: the women's
clothing reviews with text (``womens_clothing_reviews/reviews.csv``) repeated with distinct ids to ``--rows``, with
their real metadata columns (Clothing ID, Age, Title, Recommended IND, Positive Feedback Count, Division Name,
Department Name, Class Name) and a made-up review date (spread over 2025, seeded); a synthetic theme tree of the
shape real analyses give (see :func:`synthetic_tree`). Then ``feedback-themes api`` (one uvicorn process, its own
port) answers, per request kind, ``--warmup`` requests and then ``--requests`` timed ones (httpx, one keep-alive
connection, sequential): p50 / p95 / max in ms, with the unfiltered theme list for scale.

``dresses``: the real analysis of the clothing reviews through the real service (``feedback-themes serve``: API and
embedded worker over SQLite, a data folder of the benchmark's own, kept so a rerun reuses the stored embeddings),
uploaded as a CSV with ``text_column=Review Text``, ``rating_column=Rating`` (every other column kept as metadata);
then ``GET /v1/projects/{id}/compare?a=Department Name=Dresses`` (Dresses against every other review): the themes
flagged significant, over-represented (by difference, largest first) and under-represented.

    python -m bench segments latency [--rows 100000] [--requests 50] [--warmup 5] [--json OUT]
    python -m bench segments dresses [--work data/segments-bench] [--project ID] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import datasets
from bench.harness import ROOT, Database, Processes, create_key, free_port, service_env, wait_healthy
from worker.pipeline.output import theme_record
from worker.pipeline.sentiment import aggregate
from worker.pipeline.spans import SpanOptions, Spans, split_spans
from worker.pipeline.themes import Theme

REVIEWS = Path("womens_clothing_reviews") / "reviews.csv"
DRESSES = "Department Name=Dresses"


# ---------------------------------------------------------------------------------------------------------------
# latency: a 100k-comment project stored by the worker's functions, timed through `feedback-themes api`

META_COLUMNS = ("Clothing ID", "Age", "Title", "Recommended IND", "Positive Feedback Count", "Division Name",
                "Department Name", "Class Name")  # fmt: skip
N_CATEGORIES, N_THEMES, SUB_PARENTS = 10, 70, 15  # 15 themes with two sub-themes each: 30 sub-themes
THEMES_PER_COMMENT = 4.0
#: (name, path, query parameters): the requests timed, each ``--requests`` times after ``--warmup``.
REQUESTS = (
    ("themes, no filter", "themes", {}),
    ("themes, Dresses", "themes", {"segment": DRESSES}),
    ("themes, two columns", "themes", {"segment": ["Department Name=Tops", "Recommended IND=0"]}),
    ("themes, number range", "themes", {"segment": ["Age>=30", "Age<40"]}),
    ("themes, date range", "themes", {"from": "2025-03-01", "to": "2025-05-31"}),
    ("themes, three filters", "themes", {"segment": [DRESSES, "Age>=50"], "from": "2025-07-01"}),
    ("tree, no filter", "tree", {}),
    ("tree, Dresses", "tree", {"segment": DRESSES}),
    ("stats, no filter", "stats", {}),
    ("stats, Dresses", "stats", {"segment": DRESSES}),
    ("compare Dresses vs rest", "compare", {"a": DRESSES}),
)


def read_reviews() -> pd.DataFrame:
    """The clothing reviews with text, as the CSV holds them (every cell a string)."""
    frame = pd.read_csv(datasets.data_dir() / REVIEWS, dtype=str, keep_default_na=False)
    return frame[frame["Review Text"].str.strip() != ""].reset_index(drop=True)


def long_tail_sizes(n_documents: int, n_themes: int, per_comment: float) -> np.ndarray:
    """Theme sizes ∝ 1/(rank + 3) (Zipf-like: the largest about 12x the smallest), summing to ``per_comment`` x
    ``n_documents`` memberships."""
    weights = 1.0 / (np.arange(n_themes) + 3.0)
    return np.maximum(1, np.round(weights / weights.sum() * per_comment * n_documents)).astype(np.int64)


def synthetic_tree(frame: pd.DataFrame, spans: Spans, rng: np.random.Generator) -> list[Theme]:
    """Categories, themes and sub-themes of the shape real analyses give (made up, no model): ``N_THEMES`` themes
    with long-tailed sizes (:func:`long_tail_sizes`), members drawn at random, each carried by one random span of the
    member comment; ``N_CATEGORIES`` categories over every tenth theme (their union, highest activation); under
    each of the ``SUB_PARENTS`` largest themes two disjoint sub-themes of 25 % and 20 % of its members."""
    n = len(frame)
    scores, ratings = frame["sentiment_score"].to_numpy(float), frame["rating"].to_numpy(float)
    labels = frame["sentiment_label"].to_numpy()
    per_doc = spans.per_document(n)
    first = np.concatenate([[0], np.cumsum(per_doc)[:-1]])

    def make(node_id: int, level: int, parent: int | None, rows: np.ndarray, acts: np.ndarray,
             units: np.ndarray | None = None) -> Theme:  # fmt: skip
        order = np.argsort(rows)
        rows, acts = rows[order], acts[order]
        if units is None:
            units = first[rows] + (rng.random(len(rows)) * per_doc[rows]).astype(np.int64)
        else:
            units = units[order]
        rated = ratings[rows][~np.isnan(ratings[rows])]
        name = {1: "category", 2: "theme", 3: "sub-theme"}[level] + f" {node_id}"
        return Theme(id=node_id, features=[node_id] if level != 1 else [], members=rows, activations=acts,
                     spans=units, span_activations=acts.copy(), label=name, name=name, keywords=[name],
                     sentiment=aggregate(scores[rows], labels[rows]),
                     rating={"mean": float(rated.mean()), "count": len(rated)} if len(rated) else None,
                     examples=[int(u) for u in units[np.argsort(-acts)[:3]]], member_sentiment=scores[rows],
                     cohesion=0.5, level=level, parent=parent)  # fmt: skip

    themes = []
    for rank, size in enumerate(long_tail_sizes(n, N_THEMES, THEMES_PER_COMMENT)):
        rows = rng.choice(n, size=int(size), replace=False)
        themes.append(make(100 + rank, 2, 1 + rank % N_CATEGORIES, rows, rng.uniform(0.05, 1.0, len(rows))))
    subs = []
    for theme in themes[:SUB_PARENTS]:
        pick = rng.permutation(theme.size)
        for part, (lo, hi) in enumerate(((0.0, 0.25), (0.25, 0.45))):
            chosen = pick[int(lo * theme.size) : int(hi * theme.size)]
            sub = make(1000 + 10 * theme.id + part, 3, theme.id, theme.members[chosen], theme.activations[chosen],
                       theme.spans[chosen])  # fmt: skip
            theme.children.append(sub.id)
            subs.append(sub)
    categories = []
    for cat_id in range(1, N_CATEGORIES + 1):
        children = [t for t in themes if t.parent == cat_id]
        best = pd.Series(np.concatenate([t.activations for t in children]),
                         index=np.concatenate([t.members for t in children])).groupby(level=0).max()  # fmt: skip
        category = make(cat_id, 1, None, best.index.to_numpy(np.int64), best.to_numpy(float), None)
        category.spans = np.unique(np.concatenate([t.spans for t in children]))
        category.span_activations = np.ones(len(category.spans))
        category.examples = [int(u) for u in category.spans[:3]]
        category.children = [t.id for t in children]
        categories.append(category)
    return [*categories, *themes, *subs]


def tree_document(nodes: list[Theme], frame: pd.DataFrame, spans: Spans) -> dict[str, Any]:
    """The ``themes.json`` object of the nodes (as :func:`worker.pipeline.output.themes_document` writes it)."""
    levels = {1: "categories", 2: "themes", 3: "sub_themes"}
    document: dict[str, Any] = {name: [] for name in levels.values()}
    for t in nodes:
        document[levels[t.level]].append(theme_record(t, frame, len(frame), spans))
    for records in document.values():
        records.sort(key=lambda r: (-r["size"], r["id"]))
    document["metadata"] = {"model": "synthetic", "schema_version": 2, "n_documents": len(frame),
                            **{f"n_{name}": len(document[name]) for name in levels.values()}}  # fmt: skip
    return document


def build_project(tenant: str, rows: int, seed: int) -> tuple[str, dict[str, Any]]:
    """Store the project with the worker's own functions; its id and its shape (rows per table, seconds)."""
    from sqlalchemy import func, select

    from service.storage.jobs import NewJob, create_job
    from service.storage.models import DocumentAttribute, DocumentTheme, ProjectColumn, SpanTheme, Tenant
    from service.storage.session import session_scope
    from worker.pipeline.ingest import IngestResult
    from worker.pipeline.sentiment import label_scores, score_texts
    from worker.runner import project_documents, store_documents, store_metadata, store_results, store_sentiment

    rng = np.random.default_rng(seed)
    reviews = read_reviews()
    base = len(reviews)
    source = np.arange(rows) % base
    timings: dict[str, float] = {}
    clock = time.perf_counter()
    dates = pd.Timestamp("2025-01-01") + pd.to_timedelta(rng.integers(0, 365 * 86400, rows), unit="s")
    docs = pd.DataFrame({"doc_id": [f"r{i // base}-{i % base}" for i in range(rows)],
                         "text": reviews["Review Text"].to_numpy()[source],
                         "rating": pd.to_numeric(reviews["Rating"]).to_numpy(float)[source], "date": dates})  # fmt: skip
    metadata = reviews[list(META_COLUMNS)].iloc[source].reset_index(drop=True)
    with session_scope() as session:
        tenant_id = session.scalar(select(Tenant.id).where(Tenant.name == tenant))
        job, _ = create_job(session, NewJob(job_id=uuid.uuid4().hex, tenant_id=tenant_id, project_id=None, source="-",
                                            source_kind="csv", columns={}, idempotency_key=None, payload_hash="-",
                                            project_name="clothing x100k"))  # fmt: skip
        job.status = "running"
        job_id, project_id = job.id, job.project_id
    store_documents(project_id, job_id, docs)
    timings["store_documents"] = time.perf_counter() - clock
    clock = time.perf_counter()
    store_metadata(project_id, job_id, docs["doc_id"].tolist(), IngestResult(docs, metadata=metadata))
    timings["store_metadata"] = time.perf_counter() - clock
    clock = time.perf_counter()
    before = project_documents(project_id)
    after = before.copy()
    base_scores = score_texts(reviews["Review Text"].tolist())  # each distinct review once, then repeated
    after["sentiment_score"] = base_scores.astype(float)[source]
    after["sentiment_label"] = label_scores(after["sentiment_score"].to_numpy())
    store_sentiment(before, after)
    timings["sentiment"] = time.perf_counter() - clock
    clock = time.perf_counter()
    spans = tiled_spans(reviews["Review Text"].tolist(), rows)
    nodes = synthetic_tree(after, spans, rng)
    document = tree_document(nodes, after, spans)
    timings["tree"] = time.perf_counter() - clock
    clock = time.perf_counter()
    store_results(job_id, project_id, None, document, nodes, after, "-", {"documents": rows}, spans=spans)
    timings["store_results"] = time.perf_counter() - clock
    with session_scope() as session:
        count = lambda model, *where: session.scalar(select(func.count()).select_from(model).where(*where))
        shape = {
            "documents": rows, "distinct_texts": base, "spans": len(spans),
            "categories": N_CATEGORIES, "themes": N_THEMES, "sub_themes": len(nodes) - N_CATEGORIES - N_THEMES,
            "theme_sizes": sorted((int(t.size) for t in nodes if t.level == 2), reverse=True),
            "document_themes": count(DocumentTheme, DocumentTheme.job_id == job_id),
            "document_themes_level2": int(sum(t.size for t in nodes if t.level == 2)),
            "span_themes": count(SpanTheme, SpanTheme.job_id == job_id),
            "document_attributes": count(DocumentAttribute, DocumentAttribute.project_id == project_id),
            "columns": {c.name: f"{c.type}, {c.distinct_values} values" for c in
                        session.scalars(select(ProjectColumn).where(ProjectColumn.project_id == project_id))},
            "dresses": int((metadata["Department Name"] == "Dresses").sum()),
            "seconds": {k: round(v, 1) for k, v in timings.items()},
        }  # fmt: skip
    return project_id, shape


def tiled_spans(texts: list[str], rows: int) -> Spans:
    """The spans (as the analysis cuts them) of ``texts`` repeated to ``rows`` comments, each text cut once."""
    one = split_spans(texts, SpanOptions())
    repeats, base = -(-rows // len(texts)), len(texts)
    tiled = Spans(np.concatenate([one.doc + r * base for r in range(repeats)]), np.tile(one.index, repeats),
                  np.tile(one.start, repeats), np.tile(one.end, repeats), one.model_text * repeats)  # fmt: skip
    keep = tiled.doc < rows
    return Spans(tiled.doc[keep], tiled.index[keep], tiled.start[keep], tiled.end[keep],
                 [t for t, k in zip(tiled.model_text, keep) if k])  # fmt: skip


def timed(client: httpx.Client, path: str, params: dict[str, Any], warmup: int, requests: int) -> dict[str, Any]:
    """``warmup`` untimed requests, then ``requests`` timed ones, one after another: ms p50 / p95 / max, and the
    first request's ms (the API process loads a job's arrays on its first segment request)."""
    times, first = [], None
    for i in range(warmup + requests):
        started = time.perf_counter()
        answer = client.get(path, params=params)
        elapsed = (time.perf_counter() - started) * 1000
        if answer.status_code != 200:
            raise RuntimeError(f"GET {path} {params}: {answer.status_code} {answer.text[:300]}")
        first = elapsed if first is None else first
        if i >= warmup:
            times.append(elapsed)
    cuts = statistics.quantiles(times, n=100, method="inclusive")
    return {"p50": round(statistics.median(times), 1), "p95": round(cuts[94], 1), "max": round(max(times), 1),
            "first": round(first, 1), "n": len(times), "bytes": len(answer.content)}  # fmt: skip


def latency(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="segments-bench-"))
    kept = Path(args.work) / "latency-database.json"
    reuse = json.loads(kept.read_text()) if args.reuse else None
    database = Database("segments_bench") if reuse is None else None
    url = database.url if database else reuse["url"]
    env = service_env(work / "data", database_url=url, rate_limit_per_minute="0")
    saved = dict(os.environ)
    procs = Processes(work / "logs")
    try:
        if reuse is None:
            os.environ.update({k: v for k, v in env.items() if k.startswith("FEEDBACK_THEMES_")})
            from service.settings import get_settings

            get_settings.cache_clear()
            key = create_key(env, "segments")  # also migrates the database
            project_id, shape = build_project("segments", args.rows, args.seed)
            print(f"stored: {json.dumps(shape)}", flush=True)
            if not args.no_analyze:
                clock = time.perf_counter()
                analyze_tables(url)
                shape["seconds"]["analyze"] = round(time.perf_counter() - clock, 1)
            if args.keep:
                kept.parent.mkdir(parents=True, exist_ok=True)
                kept.write_text(json.dumps({"url": url, "key": key, "project": project_id, "shape": shape}))
        else:
            key, project_id, shape = reuse["key"], reuse["project"], reuse["shape"]
        port = free_port()
        api = procs.start("api", ["api", "--port", str(port)], env)
        base = f"http://127.0.0.1:{port}"
        wait_healthy(base, proc=api)
        figures = {}
        with httpx.Client(base_url=f"{base}/v1/projects/{project_id}", headers={"X-API-Key": key},
                          timeout=600) as client:  # fmt: skip
            for name, path, params in REQUESTS:
                figures[name] = timed(client, f"/{path}", params, args.warmup, args.requests)
                row = figures[name]
                print(f"  {name:<26} p50 {row['p50']:7.1f} ms  p95 {row['p95']:7.1f} ms  max {row['max']:7.1f} ms  "
                      f"first {row['first']:7.1f} ms",
                      flush=True)  # fmt: skip
    finally:
        procs.stop_all()
        os.environ.clear()
        os.environ.update(saved)
        if database is not None and not args.keep:
            database.drop()
        shutil.rmtree(work, ignore_errors=True)
    return {"shape": shape, "requests": figures, "load_average": os.getloadavg()}


def analyze_tables(url: str) -> None:
    """ANALYZE the database: the planner's statistics as autovacuum leaves them a while after a job (this benchmark's
    PostgreSQL may run without autovacuum)."""
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
        conn.execute("ANALYZE")


# ---------------------------------------------------------------------------------------------------------------
# dresses: the real analysis, then compare


def run_job(client: httpx.Client, csv_path: Path, timeout: float) -> dict[str, Any]:
    """Upload the reviews as a CSV and poll the job to its end; the finished job."""
    with csv_path.open("rb") as fh:
        created = client.post("/v1/jobs", files={"file": (csv_path.name, fh, "text/csv")},
                              data={"text_column": "Review Text", "rating_column": "Rating"})  # fmt: skip
    created.raise_for_status()
    job_id, started, said = created.json()["id"], time.monotonic(), 0.0
    while time.monotonic() - started < timeout:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in ("succeeded", "failed"):
            job["seconds"] = round(time.monotonic() - started, 1)
            return job
        if time.monotonic() - said > 60:
            print(f"  {time.monotonic() - started:6.0f} s  {job['status']} {job['stage']} {job['progress']:.2f}",
                  flush=True)  # fmt: skip
            said = time.monotonic()
        time.sleep(5)
    raise TimeoutError(f"job {job_id} did not finish in {timeout:.0f} s")


def compare_summary(compare: dict[str, Any], top: int) -> dict[str, Any]:
    """The significant themes of a comparison, over-represented in ``a`` (largest difference first) and
    under-represented (most negative first)."""
    significant = [t for t in compare["themes"] if t["significant"]]
    row = lambda t: {"name": t["name"], "a_share": t["a"]["share"], "b_share": t["b"]["share"],
                     "a_count": t["a"]["count"], "b_count": t["b"]["count"], "difference": t["difference"],
                     "lift": t["lift"], "q_value": t["q_value"]}  # fmt: skip
    over = sorted((t for t in significant if t["difference"] > 0), key=lambda t: -t["difference"])
    under = sorted((t for t in significant if t["difference"] < 0), key=lambda t: t["difference"])
    return {"a": compare["a"], "b": compare["b"], "themes": len(compare["themes"]), "significant": len(significant),
            "over": [row(t) for t in over[:top]], "under": [row(t) for t in under[:top]]}  # fmt: skip


def dresses(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(args.work).resolve()
    env = service_env(work / "data")
    key = create_key(env, "segments")
    procs, port = Processes(work / "logs"), free_port()
    base = f"http://127.0.0.1:{port}"
    try:
        serve = procs.start("serve", ["serve", "--port", str(port)], env)
        wait_healthy(base, timeout=300, proc=serve)
        with httpx.Client(base_url=base, headers={"X-API-Key": key}, timeout=300) as client:
            job: dict[str, Any] | None = None
            project = args.project
            if not project:
                job = run_job(client, datasets.data_dir() / REVIEWS, args.timeout)
                if job["status"] != "succeeded":
                    raise RuntimeError(f"the job failed: {job['error']}")
                project = job["project_id"]
            started = time.perf_counter()
            answer = client.get(f"/v1/projects/{project}/compare", params={"a": DRESSES})
            answer.raise_for_status()
            compare_ms = (time.perf_counter() - started) * 1000
    finally:
        procs.stop_all()
    summary = compare_summary(answer.json(), args.top)
    return {"project": project, "job": job and {k: job[k] for k in ("id", "counts", "seconds")},
            "compare_ms": round(compare_ms), **summary}  # fmt: skip


def print_dresses(figures: dict[str, Any]) -> None:
    job = figures["job"]
    if job:
        print(f"job {job['id']}: {job['seconds']:.0f} s, counts {json.dumps(job['counts'])}")
    a, b = figures["a"], figures["b"]
    print(
        f"project {figures['project']}: Dresses {a.get('n_documents')} comments vs rest {b.get('n_documents')}; "
        f"{figures['significant']} of {figures['themes']} themes significant; compare {figures['compare_ms']} ms"
    )
    for title, rows in (("over-represented in Dresses", figures["over"]), ("under-represented", figures["under"])):
        print(f"{title}:")
        for r in rows:
            print(
                f"  {r['difference']:+.4f}  {r['a_share']:.2%} vs {r['b_share']:.2%}  q={r['q_value']:.2g}  "
                f"“{r['name']}”"
            )


# ---------------------------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parts = parser.add_subparsers(dest="part", required=True)
    lat = parts.add_parser("latency", help="theme list, tree, stats and compare with segment filters, 100k comments")
    lat.add_argument("--rows", type=int, default=100_000, help="comments of the project")
    lat.add_argument("--requests", type=int, default=50, help="timed requests per kind")
    lat.add_argument("--warmup", type=int, default=5, help="untimed requests per kind before them")
    lat.add_argument("--seed", type=int, default=0, help="the made-up tree and dates")
    lat.add_argument("--no-analyze", action="store_true", help="time without running ANALYZE after storing")
    lat.add_argument("--keep", action="store_true", help="keep the database (noted in --work) for --reuse")
    lat.add_argument("--reuse", action="store_true", help="time the database kept by --keep instead of building one")
    lat.add_argument("--work", default=str(ROOT / "data" / "segments-bench"), help="where --keep notes its database")
    lat.add_argument("--json", default=None, help="write the figures here")
    d = parts.add_parser("dresses", help="the real analysis of the clothing reviews, then Dresses against the rest")
    d.add_argument("--work", default=str(ROOT / "data" / "segments-bench"), help="the service's data and logs (kept)")
    d.add_argument("--project", default=None, help="compare this finished project of --work instead of uploading")
    d.add_argument("--top", type=int, default=10, help="themes listed per direction")
    d.add_argument("--timeout", type=float, default=4 * 3600, help="seconds the job may take")
    d.add_argument("--json", default=None, help="write the figures here")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    if args.part == "latency":
        figures = latency(args)
        command = f"python -m bench segments latency --rows {args.rows} --requests {args.requests}"
    if args.part == "dresses":
        figures = dresses(args)
        print_dresses(figures)
        command = "python -m bench segments dresses" + (f" --project {args.project}" if args.project else "")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(figures, indent=1, ensure_ascii=False))
    print(f"{time.perf_counter() - started:.0f} s; command: {command}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
