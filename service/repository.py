"""Queries and writes the API needs, always scoped to the caller's tenant (another tenant's rows are "not found")."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.api.errors import ProblemError
from service.db.models import Document, DocumentTheme, Job, Project, ThemeRow

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


def themes_page(session: Session, job: Job, sort: str, order: str, offset: int, limit: int) -> tuple[list[dict], int]:
    """A page of the job's themes in the themes.json schema."""
    column = THEME_SORTS[sort]
    ordering = (column.desc() if order == "desc" else column.asc(), ThemeRow.theme_id.asc())
    base = select(ThemeRow).where(ThemeRow.job_id == job.id)
    total = session.scalar(select(func.count()).select_from(base.subquery())) or 0
    rows = session.scalars(base.order_by(*ordering).offset(offset).limit(limit)).all()
    return [row.record for row in rows], total


def theme_row(session: Session, job_id: str, theme_id: int) -> ThemeRow:
    row = session.get(ThemeRow, (job_id, theme_id))
    if row is None:
        raise ProblemError(404, f"no theme {theme_id} in this project", "theme-not-found")
    return row


def theme_members(session: Session, job_id: str, theme_id: int, offset: int, limit: int) -> tuple[list[dict], int]:
    """Member comments of a theme, highest activation first."""
    where = (DocumentTheme.job_id == job_id, DocumentTheme.theme_id == theme_id)
    total = session.scalar(select(func.count()).select_from(DocumentTheme).where(*where)) or 0
    rows = session.execute(
        select(Document.doc_id, Document.text, DocumentTheme.activation, Document.sentiment_score,
               Document.sentiment_label, Document.rating)
        .join(Document, Document.id == DocumentTheme.document_id)
        .where(*where)
        .order_by(DocumentTheme.activation.desc(), Document.id)
        .offset(offset).limit(limit)
    ).all()  # fmt: skip
    return [dict(row._mapping) for row in rows], total


def job_metadata(job: Job, total_themes: int) -> dict[str, Any]:
    meta = dict(job.result or {})
    meta.setdefault("n_themes", total_themes)
    meta["job_id"] = job.id
    meta["project_id"] = job.project_id
    return meta
