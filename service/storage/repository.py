"""Queries and writes the API needs, always scoped to the caller's tenant (another tenant's rows are "not found")."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
from sqlalchemy import Integer, Select, case, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.api.errors import ProblemError
from service.storage.models import (
    ApiKey,
    Document,
    DocumentTheme,
    Job,
    Project,
    ReportToken,
    ThemeEdit,
    ThemeGroupRow,
    ThemeRow,
    ThemeTrendRow,
    utcnow,
)

THEME_SORTS = {"size": ThemeRow.size, "sentiment": ThemeRow.sentiment_mean}


def job_for_tenant(session: Session, tenant_id: str, job_id: str) -> Job:
    job = session.get(Job, job_id)
    if job is None or job.tenant_id != tenant_id:
        raise ProblemError(404, f"no job {job_id!r}", "job-not-found")
    return job


def project_for_tenant(session: Session, tenant_id: str, project_id: str) -> Project:
    project = session.get(Project, project_id)
    if project is None or project.tenant_id != tenant_id:
        raise ProblemError(404, f"no project {project_id!r}", "project-not-found")
    return project


@dataclass
class NewJob:
    """What the API stores for an accepted upload."""

    job_id: str
    tenant_id: str
    project_id: str | None
    source: str
    source_kind: str
    columns: dict[str, Any]
    idempotency_key: str | None
    payload_hash: str
    project_name: str | None = None


def existing_idempotent_job(session: Session, new: NewJob) -> Job | None:
    """The job already made with this Idempotency-Key: the same one for the same payload, else 422."""
    if not new.idempotency_key:
        return None
    job = session.scalar(select(Job).where(Job.tenant_id == new.tenant_id, Job.idempotency_key == new.idempotency_key))
    if job is not None and job.payload_hash != new.payload_hash:
        raise ProblemError(422, "this Idempotency-Key was used with a different payload", "idempotency-key-reused")
    return job


def create_job(session: Session, new: NewJob) -> tuple[Job, bool]:
    """Store a queued job (and a new project when none is named). Returns (job, created)."""
    existing = existing_idempotent_job(session, new)
    if existing is not None:
        return existing, False
    if new.project_id:
        project = project_for_tenant(session, new.tenant_id, new.project_id)
    else:
        project = Project(tenant_id=new.tenant_id, name=new.project_name)
        session.add(project)
        session.flush()
    job = Job(id=new.job_id, tenant_id=new.tenant_id, project_id=project.id, source=new.source,
              source_kind=new.source_kind, columns=new.columns, idempotency_key=new.idempotency_key,
              payload_hash=new.payload_hash)  # fmt: skip
    session.add(job)
    try:
        session.flush()
    except IntegrityError:  # the same key raced in from another request
        session.rollback()
        existing = existing_idempotent_job(session, new)
        if existing is None:
            raise
        return existing, False
    return job, True


def project_summary(session: Session, project: Project) -> dict[str, Any]:
    n_docs = session.scalar(select(func.count()).select_from(Document).where(Document.project_id == project.id))
    n_jobs = session.scalar(select(func.count()).select_from(Job).where(Job.project_id == project.id))
    n_themes = 0
    if project.current_job_id:
        n_themes = session.scalar(select(func.count()).select_from(ThemeRow).where(ThemeRow.job_id == project.current_job_id))
    return {"id": project.id, "name": project.name, "created_at": project.created_at,
            "current_job_id": project.current_job_id, "n_documents": n_docs or 0, "n_themes": n_themes or 0,
            "jobs": n_jobs or 0}  # fmt: skip


def list_projects(session: Session, tenant_id: str, offset: int, limit: int) -> tuple[list[Project], int]:
    base = select(Project).where(Project.tenant_id == tenant_id)
    total = session.scalar(select(func.count()).select_from(base.subquery())) or 0
    rows = session.scalars(base.order_by(Project.created_at, Project.id).offset(offset).limit(limit)).all()
    return list(rows), total


def themes_page(session: Session, job: Job, sort: str, order: str, offset: int, limit: int,
                include_hidden: bool = False) -> tuple[list[dict], int]:  # fmt: skip
    """A page of the job's themes in the themes.json schema, with the project's edits applied."""
    view = job_view(session, job)
    column = THEME_SORTS[sort]
    ordering = (column.desc() if order == "desc" else column.asc(), ThemeRow.theme_id.asc())
    shown = view.roots if include_hidden else view.visible
    base = select(ThemeRow).where(ThemeRow.job_id == job.id, ThemeRow.theme_id.in_(shown))
    total = session.scalar(select(func.count()).select_from(base.subquery())) or 0
    rows = session.scalars(base.order_by(*ordering).offset(offset).limit(limit)).all()
    return [view.record(row) for row in rows], total


def theme_row(session: Session, job_id: str, theme_id: int) -> ThemeRow:
    row = session.get(ThemeRow, (job_id, theme_id))
    if row is None:
        raise ProblemError(404, f"no theme {theme_id} in this project", "theme-not-found")
    return row


def theme_detail(session: Session, job: Job, theme_id: int) -> dict[str, Any]:
    """One theme as shown (edits applied); a theme merged into another is 404 naming where it went."""
    view = job_view(session, job)
    row = theme_row(session, job.id, theme_id)
    root = view.root_of.get(theme_id, theme_id)
    if root != theme_id:
        raise ProblemError(404, f"theme {theme_id} was merged into theme {root}", "theme-merged")
    return view.record(row)


def theme_members(session: Session, job_id: str, theme_id: int, offset: int, limit: int) -> tuple[list[dict], int]:
    """Member comments of a theme (of every theme merged into it), highest activation first."""
    job = session.get(Job, job_id)
    group = job_view(session, job).groups.get(theme_id, [theme_id])
    where = (DocumentTheme.job_id == job_id, DocumentTheme.theme_id.in_(group))
    total = session.scalar(select(func.count(func.distinct(DocumentTheme.document_id))).where(*where)) or 0
    activation = func.max(DocumentTheme.activation).label("activation")
    rows = session.execute(
        select(Document.doc_id, Document.text, activation, Document.sentiment_score,
               Document.sentiment_label, Document.rating)
        .join(Document, Document.id == DocumentTheme.document_id)
        .where(*where)
        .group_by(Document.id, Document.doc_id, Document.text, Document.sentiment_score, Document.sentiment_label,
                  Document.rating)
        .order_by(activation.desc(), Document.id)
        .offset(offset).limit(limit)
    ).all()  # fmt: skip
    return [dict(row._mapping) for row in rows], total


def groups_page(session: Session, job: Job, offset: int, limit: int) -> tuple[list[dict], int]:
    """A page of the job's theme groups (largest first) in the themes.json schema. Groups come from the analysis:
    a theme renamed, hidden or merged later keeps its place in them."""
    base = select(ThemeGroupRow.record).where(ThemeGroupRow.job_id == job.id)
    total = session.scalar(select(func.count()).select_from(ThemeGroupRow).where(ThemeGroupRow.job_id == job.id)) or 0
    order = (ThemeGroupRow.size.desc(), ThemeGroupRow.group_id.asc())
    return list(session.scalars(base.order_by(*order).offset(offset).limit(limit))), total


def job_metadata(job: Job, total_themes: int) -> dict[str, Any]:
    meta = dict(job.result or {})
    meta.setdefault("n_themes", total_themes)
    meta["job_id"] = job.id
    meta["project_id"] = job.project_id
    return meta


# ---------------------------------------------------------------- theme edits: rename, hide, merge


@dataclass
class JobView:
    """A job's themes as the project's edits show them: which theme each is shown as, which are hidden."""

    edits: dict[int, ThemeEdit]
    root_of: dict[int, int]  # theme id → the theme it is shown as (itself, or the one it was merged into)
    groups: dict[int, list[int]] = field(default_factory=dict)  # shown theme → its themes (itself first)
    roots: list[int] = field(default_factory=list)
    visible: list[int] = field(default_factory=list)

    def record(self, row: ThemeRow) -> dict[str, Any]:
        """The theme's record: the job's, overlaid with the derived figures and the project's edits."""
        derived = dict(row.derived or {})
        derived.pop("merged_into", None)
        record = {**row.record, "impact": None, "emerging": False, "emerging_reason": None, "merged": [], **derived}
        edit = self.edits.get(row.theme_id)
        record["hidden"] = bool(edit and edit.hidden)
        if edit and edit.label:
            record["original_label"], record["label"] = record["label"], edit.label
        return record


