"""The job runner: each step loads a job's data by ids, runs its part of the pipeline, stores what it made, and is
idempotent. ``ingest`` stores the upload's documents, ``embed_chunk`` fills the shared embedding cache, and
``analyze_job`` runs :func:`worker.pipeline.analyze.analyze` over the project and stores the results.

Steps and their share of the job's progress bar:
``ingest`` (0–0.10) → ``embed`` (0.10–0.60, chunks in parallel) → ``sentiment`` (0.60–0.65) →
``train`` (0.65–0.88) → ``themes`` (0.88–0.97) → ``store`` (0.97–1.0); a job that succeeded reads stage ``done``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import delete, func, insert, select, update

from service.metrics import observe_stage
from service.problems import problem
from service.settings import get_settings
from service.storage.alerts import store_job_alerts
from service.storage.attributes import refresh_project_columns, store_attributes
from service.storage.derived import refresh_derived
from service.storage.embeddings import DatabaseEmbeddingCache
from service.storage.models import Document, DocumentTheme, Job, Project, SpanTheme, ThemeRow, utcnow
from service.storage.reporting_schema import publish_reporting
from service.storage.session import session_scope
from service.storage.webhooks import queue_job_events
from worker.analysis_options import from_settings
from worker.pipeline.ingest import ColumnMap, IngestError, IngestResult, from_records, read_csv, require_distinct_texts
from worker.pipeline.metadata import describe_columns
from worker.pipeline.spans import Spans, cuts_comments, split_spans
from worker.pipeline.tree import LEVEL_CATEGORY, LEVEL_SUB_THEME, LEVEL_THEME

STAGE_SPAN = {"ingest": (0.0, 0.10), "embed": (0.10, 0.60), "sentiment": (0.60, 0.65), "train": (0.65, 0.88),
              "themes": (0.88, 0.97), "store": (0.97, 1.0)}  # fmt: skip
DONE = "done"  # the stage of a job that succeeded
_BATCH = 1000
log = logging.getLogger(__name__)


class JobGone(Exception):
    """The job row no longer exists or has already finished: nothing to do."""


def set_stage(job_id: str, stage: str, fraction: float = 0.0) -> None:
    """Record the job's stage and its overall progress (never moving the bar backwards)."""
    lo, hi = STAGE_SPAN[stage]
    progress = round(lo + (hi - lo) * min(1.0, max(0.0, fraction)), 4)
    with session_scope() as session:
        session.execute(update(Job).where(Job.id == job_id).values(stage=stage, progress=_greatest(session, Job.progress, progress)))


def progress_writer(job_id: str, stage: str, every: float = 0.02) -> Callable[[float], None]:
    """A progress callback that writes to the job row at most every ``every`` of the stage."""
    last = [-1.0]

    def write(fraction: float) -> None:
        if fraction >= 1.0 or fraction - last[0] >= every:
            last[0] = fraction
            set_stage(job_id, stage, fraction)

    return write


def _load_job(session, job_id: str) -> Job:  # type: ignore[no-untyped-def]
    job = session.get(Job, job_id)
    if job is None or job.status in ("succeeded", "failed"):
        raise JobGone(job_id)
    return job


# ---------------------------------------------------------------- ingest


def read_source(job: Job) -> IngestResult:
    """Parse the job's stored upload (CSV file or JSON items)."""
    if job.source_kind == "json":
        items = json.loads(Path(job.source).read_text(encoding="utf-8"))
        return from_records(items)
    return read_csv(job.source, ColumnMap(**job.columns))


