"""Figures that depend on the project's merges, recomputed for a job after the analysis and after every merge, for
every node of the job's tree: impact, trends and the ``emerging`` flag, and the figures of nodes that others were
merged into."""

from __future__ import annotations

from datetime import date
from typing import Any

import numpy as np
from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from service.storage.job_arrays import other_pending_jobs
from service.storage.models import Document, DocumentTheme, Job, SpanTheme, ThemeRow, ThemeTrendRow
from service.storage.theme_view import JobView, job_view
from service.storage.themes import span_nodes


def job_documents(session: Session, job: Job) -> list[Any]:
    """The project's documents a job covers: all but those of other jobs still being ingested or analysed."""
    pending = other_pending_jobs(job)
    return session.execute(
        select(Document.id, Document.rating, Document.date, Document.sentiment_score, Document.sentiment_label)
        .where(Document.project_id == job.project_id, Document.job_id.not_in(pending)).order_by(Document.id)
    ).all()  # fmt: skip


def refresh_derived(session: Session, job_id: str, seed: int = 0) -> None:
    """Recompute what depends on the project's merges for a job, for every node of its tree: impact (per level, one
    joint ridge regression of the rating on the activations of all that level's shown nodes, bootstrap interval:
    never a category and its themes in one regression), trends per period and the ``emerging`` flag, and the size,
    sentiment, rating, examples and span count of nodes that others were merged into. Stored in ``themes.derived``
    and ``theme_trends``."""
    from worker.pipeline.trends import theme_trends

    job = session.get(Job, job_id)
    rows = {r.theme_id: r for r in session.scalars(select(ThemeRow).where(ThemeRow.job_id == job_id))}
    view = job_view(session, job)
    docs = job_documents(session, job)
    shown = _shown_links(session, job_id, view, {d.id: i for i, d in enumerate(docs)})
    members = {r: np.empty(0, dtype=np.int64) for r in view.roots}
    activation_of: dict[int, dict[int, float]] = {}
    for root, part in shown.groupby("root"):
        members[int(root)] = part["row"].to_numpy(dtype=np.int64)
        activation_of[int(root)] = dict(zip(part["row"].astype(int), part["activation"]))
    ratings = np.array([np.nan if d.rating is None else d.rating for d in docs], dtype=float)
    impacts = _impacts(view, shown, ratings, len(docs), seed)
    has_history = any(r.first_seen_job != job_id for r in rows.values())
    new_ids = {root for root, group in view.groups.items()
               if has_history and all(rows[t].first_seen_job == job_id for t in group)}  # fmt: skip
    trends = theme_trends([d.date for d in docs], members, new_ids)
    scores = np.array([0.0 if d.sentiment_score is None else d.sentiment_score for d in docs])
    labels = np.array([d.sentiment_label for d in docs], dtype=object)
    n_docs = max(1, len(docs))
    for theme_id, row in rows.items():
        root = view.root_of[theme_id]
        if root != theme_id:
            derived: dict[str, Any] = {"merged_into": root}
            row.derived, row.size = derived, row.record["size"]
            row.sentiment_mean = row.record["sentiment"]["mean"]
            continue
        trend = trends.themes.get(root)
        group = view.groups[root]
        derived = {"impact": impacts.get(root), "emerging": bool(trend and trend.emerging),
                   "emerging_reason": trend.reason if trend else None, "merged": group[1:]}  # fmt: skip
        if len(group) > 1:
            derived.update(_merged_figures(root, [rows[t].record for t in group], members[root],
                                           activation_of.get(root, {}), scores, labels, ratings, n_docs))  # fmt: skip
            if spans := _distinct_spans(session, job_id, span_nodes(view, group)):
                derived["span_count"] = spans
        row.derived = derived
        row.size = derived.get("size", row.record["size"])
        row.sentiment_mean = derived.get("sentiment", row.record["sentiment"])["mean"]
    _store_trends(session, job_id, trends)
    session.flush()