def project_edits(session: Session, project_id: str) -> dict[int, ThemeEdit]:
    return {e.theme_id: e for e in session.scalars(select(ThemeEdit).where(ThemeEdit.project_id == project_id))}


def resolve_roots(theme_ids: Iterable[int], edits: dict[int, ThemeEdit]) -> dict[int, int]:
    """Each present theme's shown theme, following merges (to themes present in this job) transitively."""
    present = set(theme_ids)

    def root(theme: int) -> int:
        seen = {theme}
        while (edit := edits.get(theme)) is not None and edit.merged_into in present and edit.merged_into not in seen:
            theme = edit.merged_into
            seen.add(theme)
        return theme

    return {t: root(t) for t in present}


def job_view(session: Session, job: Job) -> JobView:
    ids = session.scalars(select(ThemeRow.theme_id).where(ThemeRow.job_id == job.id)).all()
    edits = project_edits(session, job.project_id)
    root_of = resolve_roots(ids, edits)
    groups: dict[int, list[int]] = {}
    for theme in sorted(root_of, key=lambda t: (t != root_of[t], t)):
        groups.setdefault(root_of[theme], []).append(theme)
    roots = sorted(groups)
    visible = [r for r in roots if not (r in edits and edits[r].hidden)]
    return JobView(edits, root_of, groups, roots, visible)


