"""Overview figures: each shown node's trend series, and a project's comments by sentiment and rating."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Integer, case, func, select
from sqlalchemy.orm import Session

from service.storage.errors import Conflict
from service.storage.job_arrays import job_arrays
from service.storage.models import LEVEL_THEME, Document, Job, Project, ThemeTrendRow
from service.storage.segment_view import NEUTRAL_BAND, segment_mask, shown_nodes
from service.storage.segments import Segment
from service.storage.theme_view import JobView, job_view


def theme_trends_view(session: Session, job: Job, levels: tuple[int, ...] = (LEVEL_THEME,),
                      segment: Segment | None = None) -> dict[str, Any]:  # fmt: skip
    """Trends of the shown nodes of ``levels`` (themes by default; hidden ones included) as parallel series; with a
    segment, counted over its comments (periods and totals too)."""
    view = job_view(session, job)
    shown = [n for n in view.roots if view.level_of.get(n, LEVEL_THEME) in levels]
    if segment:
        return {**segment_trends(session, job, view, shown, segment), "segment": segment.describe()}
    rows = session.execute(select(ThemeTrendRow).where(ThemeTrendRow.job_id == job.id, ThemeTrendRow.theme_id.in_(
        shown)).order_by(ThemeTrendRow.theme_id, ThemeTrendRow.period_start)).scalars().all()  # fmt: skip
    periods = sorted({r.period_start for r in rows})
    totals = {r.period_start: r.period_documents for r in rows}
    series: dict[int, dict[str, Any]] = {}
    for r in rows:
        entry = series.setdefault(r.theme_id, {"theme_id": r.theme_id, "level": view.level_of.get(r.theme_id),
                                               "counts": [], "shares": []})  # fmt: skip
        entry["counts"].append(r.documents)
        entry["shares"].append(r.share)
    return {"period": rows[0].period if rows else None, "periods": [p.isoformat() for p in periods],
            "totals": [totals[p] for p in periods], "themes": list(series.values())}  # fmt: skip


def segment_trends(session: Session, job: Job, view: JobView, shown: list[int], segment: Segment) -> dict[str, Any]:
    """Trends of ``shown`` nodes over the segment's comments (:func:`worker.pipeline.trends.theme_trends`)."""
    from worker.pipeline.trends import theme_trends

    arrays = job_arrays(session, job)
    mask = segment_mask(session, job, arrays, segment)
    position = np.cumsum(mask) - 1  # a comment's position among the segment's
    chosen = mask[arrays.row]
    links = pd.DataFrame({"node": shown_nodes(view, arrays.node[chosen]), "row": position[arrays.row[chosen]]})
    rows_of = links.drop_duplicates().groupby("node")["row"]
    members = {n: np.sort(rows_of.get_group(n).to_numpy()) if n in rows_of.groups else np.empty(0, dtype=np.int64)
               for n in shown}  # fmt: skip
    dates = pd.Series(arrays.date[mask]).dt.tz_localize("UTC")
    trends = theme_trends(list(dates), members)
    return {"period": trends.period, "periods": trends.periods, "totals": trends.totals,
            "themes": [{"theme_id": n, "level": view.level_of.get(n), "counts": t.counts, "shares": t.shares}
                       for n, t in trends.themes.items() if trends.period]}  # fmt: skip


def segment_stats(session: Session, job: Job, segment: Segment) -> dict[str, Any]:
    """The segment's comments by sentiment label, their sentiment histogram and ratings (from the job's arrays)."""
    arrays = job_arrays(session, job)
    mask = segment_mask(session, job, arrays, segment)
    score = arrays.score[mask]
    scored = score[~np.isnan(score)]
    labels = {"negative": int((scored <= -NEUTRAL_BAND).sum()), "positive": int((scored >= NEUTRAL_BAND).sum())}
    labels["neutral"] = len(scored) - labels["negative"] - labels["positive"]
    buckets = np.clip(np.floor((scored + 1) * 5), 0, 9).astype(int)
    ratings = pd.Series(arrays.rating[mask]).dropna().value_counts().sort_index()
    return {
        "segment": {**segment.describe(), "n_documents": int(mask.sum())},
        "documents": int(mask.sum()),
        "sentiment": labels,
        "sentiment_histogram": {"edges": [round(-1 + 0.2 * i, 1) for i in range(11)],
                                "counts": np.bincount(buckets, minlength=10).tolist()},
        "ratings": [{"rating": float(r), "count": int(c)} for r, c in ratings.items()],
        "period": date_period(arrays.date[mask]),
    }  # fmt: skip


def date_period(dates: np.ndarray) -> dict[str, Any] | None:
    """The first and last of the dates (datetime64, naive UTC) and how many there are (NaT left out); None without
    any."""
    dated = dates[~np.isnat(dates)]
    if not len(dated):
        return None
    return {"first": _aware(dated.min()), "last": _aware(dated.max()), "dated": len(dated)}


def _aware(value: np.datetime64) -> datetime:
    return pd.Timestamp(value).tz_localize(UTC).to_pydatetime()


def project_period(session: Session, project: Project) -> dict[str, Any] | None:
    """The first and last date of the project's comments and how many have one; None when none has."""
    span = select(func.min(Document.date), func.max(Document.date), func.count(Document.date))
    first, last, dated = session.execute(span.where(Document.project_id == project.id)).one()
    return {"first": first, "last": last, "dated": dated} if dated else None


def project_stats(session: Session, project: Project, segment: Segment | None = None) -> dict[str, Any]:
    """The project's comments (with a segment: the current job's comments in it) by sentiment label, a histogram of
    sentiment scores, ratings, and the period their dates span (``period``: first, last and how many are dated;
    None when none is)."""
    if segment:
        if not project.current_job_id:
            raise Conflict("the project has no finished job yet: a segment needs its metadata", "no-themes-yet")
        return segment_stats(session, session.get(Job, project.current_job_id), segment)
    where = Document.project_id == project.id
    labels = dict(session.execute(select(Document.sentiment_label, func.count()).where(where)
                                  .group_by(Document.sentiment_label)).all())  # fmt: skip
    bucket = case((Document.sentiment_score >= 1, 9), else_=func.cast((Document.sentiment_score + 1) * 5, Integer))
    histogram = dict(session.execute(select(bucket, func.count()).where(where, Document.sentiment_score.is_not(None))
                                     .group_by(bucket)).all())  # fmt: skip
    ratings = session.execute(select(Document.rating, func.count()).where(where, Document.rating.is_not(None))
                              .group_by(Document.rating).order_by(Document.rating)).all()  # fmt: skip
    return {
        "documents": sum(labels.values()),
        "sentiment": {name: labels.get(name, 0) for name in ("negative", "neutral", "positive")},
        "sentiment_histogram": {"edges": [round(-1 + 0.2 * i, 1) for i in range(11)],
                                "counts": [histogram.get(i, 0) for i in range(10)]},
        "ratings": [{"rating": r, "count": c} for r, c in ratings],
        "period": project_period(session, project),
    }  # fmt: skip