def ingest(job_id: str) -> int:
    """Parse the upload and store its documents; return the number of embedding chunks to run."""
    with session_scope() as session:
        job = _load_job(session, job_id)
        if job.n_chunks:  # ingested before (a redelivered task): resume with the stored documents
            return job.n_chunks
        job.status, job.stage, job.started_at = "running", "ingest", job.started_at or utcnow()
        job.heartbeat_at = utcnow()
        project_id = job.project_id
        session.add(job)
    with session_scope() as session:
        ingested = read_source(session.get(Job, job_id))
        earlier = session.scalar(select(func.count()).select_from(Document)
                                 .where(Document.project_id == project_id, Document.job_id != job_id))  # fmt: skip
    if not earlier:  # a new project: its SAE needs two different comments (the API checks this for most uploads)
        require_distinct_texts(ingested)
    docs = ingested.documents
    generated = ingested.generated_ids  # row numbers get the job's prefix, so later uploads never collide
    docs = docs.assign(doc_id=[f"{job_id[:8]}-{d}" if g else d for d, g in zip(docs["doc_id"], generated)])
    store_documents(project_id, job_id, docs)
    metadata_columns = store_metadata(project_id, job_id, docs["doc_id"].tolist(), ingested)
    cut = project_cuts_comments(project_id)
    texts = distinct_texts(job_id, cut)
    size = get_settings().embedding_chunk_size
    n_chunks = math.ceil(len(texts) / size)
    with session_scope() as session:
        job = session.get(Job, job_id)
        job.counts = {**ingested.counts, "unique_texts": len(texts), "cut_spans": cut}
        job.metadata_columns = metadata_columns
        job.n_chunks = n_chunks
    set_stage(job_id, "ingest", 1.0)
    return n_chunks


def store_documents(project_id: str, job_id: str, docs: pd.DataFrame) -> None:
    """Insert the job's documents; a document whose id the project already has is replaced. Idempotent."""
    records = [
        {
            "project_id": project_id, "job_id": job_id, "doc_id": str(r.doc_id), "text": r.text,
            "rating": None if pd.isna(r.rating) else float(r.rating),
            "date": None if pd.isna(r.date) else pd.Timestamp(r.date).to_pydatetime(),
        }
        for r in docs.itertuples(index=False)
    ]  # fmt: skip
    with session_scope() as session:
        for start in range(0, len(records), _BATCH):
            batch = records[start : start + _BATCH]
            session.execute(
                delete(Document).where(Document.project_id == project_id,
                                       Document.doc_id.in_([r["doc_id"] for r in batch]))
            )  # fmt: skip
            session.execute(insert(Document), batch)


def store_metadata(project_id: str, job_id: str, doc_ids: list[str], ingested: IngestResult) -> list[dict[str, Any]]:
    """Store the upload's metadata cells per comment and type the project's columns again over all its comments;
    return this upload's columns, typed over its rows."""
    cells = ingested.metadata if ingested.metadata is not None else pd.DataFrame(index=range(len(doc_ids)))
    with session_scope() as session:
        store_attributes(session, project_id, job_id, doc_ids, cells)
        refresh_project_columns(session, project_id, list(cells.columns))
    return describe_columns(cells)


def project_cuts_comments(project_id: str) -> bool:
    """Whether the analysis will cut the project's comments into spans (:func:`worker.pipeline.spans.cuts_comments`
    over every document of the project, as :func:`worker.pipeline.analyze.analyze` decides it)."""
    with session_scope() as session:
        texts = session.scalars(select(Document.text).where(Document.project_id == project_id)).all()
    return cuts_comments(texts, from_settings(get_settings()).spans)


def distinct_texts(job_id: str, cut: bool) -> list[str]:
    """The distinct texts the model reads for the job's comments (their spans when ``cut``, normalised:
    :func:`worker.pipeline.spans.split_spans`) in a stable order (by hash), which fixes each embedding chunk's
    content."""
    with session_scope() as session:
        texts = session.scalars(select(Document.text).where(Document.job_id == job_id).distinct()).all()
    units = set(split_spans(texts, from_settings(get_settings()).spans, cut=cut).model_text)
    return sorted(units, key=lambda t: hashlib.sha256(t.encode()).digest())


# ---------------------------------------------------------------- embed


