"""Overview figures: each shown node's trend series, and a project's comments by sentiment and rating."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Integer, case, func, select
from sqlalchemy.orm import Session

from service.storage.models import LEVEL_THEME, Document, Job, Project, ThemeTrendRow
from service.storage.theme_view import job_view


def theme_trends_view(session: Session, job: Job, levels: tuple[int, ...] = (LEVEL_THEME,)) -> dict[str, Any]:
    """Trends of the shown nodes of ``levels`` (themes by default; hidden ones included) as parallel series."""
    view = job_view(session, job)
    shown = [n for n in view.roots if view.level_of.get(n, LEVEL_THEME) in levels]
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


def project_stats(session: Session, project: Project) -> dict[str, Any]:
    """The project's comments by sentiment label, a histogram of sentiment scores, and ratings."""
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
    }  # fmt: skip
