"""Rows as their tenant sees them: another tenant's job or project is "not found"."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.storage.attributes import column_summary, project_columns
from service.storage.errors import Conflict, NotFound
from service.storage.models import LEVEL_THEME, Document, Job, Project, ThemeRow


def job_for_tenant(session: Session, tenant_id: str, job_id: str) -> Job:
    job = session.get(Job, job_id)
    if job is None or job.tenant_id != tenant_id:
        raise NotFound(f"no job {job_id!r}", "job-not-found")
    return job


def project_for_tenant(session: Session, tenant_id: str, project_id: str) -> Project:
    project = session.get(Project, project_id)
    if project is None or project.tenant_id != tenant_id:
        raise NotFound(f"no project {project_id!r}", "project-not-found")
    return project


def current_job(session: Session, tenant_id: str, project_id: str) -> Job:
    """The job whose themes the project shows now; Conflict while none has finished."""
    project = project_for_tenant(session, tenant_id, project_id)
    if not project.current_job_id:
        raise Conflict("the project has no finished job yet", "no-themes-yet")
    return session.get(Job, project.current_job_id)


def project_summary(session: Session, project: Project) -> dict[str, Any]:
    n_docs = session.scalar(select(func.count()).select_from(Document).where(Document.project_id == project.id))
    n_jobs = session.scalar(select(func.count()).select_from(Job).where(Job.project_id == project.id))
    n_themes = 0
    if project.current_job_id:
        themes = (ThemeRow.job_id == project.current_job_id, ThemeRow.level == LEVEL_THEME)
        n_themes = session.scalar(select(func.count()).select_from(ThemeRow).where(*themes))
    return {"id": project.id, "name": project.name, "created_at": project.created_at,
            "current_job_id": project.current_job_id, "n_documents": n_docs or 0, "n_themes": n_themes or 0,
            "jobs": n_jobs or 0,
            "columns": [column_summary(c) for c in project_columns(session, project.id)]}  # fmt: skip


def list_projects(session: Session, tenant_id: str, offset: int, limit: int) -> tuple[list[Project], int]:
    base = select(Project).where(Project.tenant_id == tenant_id)
    total = session.scalar(select(func.count()).select_from(base.subquery())) or 0
    rows = session.scalars(base.order_by(Project.created_at, Project.id).offset(offset).limit(limit)).all()
    return list(rows), total
