"""A project's alerts: computed after each job from its stored tree and memberships (the rules are the pipeline's,
``worker/pipeline/alerts.py``), stored idempotently, and listed newest first.

An alert's node is named as the project shows it now (renames apply): the name is read from the alert's job's node
and the project's edits whenever alerts are listed, never stored.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from service.settings import Settings, get_settings
from service.storage.models import LEVEL_SUB_THEME, LEVEL_THEME, Alert, Document, DocumentTheme, Job, ThemeRow, utcnow
from service.storage.theme_view import job_view, project_edits

KINDS = ("new_theme", "spike", "sentiment_drop")
LEVELS = (LEVEL_THEME, LEVEL_SUB_THEME)  # the nodes alerts are about: themes and sub-themes
EXAMPLE_CHARS = 1000


def alert_options(settings: Settings) -> Any:
    """The rules' thresholds from the settings (``alert_*``)."""
    from worker.pipeline.alerts import AlertOptions

    return AlertOptions(min_count=settings.alert_min_count, fdr=settings.alert_fdr, min_lift=settings.alert_min_lift,
                        min_drop=settings.alert_min_drop, max_alerts=settings.alert_max_per_job)  # fmt: skip


def has_history(session: Session, job: Job) -> bool:
    """Whether the project had a finished job before this one."""
    earlier = select(func.count()).select_from(Job).where(
        Job.project_id == job.project_id, Job.id != job.id, Job.status == "succeeded", Job.created_at < job.created_at
    )  # fmt: skip
    return bool(session.scalar(earlier))


def previous_alerts(session: Session, job: Job, row_of: dict[int, int]) -> list[Any]:
    """The alerts of the project's last finished job before this one, each with its node's comments then (rows of
    ``row_of``, database id → row)."""
    from worker.pipeline.alerts import Earlier

    previous = session.scalar(select(Job.id).where(
        Job.project_id == job.project_id, Job.id != job.id, Job.status == "succeeded", Job.created_at < job.created_at
    ).order_by(Job.created_at.desc()).limit(1))  # fmt: skip
    alerts = session.execute(select(Alert.theme_id, Alert.kind).where(Alert.job_id == previous)).all()
    earlier = []
    for node, kind in alerts:
        if node is None:
            continue
        ids = session.scalars(select(DocumentTheme.document_id)
                              .where(DocumentTheme.job_id == previous, DocumentTheme.theme_id == node)).all()  # fmt: skip
        rows = np.array(sorted(row_of[i] for i in ids if i in row_of), dtype=np.int64)
        earlier.append(Earlier(int(node), kind, rows))
    return earlier


def job_comments(session: Session, job: Job) -> pd.DataFrame:
    """The comments the job analysed (the project's, but those of other jobs still queued or running, and of later
    jobs): database id, doc id, text, date, sentiment score, and whether it is of this job's upload."""
    later_or_pending = select(Job.id).where(
        Job.project_id == job.project_id, Job.id != job.id,
        (Job.created_at > job.created_at) | Job.status.in_(("queued", "running")),
    )  # fmt: skip
    rows = session.execute(
        select(Document.id, Document.doc_id, Document.text, Document.date, Document.sentiment_score, Document.job_id)
        .where(Document.project_id == job.project_id, Document.job_id.not_in(later_or_pending)).order_by(Document.id)
    ).all()  # fmt: skip
    frame = pd.DataFrame(rows, columns=["id", "doc_id", "text", "date", "sentiment_score", "job_id"])
    frame["in_upload"] = frame["job_id"] == job.id
    frame["sentiment_score"] = frame["sentiment_score"].astype(float).fillna(0.0)
    return frame