def _edit(session: Session, project_id: str, theme_id: int) -> ThemeEdit:
    edit = session.get(ThemeEdit, (project_id, theme_id))
    if edit is None:
        edit = ThemeEdit(project_id=project_id, theme_id=theme_id, hidden=False)
        session.add(edit)
    return edit


def edit_theme(session: Session, job: Job, theme_id: int, changes: dict[str, Any]) -> dict[str, Any]:
    """Rename (``label``; empty → the generated label again) and/or hide/show (``hidden``) a theme."""
    theme_detail(session, job, theme_id)  # 404 when absent or merged away
    edit = _edit(session, job.project_id, theme_id)
    if "label" in changes:
        label = (changes["label"] or "").strip()
        edit.label = label or None
    if "hidden" in changes and changes["hidden"] is not None:
        edit.hidden = bool(changes["hidden"])
    session.flush()
    return theme_detail(session, job, theme_id)


def merge_themes(session: Session, job: Job, target: int, sources: list[int]) -> dict[str, Any]:
    """Show ``sources`` as part of ``target`` from now on (their ids stay theirs; other themes are untouched)."""
    view = job_view(session, job)
    for theme in (target, *sources):
        theme_row(session, job.id, theme)
    if view.root_of[target] != target:
        raise ProblemError(409, f"theme {target} is merged into theme {view.root_of[target]}; merge into that one",
                           "theme-merged")  # fmt: skip
    if target in sources:
        raise ProblemError(422, "a theme cannot be merged into itself", "merge-into-itself")
    for source in sources:
        _edit(session, job.project_id, source).merged_into = target
    session.flush()
    refresh_derived(session, job.id)
    return theme_detail(session, job, target)


def unmerge_theme(session: Session, job: Job, theme_id: int) -> dict[str, Any]:
    """Show a merged theme on its own again."""
    theme_row(session, job.id, theme_id)
    edit = session.get(ThemeEdit, (job.project_id, theme_id))
    if edit is None or edit.merged_into is None:
        raise ProblemError(409, f"theme {theme_id} is not merged into another theme", "theme-not-merged")
    edit.merged_into = None
    session.flush()
    refresh_derived(session, job.id)
    return theme_detail(session, job, theme_id)


def list_edits(session: Session, project_id: str) -> list[dict[str, Any]]:
    return [{"theme_id": e.theme_id, "label": e.label, "hidden": e.hidden, "merged_into": e.merged_into,
             "updated_at": e.updated_at} for e in sorted(project_edits(session, project_id).values(),
                                                         key=lambda e: e.theme_id)]  # fmt: skip


# ---------------------------------------------------------------- impact and trends of a job's (shown) themes


def job_documents(session: Session, job: Job) -> list[Any]:
    """The project's documents a job covers: all but those of other jobs still being ingested or analysed."""
    pending = select(Job.id).where(Job.project_id == job.project_id, Job.status.in_(("queued", "running")),
                                   Job.id != job.id)  # fmt: skip
    return session.execute(
        select(Document.id, Document.rating, Document.date, Document.sentiment_score, Document.sentiment_label)
        .where(Document.project_id == job.project_id, Document.job_id.not_in(pending)).order_by(Document.id)
    ).all()  # fmt: skip