def embed_chunk(job_id: str, index: int) -> int:
    """Embed chunk ``index`` of the job's distinct texts into the shared cache; return how many were encoded.

    Chunks run in parallel, so each moves the job's bar by its own share (atomic increments).
    """
    from worker.pipeline.embed import embed_texts

    settings = get_settings()
    options = from_settings(settings)
    with session_scope() as session:
        job = _load_job(session, job_id)
        n_chunks, cut, project_id = max(1, job.n_chunks), (job.counts or {}).get("cut_spans"), job.project_id
    size = settings.embedding_chunk_size
    cut = project_cuts_comments(project_id) if cut is None else bool(cut)  # jobs ingested before it was kept
    texts = distinct_texts(job_id, cut)[index * size : (index + 1) * size]
    lo, hi = STAGE_SPAN["embed"]
    share = (hi - lo) / n_chunks
    done = [0.0]

    def advance(fraction: float) -> None:
        if fraction - done[0] >= 0.05 or fraction >= 1.0:
            step, done[0] = (fraction - done[0]) * share, fraction
            with session_scope() as session:
                capped = _least(session, Job.progress + step, hi)
                session.execute(update(Job).where(Job.id == job_id).values(stage="embed", progress=capped))

    with session_scope() as session:
        session.execute(update(Job).where(Job.id == job_id).values(stage="embed"))
    _, encoded = embed_texts(
        texts, options.model, device=options.resolved_device, batch_size=options.batch_size,
        cache=DatabaseEmbeddingCache(), progress=advance, chunk=64, backend=options.embedding_backend(),
    )  # fmt: skip
    advance(1.0)
    return encoded


def _least(session, a, b):  # type: ignore[no-untyped-def]
    """SQL least(a, b) in the session's dialect."""
    return func.min(a, b) if session.get_bind().dialect.name == "sqlite" else func.least(a, b)


def _greatest(session, a, b):  # type: ignore[no-untyped-def]
    """SQL greatest(a, b) in the session's dialect."""
    return func.max(a, b) if session.get_bind().dialect.name == "sqlite" else func.greatest(a, b)


# ---------------------------------------------------------------- sentiment, train, themes


def project_documents(project_id: str) -> pd.DataFrame:
    """Every document of the project, in insertion order."""
    columns = [Document.id, Document.doc_id, Document.text, Document.rating, Document.date,
               Document.sentiment_score, Document.sentiment_label]  # fmt: skip
    with session_scope() as session:
        rows = session.execute(select(*columns).where(Document.project_id == project_id).order_by(Document.id)).all()
    frame = pd.DataFrame(rows, columns=["id", "doc_id", "text", "rating", "date", "sentiment_score", "sentiment_label"])
    frame["rating"] = frame["rating"].astype(float)
    return frame


def store_sentiment(before: pd.DataFrame, after: pd.DataFrame) -> None:
    """Store the sentiment of the documents that had none before the analysis scored them."""
    todo = before["sentiment_score"].isna().to_numpy()
    rows = [{"id": int(i), "sentiment_score": float(s), "sentiment_label": str(label)}
            for i, s, label in zip(after["id"][todo], after["sentiment_score"][todo], after["sentiment_label"][todo])]  # fmt: skip
    with session_scope() as session:
        for start in range(0, len(rows), _BATCH):
            session.execute(update(Document), rows[start : start + _BATCH])


def job_progress(job_id: str) -> Callable[[str, float], None]:
    """The analysis's ``progress(stage, fraction)`` written to the job row (each stage at most every 2 %)."""
    writers: dict[str, Callable[[float], None]] = {}

    def write(stage: str, fraction: float) -> None:
        if stage not in writers:
            writers[stage] = progress_writer(job_id, stage)
        writers[stage](fraction)

    return write


