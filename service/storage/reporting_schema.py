"""The PostgreSQL ``reporting`` schema: every finished job (and every theme edit) publishes its project's report
tables into it, and per-tenant read-only roles read them through row-level security. See docs/bi.md."""

from __future__ import annotations

import logging
import re
import secrets
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from service.storage.models import Project, Tenant, utcnow
from service.storage.report_tables import BATCH, SCHEMA_VERSION, columns, report_rows
from worker.pipeline.output import REPORT_COLUMNS

log = logging.getLogger(__name__)
# the tables an edit of a node changes
EDITED_TABLES = ("themes", "document_themes", "span_themes", "theme_trends", "theme_impact", "theme_tree",
                 "document_nodes")  # fmt: skip


def publish_reporting(session: Session, project_id: str, tables: tuple[str, ...] | None = None) -> bool:
    """Replace the project's rows in the ``reporting`` tables (PostgreSQL only; a no-op elsewhere), in a savepoint of
    the caller's transaction: a failure is logged and rolled back without failing the caller. Returns True when
    published."""
    if session.get_bind().dialect.name != "postgresql":
        return False
    try:
        with session.begin_nested():
            _publish(session, project_id, tables or ("projects", *REPORT_COLUMNS))
        return True
    except Exception:  # noqa: BLE001 - reporting must not fail a job or an edit
        log.exception("publishing project %s to the reporting schema failed", project_id)
        return False


def _publish(session: Session, project_id: str, tables: tuple[str, ...]) -> None:
    session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:p))"), {"p": "reporting:" + project_id})
    project = session.execute(select(Project).where(Project.id == project_id).execution_options(populate_existing=True)
                              ).scalar_one()  # fmt: skip
    keys = {"tenant_id": project.tenant_id, "project_id": project.id}
    for name in tables:
        session.execute(text(f"DELETE FROM reporting.{name} WHERE project_id = :project_id"), {"project_id": project.id})
        if name == "projects":
            session.execute(text("INSERT INTO reporting.projects VALUES (:tenant_id, :project_id, :name, :job, :at, :v)"),
                            {**keys, "name": project.name, "job": project.current_job_id, "at": utcnow(),
                             "v": SCHEMA_VERSION})  # fmt: skip
            continue
        names = columns(name)
        quoted = ", ".join(f'"{c}"' for c in names)  # span_themes has "end", a reserved word
        insert = text(f"INSERT INTO reporting.{name} (tenant_id, project_id, {quoted}) "
                      f"VALUES (:tenant_id, :project_id, {', '.join(':' + c for c in names)})")  # fmt: skip
        batch: list[dict[str, Any]] = []
        for row in list(report_rows(session, project, name)):
            batch.append({**keys, **dict(zip(names, row))})
            if len(batch) >= BATCH:
                session.execute(insert, batch)
                batch = []
        if batch:
            session.execute(insert, batch)


def publish_all(session: Session) -> int:
    """Publish every project (a backfill, e.g. after turning PostgreSQL reporting on); returns how many."""
    ids = session.scalars(select(Project.id).order_by(Project.id)).all()
    for project_id in ids:
        if session.get_bind().dialect.name == "postgresql":
            _publish(session, project_id, ("projects", *REPORT_COLUMNS))
    return len(ids)


ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def grant_tenant_role(session: Session, role: str, tenant_name: str, login: bool = True,
                      password: str | None = None) -> str | None:  # fmt: skip
    """Create (or update) a read-only role that sees only ``tenant_name``'s rows of the reporting tables.

    With ``login`` the role can connect, with ``password`` or a generated one (returned); else it is NOLOGIN, for
    granting to existing users (``GRANT role TO user``). Re-running moves the role to the given tenant.
    """
    if session.get_bind().dialect.name != "postgresql":
        raise ValueError("the reporting schema needs PostgreSQL (set FEEDBACK_THEMES_DATABASE_URL)")
    if not ROLE_NAME.match(role):
        raise ValueError("--role must be a lower-case SQL name: letters, digits and _, not starting with a digit")
    tenant = session.scalar(select(Tenant).where(Tenant.name == tenant_name))
    if tenant is None:
        raise ValueError(f"no tenant named {tenant_name!r}")
    exists = session.scalar(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role})
    secret = (password or secrets.token_urlsafe(18)) if login else None
    options = "LOGIN PASSWORD " + _literal(session, secret) if login else "NOLOGIN"
    options += " NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOBYPASSRLS"
    session.execute(text(f'{"ALTER" if exists else "CREATE"} ROLE "{role}" {options}'))
    database = session.scalar(text("SELECT current_database()"))
    session.execute(text(f'GRANT CONNECT ON DATABASE "{database}" TO "{role}"'))
    session.execute(text(f'GRANT USAGE ON SCHEMA reporting TO "{role}"'))
    for name in ("role_tenants", "projects", *REPORT_COLUMNS):
        session.execute(text(f'GRANT SELECT ON reporting.{name} TO "{role}"'))
    session.execute(text("DELETE FROM reporting.role_tenants WHERE role_name = :r"), {"r": role})
    session.execute(text("INSERT INTO reporting.role_tenants VALUES (:r, :t)"), {"r": role, "t": tenant.id})
    return secret


def _literal(session: Session, value: str) -> str:
    return session.scalar(text("SELECT quote_literal(:v)"), {"v": value})