def shown_nodes(session: Session, job: Job, row_of: dict[int, int]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The job's visible themes and sub-themes as the project's edits show them (``node_id``, ``level``, ``parent``,
    ``name``, ``is_new``), and their memberships (``node_id``, ``row``, ``activation``, ``sentiment``; a merged node's
    are its nodes', each comment once with its highest activation)."""
    view = job_view(session, job)
    rows = {r.theme_id: r for r in session.scalars(select(ThemeRow).where(ThemeRow.job_id == job.id))}
    shown = [n for n in view.visible if view.level_of.get(n) in LEVELS]
    nodes = pd.DataFrame(
        [{"node_id": n, "level": view.level_of[n], "parent": view.shown_parent(n),
          "name": view.record(rows[n]).get("name") or rows[n].label,
          "is_new": all(rows[t].first_seen_job == job.id for t in view.groups[n])} for n in shown],
        columns=["node_id", "level", "parent", "name", "is_new"],
    )  # fmt: skip
    members = [t for n in shown for t in view.groups[n]]
    links = pd.DataFrame(
        session.execute(select(DocumentTheme.theme_id, DocumentTheme.document_id, DocumentTheme.activation,
                               DocumentTheme.sentiment)
                        .where(DocumentTheme.job_id == job.id, DocumentTheme.theme_id.in_(members))).all(),
        columns=["theme_id", "document_id", "activation", "sentiment"],
    )  # fmt: skip
    links["node_id"] = links["theme_id"].map(view.root_of)
    links["row"] = links["document_id"].map(row_of)
    links = links.dropna(subset=["row"]).astype({"row": np.int64, "sentiment": float})
    links = links.sort_values("activation", ascending=False).drop_duplicates(["node_id", "row"])
    return nodes, links[["node_id", "row", "activation", "sentiment"]].reset_index(drop=True)


def store_job_alerts(session: Session, job_id: str, settings: Settings | None = None) -> list[Alert]:
    """Compute the job's alerts and store them in place of any it had (``Alert.key`` = job, kind, window, node: the
    same alert keeps its key when recomputed). A project's first job has no alerts. Runs in the caller's
    transaction (the job's results)."""
    from worker.pipeline.alerts import alert_windows, find_alerts

    settings = settings or get_settings()
    job = session.get(Job, job_id)
    session.execute(delete(Alert).where(Alert.job_id == job_id))
    if job is None or not has_history(session, job):
        return []
    comments = job_comments(session, job)
    row_of = {int(i): r for r, i in enumerate(comments["id"])}
    nodes, links = shown_nodes(session, job, row_of)
    if nodes.empty:
        return []
    windows = alert_windows(comments["in_upload"].to_numpy(), comments["date"])
    findings = find_alerts(nodes, links, comments["sentiment_score"].to_numpy(), windows, alert_options(settings),
                           previous_alerts(session, job, row_of))  # fmt: skip
    created = utcnow()
    rows = [{"project_id": job.project_id, "job_id": job_id, "key": f"{job_id}:{f.kind}:{f.window}:{f.node_id}",
             "kind": f.kind, "window": f.window, "theme_id": f.node_id, "level": f.level, "title": f.title,
             "figures": f.figures, "created_at": created,
             "examples": [{"doc_id": str(comments["doc_id"].iat[r]), "text": str(comments["text"].iat[r])[:EXAMPLE_CHARS]}
                          for r in f.examples]} for f in findings]  # fmt: skip
    if rows:
        session.execute(insert(Alert), rows)
    session.flush()
    return list(session.scalars(select(Alert).where(Alert.job_id == job_id).order_by(Alert.id)))


# ---------------------------------------------------------------- listing


def list_alerts(session: Session, project_id: str, kind: str | None, since: datetime | None, offset: int,
                limit: int) -> tuple[list[dict[str, Any]], int]:  # fmt: skip
    """The project's alerts (of ``kind``, made at or after ``since``), newest first, as :func:`alert_view` shows
    them, and how many there are."""
    where = [Alert.project_id == project_id]
    if kind:
        where.append(Alert.kind == kind)
    if since is not None:
        where.append(Alert.created_at >= since)
    total = session.scalar(select(func.count()).select_from(Alert).where(*where)) or 0
    query = select(Alert).where(*where).order_by(Alert.created_at.desc(), Alert.id).offset(offset).limit(limit)
    return views(session, list(session.scalars(query))), total


def list_job_alerts(session: Session, job_id: str) -> list[dict[str, Any]]:
    """A job's alerts as :func:`alert_view` shows them, strongest first (in the order they were stored)."""
    return views(session, list(session.scalars(select(Alert).where(Alert.job_id == job_id).order_by(Alert.id))))


def views(session: Session, alerts: list[Alert]) -> list[dict[str, Any]]:
    names = alert_names(session, alerts)
    return [alert_view(a, names.get((a.job_id, a.theme_id))) for a in alerts]


def alert_names(session: Session, alerts: list[Alert]) -> dict[tuple[str, int], str]:
    """The shown name of each alert's node: its job's node name, or the project's rename of it."""
    wanted = {(a.job_id, a.theme_id) for a in alerts if a.theme_id is not None}
    if not wanted:
        return {}
    rows = session.execute(select(ThemeRow.job_id, ThemeRow.theme_id, ThemeRow.label, ThemeRow.record, ThemeRow.project_id)
                           .where(ThemeRow.job_id.in_({j for j, _ in wanted}),
                                  ThemeRow.theme_id.in_({t for _, t in wanted}))).all()  # fmt: skip
    edits = {p: project_edits(session, p) for p in {r.project_id for r in rows}}
    names = {}
    for job_id, theme_id, label, record, project_id in rows:
        edit = edits[project_id].get(theme_id)
        names[(job_id, theme_id)] = edit.label if edit is not None and edit.label else (record or {}).get("name", label)
    return names


def alert_view(alert: Alert, name: str | None) -> dict[str, Any]:
    """An alert as the API shows it."""
    theme = {"id": alert.theme_id, "level": alert.level, "name": name} if alert.theme_id is not None else None
    return {"id": alert.id, "kind": alert.kind, "window": alert.window, "theme": theme, "title": alert.title,
            "figures": dict(alert.figures or {}), "examples": list(alert.examples or []), "created_at": alert.created_at,
            "project_id": alert.project_id, "job_id": alert.job_id}  # fmt: skip


def alert_report_rows(session: Session, project_id: str) -> Iterator[tuple]:
    """The ``alerts`` report table: every alert of the project, newest first, in ``ALERTS_COLUMNS``' order (the
    node's name as shown now)."""
    from worker.pipeline.output import ALERTS_COLUMNS

    query = select(Alert).where(Alert.project_id == project_id).order_by(Alert.created_at.desc(), Alert.id)
    alerts = list(session.scalars(query))
    names = alert_names(session, alerts)
    for a in alerts:
        figures = a.figures or {}
        cells = {"alert_id": a.id, "created_at": a.created_at, "job_id": a.job_id, "kind": a.kind, "window": a.window,
                 "node_id": a.theme_id, "level": a.level, "name": names.get((a.job_id, a.theme_id)), "title": a.title,
                 **{k: figures.get(k) for k in ("count", "share", "baseline_share", "sentiment_mean",
                                                "baseline_sentiment", "p_value")}}  # fmt: skip
        yield tuple(cells[c] for c in ALERTS_COLUMNS)