def analyze_job(job_id: str, owner: str | None = None) -> dict[str, Any]:
    """Run the analysis over every document of the job's project (updating the project's SAE), store sentiment,
    SAE and results; the job ends ``succeeded`` (only while task ``owner`` still holds the job, see
    :mod:`worker.liveness`; else :class:`JobGone` and nothing is stored)."""
    from worker.pipeline.analyze import analyze

    settings = get_settings()
    with session_scope() as session:
        job = _load_job(session, job_id)
        project = session.get(Project, job.project_id)
        project_id, previous_job, previous_sae = project.id, project.current_job_id, project.sae_path
        counts = dict(job.counts or {})
    docs = project_documents(project_id)
    previous_nodes = previous_memberships(previous_job, docs["id"].to_numpy()) if previous_job else None
    # Every text is in the shared cache by now (earlier jobs' too): nothing is re-embedded.
    result = analyze(docs, from_settings(settings), progress=job_progress(job_id), cache=DatabaseEmbeddingCache(),
                     previous_sae=previous_sae, previous_nodes=previous_nodes,
                     recent=upload_rows(job_id, docs["id"]) if previous_job else None)  # fmt: skip
    for stage in ("sentiment", "train", "themes"):
        observe_stage(stage, result.seconds[stage])
    started = time.perf_counter()
    set_stage(job_id, "store")
    store_sentiment(docs, result.documents)
    sae_dir = settings.projects_dir / project_id / "sae" / job_id
    result.sae.save(sae_dir)
    counts.update({"project_documents": len(docs), "re_embedded": result.counts["embedded"],
                   "spans": result.counts["spans"]})  # fmt: skip
    result.document["metadata"]["counts"] = counts
    store_results(job_id, project_id, previous_job, result.document, result.nodes, result.documents, str(sae_dir),
                  counts, owner, spans=result.spans)  # fmt: skip
    observe_stage("store", time.perf_counter() - started)
    log.info("job %s succeeded: %d comments, %d categories, %d themes, %d sub-themes", job_id, len(docs),
             len(result.document.get("categories", [])), len(result.document["themes"]),
             len(result.document.get("sub_themes", [])))  # fmt: skip
    return result.document["metadata"]


def upload_rows(job_id: str, document_ids: pd.Series) -> np.ndarray:
    """Per analysed document (``document_ids``: database ids in order), whether it is of this job's upload."""
    with session_scope() as session:
        own = session.scalars(select(Document.id).where(Document.job_id == job_id)).all()
    return document_ids.isin(own).to_numpy()


def previous_memberships(previous_job: str, document_ids: np.ndarray) -> dict[int, np.ndarray]:
    """The previous job's categories and sub-themes: node id → the row positions (in ``document_ids``, the analysed
    documents' database ids in order) of its member comments, for the analysis to keep their ids where they match.
    Comments since removed or replaced are left out."""
    position = pd.Series(np.arange(len(document_ids)), index=document_ids)
    with session_scope() as session:
        rows = session.execute(
            select(DocumentTheme.theme_id, DocumentTheme.document_id)
            .join(ThemeRow, (ThemeRow.job_id == DocumentTheme.job_id) & (ThemeRow.theme_id == DocumentTheme.theme_id))
            .where(DocumentTheme.job_id == previous_job, ThemeRow.level.in_((LEVEL_CATEGORY, LEVEL_SUB_THEME)))
        ).all()  # fmt: skip
    links = pd.DataFrame(rows, columns=["node", "document_id"])
    links["row"] = links["document_id"].map(position)
    links = links.dropna(subset=["row"])
    return {int(node): np.sort(part["row"].to_numpy(dtype=np.int64)) for node, part in links.groupby("node")}


def node_records(document: dict[str, Any]) -> list[dict[str, Any]]:
    """Every node record of a ``themes.json`` object: its categories, themes and sub-themes."""
    return [*document.get("categories", []), *document["themes"], *document.get("sub_themes", [])]