def refresh_derived(session: Session, job_id: str, seed: int = 0) -> None:
    """Recompute what depends on the project's merges for a job: impact (one joint ridge regression of the rating on
    all shown themes' activations, bootstrap interval), trends per period and the ``emerging`` flag, and the size,
    sentiment, rating and examples of themes that others were merged into. Stored in ``themes.derived`` and
    ``theme_trends``."""
    import pandas as pd
    import scipy.sparse as sp

    from worker.pipeline.impact import ImpactOptions, theme_impact
    from worker.pipeline.trends import theme_trends

    job = session.get(Job, job_id)
    rows = {r.theme_id: r for r in session.scalars(select(ThemeRow).where(ThemeRow.job_id == job_id))}
    view = job_view(session, job)
    docs = job_documents(session, job)
    row_of = {d.id: i for i, d in enumerate(docs)}
    links = pd.DataFrame(
        session.execute(select(DocumentTheme.theme_id, DocumentTheme.document_id, DocumentTheme.activation)
                        .where(DocumentTheme.job_id == job_id)).all(),
        columns=["theme_id", "document_id", "activation"],
    )  # fmt: skip
    links["row"] = links["document_id"].map(row_of)
    links = links.dropna(subset=["row"])
    links["root"] = links["theme_id"].map(view.root_of)
    shown = links.groupby(["root", "row"], sort=True)["activation"].max().reset_index()
    roots = view.roots
    column = {r: i for i, r in enumerate(roots)}
    members = {r: np.empty(0, dtype=np.int64) for r in roots}
    activation_of: dict[int, dict[int, float]] = {}
    for root, part in shown.groupby("root"):
        members[int(root)] = part["row"].to_numpy(dtype=np.int64)
        activation_of[int(root)] = dict(zip(part["row"].astype(int), part["activation"]))
    matrix = sp.csr_matrix(
        (shown["activation"].to_numpy(float), (shown["row"].to_numpy(int), shown["root"].map(column).to_numpy(int))),
        shape=(len(docs), len(roots)),
    )  # fmt: skip
    ratings = np.array([np.nan if d.rating is None else d.rating for d in docs], dtype=float)
    impacts = theme_impact(matrix, ratings, ImpactOptions(seed=seed))
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
        derived = {"impact": impacts[column[root]], "emerging": bool(trend and trend.emerging),
                   "emerging_reason": trend.reason if trend else None, "merged": view.groups[root][1:]}  # fmt: skip
        if len(view.groups[root]) > 1:
            derived.update(_merged_figures(root, [rows[t].record for t in view.groups[root]], members[root],
                                           activation_of.get(root, {}), scores, labels, ratings, n_docs))  # fmt: skip
        row.derived = derived
        row.size = derived.get("size", row.record["size"])
        row.sentiment_mean = derived.get("sentiment", row.record["sentiment"])["mean"]
    session.execute(delete(ThemeTrendRow).where(ThemeTrendRow.job_id == job_id))
    if trends.period:
        from datetime import date

        starts = [date.fromisoformat(p) for p in trends.periods]
        trend_rows = [{"job_id": job_id, "theme_id": t.theme_id, "period_start": start, "period": trends.period,
                       "documents": count, "period_documents": total, "share": share}
                      for t in trends.themes.values()
                      for start, count, total, share in zip(starts, t.counts, trends.totals, t.shares)]  # fmt: skip
        for begin in range(0, len(trend_rows), 5000):
            session.execute(insert(ThemeTrendRow), trend_rows[begin : begin + 5000])
    session.flush()


def _merged_figures(root: int, records: list[dict], rows: np.ndarray, activation_of: dict[int, float],
                    scores: np.ndarray, labels: np.ndarray, ratings: np.ndarray, n_docs: int) -> dict[str, Any]:  # fmt: skip
    """Size, share, sentiment, rating, keywords, examples and features of a theme with others merged into it."""
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


# ---------------------------------------------------------------- overview figures


def theme_trends_view(session: Session, job: Job) -> dict[str, Any]:
    """Trends of the shown themes (hidden ones included, flagged) as parallel series."""
    view = job_view(session, job)
    rows = session.execute(select(ThemeTrendRow).where(ThemeTrendRow.job_id == job.id, ThemeTrendRow.theme_id.in_(
        view.roots)).order_by(ThemeTrendRow.theme_id, ThemeTrendRow.period_start)).scalars().all()  # fmt: skip
    periods = sorted({r.period_start for r in rows})
    totals = {r.period_start: r.period_documents for r in rows}
    series: dict[int, dict[str, Any]] = {}
    for r in rows:
        entry = series.setdefault(r.theme_id, {"theme_id": r.theme_id, "counts": [], "shares": []})
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