def _shown_links(session: Session, job_id: str, view: JobView, row_of: dict[int, int]) -> Any:
    """The job's memberships as shown: (root, document row, highest activation), sorted by root and row."""
    import pandas as pd

    links = pd.DataFrame(
        session.execute(select(DocumentTheme.theme_id, DocumentTheme.document_id, DocumentTheme.activation)
                        .where(DocumentTheme.job_id == job_id)).all(),
        columns=["theme_id", "document_id", "activation"],
    )  # fmt: skip
    links["row"] = links["document_id"].map(row_of)
    links = links.dropna(subset=["row"])
    links["root"] = links["theme_id"].map(view.root_of)
    return links.groupby(["root", "row"], sort=True)["activation"].max().reset_index()


def _impacts(view: JobView, shown: Any, ratings: np.ndarray, n_docs: int, seed: int) -> dict[int, Any]:
    """Each shown node's impact: one regression per level over all of that level's shown nodes (hidden included)."""
    import scipy.sparse as sp

    from worker.pipeline.impact import ImpactOptions, theme_impact

    out: dict[int, Any] = {}
    for level in sorted(set(view.level_of.values())):
        roots = view.at_level(level, view.roots)
        column = {r: i for i, r in enumerate(roots)}
        part = shown[shown["root"].isin(column)]
        matrix = sp.csr_matrix(
            (part["activation"].to_numpy(float), (part["row"].to_numpy(int), part["root"].map(column).to_numpy(int))),
            shape=(n_docs, len(roots)),
        )  # fmt: skip
        out.update(zip(roots, theme_impact(matrix, ratings, ImpactOptions(seed=seed))))
    return out


def _store_trends(session: Session, job_id: str, trends: Any) -> None:
    """Replace the job's ``theme_trends`` rows: every shown node's counts and shares per period."""
    session.execute(delete(ThemeTrendRow).where(ThemeTrendRow.job_id == job_id))
    if not trends.period:
        return
    starts = [date.fromisoformat(p) for p in trends.periods]
    trend_rows = [{"job_id": job_id, "theme_id": t.theme_id, "period_start": start, "period": trends.period,
                   "documents": count, "period_documents": total, "share": share}
                  for t in trends.themes.values()
                  for start, count, total, share in zip(starts, t.counts, trends.totals, t.shares)]  # fmt: skip
    for begin in range(0, len(trend_rows), 5000):
        session.execute(insert(ThemeTrendRow), trend_rows[begin : begin + 5000])


def _distinct_spans(session: Session, job_id: str, themes: list[int]) -> int:
    """How many distinct spans carry any of ``themes`` in the job (0 for a job stored without span rows or for no
    themes)."""
    if not themes:
        return 0
    spans = (select(SpanTheme.document_id, SpanTheme.span_index)
             .where(SpanTheme.job_id == job_id, SpanTheme.theme_id.in_(themes)).distinct().subquery())  # fmt: skip
    return session.scalar(select(func.count()).select_from(spans)) or 0


def _merged_figures(root: int, records: list[dict], rows: np.ndarray, activation_of: dict[int, float],
                    scores: np.ndarray, labels: np.ndarray, ratings: np.ndarray, n_docs: int) -> dict[str, Any]:  # fmt: skip
    """Size, share, sentiment, rating, keywords, examples and features of a node with others merged into it."""
    from worker.pipeline.sentiment import aggregate

    rated = ratings[rows]
    rated = rated[~np.isnan(rated)]
    keywords: list[str] = []
    for record in records:
        keywords += [k for k in record["keywords"] if k not in keywords]
    examples: dict[str, dict] = {}
    for record in records:
        for example in record["examples"]:
            examples.setdefault(example["doc_id"], example)
    return {
        "size": int(len(rows)),
        "share": round(len(rows) / n_docs, 4),
        "sentiment": {k: round(v, 4) for k, v in aggregate(scores[rows], labels[rows]).items()},
        "rating": {"mean": round(float(rated.mean()), 4), "count": int(rated.size)} if rated.size else None,
        "keywords": keywords[: max(len(records[0]["keywords"]), 10)],
        "examples": sorted(examples.values(), key=lambda e: -e["activation"])[:5],
        "features": sorted({f for record in records for f in record["features"]}),
    }