def store_results(job_id: str, project_id: str, previous_job: str | None, document: dict[str, Any],
                  themes: list, docs: pd.DataFrame, sae_dir: str, counts: dict[str, Any],
                  owner: str | None = None, spans: Spans | None = None) -> None:  # fmt: skip
    """Store the job's theme tree: every node (categories, themes, sub-themes; ``themes``: the analysis's nodes,
    ``document``: the ``themes.json`` object) with its first job, memberships of every level, and the spans carrying
    each theme and sub-theme (``spans`` are the units the nodes' rows index, ``None``: the comments themselves); mark
    new nodes, compute impact and trends, make this job the project's current one, and publish the project's report
    tables (PostgreSQL). One transaction, which ends the job ``succeeded`` (stage ``done``) only if it is still
    running (and held by ``owner`` when given): else nothing is stored."""
    with session_scope() as session:
        first_seen = dict(
            session.execute(select(ThemeRow.theme_id, ThemeRow.first_seen_job).where(ThemeRow.job_id == previous_job)).all()
        ) if previous_job else {}  # fmt: skip
        for table in (SpanTheme, DocumentTheme, ThemeRow):
            session.execute(delete(table).where(table.job_id == job_id))
        rows = []
        for record in node_records(document):
            seen = first_seen.get(record["id"], job_id)
            record["first_seen_job"] = seen
            record["is_new"] = seen == job_id
            rows.append({"job_id": job_id, "theme_id": record["id"], "project_id": project_id, "label": record["label"],
                         "level": record.get("level", LEVEL_THEME), "parent_id": record.get("parent"),
                         "size": record["size"], "sentiment_mean": record["sentiment"]["mean"],
                         "first_seen_job": seen, "record": record})  # fmt: skip
        if rows:
            session.execute(insert(ThemeRow), rows)
        ids = docs["id"].to_numpy()
        links = [{"job_id": job_id, "theme_id": t.id, "document_id": int(ids[m]), "activation": round(float(a), 4),
                  "sentiment": s} for t in themes for m, a, s in zip(t.members, t.activations, member_scores(t))]  # fmt: skip
        for start in range(0, len(links), 5000):
            session.execute(insert(DocumentTheme), links[start : start + 5000])
        # spans of themes and sub-themes: a category's are its themes'
        carriers = [t for t in themes if getattr(t, "level", LEVEL_THEME) != LEVEL_CATEGORY]
        units = spans if spans is not None else Spans.whole(docs["text"].tolist())
        span_links = span_rows(job_id, carriers, ids, units)
        for start in range(0, len(span_links), 5000):
            session.execute(insert(SpanTheme), span_links[start : start + 5000])
        refresh_derived(session, job_id, seed=get_settings().seed)  # impact, trends, emerging, the project's merges
        store_job_alerts(session, job_id)  # what changed in this upload (worker/pipeline/alerts.py)
        meta = {**document["metadata"], "counts": counts}
        held = [Job.owner == owner] if owner is not None else []
        ended = session.execute(
            update(Job).where(Job.id == job_id, Job.status == "running", *held)
            .values(status="succeeded", stage=DONE, progress=1.0, result=meta, counts=counts, finished_at=utcnow(),
                    owner=None)
        ).rowcount  # fmt: skip
        if ended != 1:
            raise JobGone(job_id)  # finished, or taken over by another task: roll back, store nothing
        queue_job_events(session, job_id)  # its webhook deliveries, sent once this commits (worker/tasks.py)
        session.execute(update(Project).where(Project.id == project_id).values(current_job_id=job_id, sae_path=sae_dir))
        publish_reporting(session, project_id)  # PostgreSQL: the report tables into `reporting`, in this transaction


def member_scores(node: Any) -> list[float | None]:
    """Each member comment's sentiment in the node (None where the analysis gave none: read as the comment's)."""
    scores = getattr(node, "member_sentiment", None)
    if scores is None or len(scores) != len(node.members):
        return [None] * len(node.members)
    return [round(float(s), 4) for s in scores]


def span_rows(job_id: str, themes: list, ids: Any, spans: Spans) -> list[dict[str, Any]]:
    """The ``span_themes`` rows of the job: each theme's (or sub-theme's) unit rows (span rows of ``spans``) with their
    activations;
    ``ids``: the database id of each document row."""
    rows = []
    for t in themes:
        units = np.asarray(t.unit_rows, dtype=np.int64)
        document_ids = ids[spans.doc[units]]
        for document_id, index, start, end, activation in zip(document_ids.tolist(), spans.index[units].tolist(),
                                                              spans.start[units].tolist(), spans.end[units].tolist(),
                                                              t.unit_activations.tolist()):  # fmt: skip
            rows.append({"job_id": job_id, "theme_id": t.id, "document_id": int(document_id), "span_index": index,
                         "span_start": start, "span_end": end, "activation": round(float(activation), 4)})  # fmt: skip
    return rows


def ingest_problem(exc: IngestError) -> dict[str, Any]:
    """The problem object of a job whose upload could not be read."""
    return problem(422, "The upload could not be read", str(exc), exc.code)


def unexpected_problem(stage: str | None, exc: BaseException) -> dict[str, Any]:
    """The problem object of a job that failed for another reason (no traceback, just the kind and message)."""
    detail = f"{type(exc).__name__} during {stage or 'the job'}: {str(exc)[:300]}"
    return problem(500, "The job failed", detail, "job-failed")


def job_stage(job_id: str) -> str | None:
    with session_scope() as session:
        return session.scalar(select(Job.stage).where(Job.id == job_id))