# ---------------------------------------------------------------- report tokens
#
# A token expires at ``expires_at``; one made before tokens had an expiry (NULL) expires ``legacy_days`` (the
# longest lifetime, ``report_token_max_days``) after it was made. A token made with an API key (``api_key_id``) dies
# with that key: revoking the key voids it.

TOKEN_PREFIX = "ftr_"


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value


def create_report_token(session: Session, project: Project, expires_at: datetime,
                        api_key_id: int | None = None) -> tuple[str, ReportToken]:  # fmt: skip
    """A new read-only token for the project's reports (returned once, stored hashed) and its row."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ReportToken(project_id=project.id, tenant_id=project.tenant_id, token_hash=_hash(token), prefix=token[:10],
                      created_at=utcnow(), expires_at=expires_at, api_key_id=api_key_id)  # fmt: skip
    session.add(row)
    return token, row


def report_token_expiry(row: ReportToken, legacy_days: int) -> datetime:
    """When the token expires (a token made without an expiry: ``legacy_days`` after it was made)."""
    return _aware(row.expires_at) if row.expires_at else _aware(row.created_at) + timedelta(days=legacy_days)


def _tokens_with_key_state(project_id: str | None = None, digest: str | None = None) -> Select:
    """Report tokens with the revocation time of the key that made them (None: unrevoked, or made without a key)."""
    query = select(ReportToken, ApiKey.revoked_at).outerjoin(ApiKey, ApiKey.id == ReportToken.api_key_id)
    if project_id is not None:
        query = query.where(ReportToken.project_id == project_id)
    if digest is not None:
        query = query.where(ReportToken.token_hash == digest, ReportToken.revoked_at.is_(None))
    return query.order_by(ReportToken.id)


def list_report_tokens(session: Session, project: Project, legacy_days: int) -> list[dict[str, Any]]:
    """The project's report tokens, oldest first: prefix, created, expiry, revocation, whether it still opens."""
    now = utcnow()
    rows = session.execute(_tokens_with_key_state(project_id=project.id))
    return [_token_record(row, key_revoked, legacy_days, now) for row, key_revoked in rows]


def _token_record(row: ReportToken, key_revoked: datetime | None, legacy_days: int, now: datetime) -> dict[str, Any]:
    return {"prefix": row.prefix, "created_at": _aware(row.created_at),
            "expires_at": report_token_expiry(row, legacy_days),
            "revoked_at": None if row.revoked_at is None else _aware(row.revoked_at),
            "active": _token_problem(row, key_revoked, legacy_days, now) is None}  # fmt: skip


def revoke_report_tokens(session: Session, project: Project, prefix: str | None = None) -> int:
    """Revoke the project's active tokens (or the one with this shown prefix). Returns how many were revoked now; with
    a prefix, how many tokens it names, revoked now or before (0: none)."""
    match = [ReportToken.project_id == project.id]
    if prefix is not None:
        match.append(ReportToken.prefix == prefix)
    active = [*match, ReportToken.revoked_at.is_(None)]
    revoked = session.execute(update(ReportToken).where(*active).values(revoked_at=utcnow())).rowcount or 0
    if prefix is None:
        return revoked
    return session.scalar(select(func.count()).select_from(ReportToken).where(*match)) or 0


def project_for_report_token(session: Session, token: str, project_id: str, legacy_days: int) -> Project:
    """The project a valid token opens; 401 for an unknown, revoked or expired token or one whose API key was
    revoked, 404 for another project."""
    digest = _hash(token)
    found = session.execute(_tokens_with_key_state(digest=digest)).first()
    if found is None or not hmac.compare_digest(found[0].token_hash, digest):
        raise ProblemError(401, "the report token is not valid", "invalid-report-token")
    problem = _token_problem(found[0], found[1], legacy_days, utcnow())
    if problem is not None:
        raise ProblemError(401, problem, "invalid-report-token")
    if found[0].project_id != project_id:
        raise ProblemError(404, f"no project {project_id!r}", "project-not-found")
    return session.get(Project, project_id)


def _token_problem(row: ReportToken, key_revoked: datetime | None, legacy_days: int, now: datetime) -> str | None:
    """Why the token opens nothing, or None when it is valid."""
    if row.revoked_at is not None:
        return "the report token was revoked"
    if key_revoked is not None:
        return "the report token is not valid: the API key that made it was revoked"
    expiry = report_token_expiry(row, legacy_days)
    if expiry <= now:
        return f"the report token expired on {expiry:%Y-%m-%d %H:%M} UTC; make a new one"
    return None
