"""Report tables for BI tools: their versioned columns, their rows (the project's edits applied), and with PostgreSQL
the ``reporting`` schema that every finished job (and every theme edit) publishes them into, read by per-tenant
read-only roles through row-level security. See docs/bi.md.

Schema version 1. Columns are only ever appended within a version; a removal or change of meaning is a new version.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Iterator
from datetime import date, datetime, timezone
from typing import Any

import typer
from sqlalchemy import case, func, select, text
from sqlalchemy.orm import Session

from service.storage.models import (
    Document,
    DocumentTheme,
    Job,
    Project,
    Tenant,
    ThemeGroupRow,
    ThemeRow,
    ThemeTrendRow,
    utcnow,
)
from service.storage.repository import job_view

log = logging.getLogger(__name__)
SCHEMA_VERSION = 1
BATCH = 2000

# name → [(column, type)]; type is one of int, float, str, bool, date, datetime (CSV, Parquet and SQL follow it)
# (the first columns of themes, document_themes and documents are those of the CLI's CSV files, worker/pipeline/output.py;
# columns added later, such as cohesion by migration 0004 and kind by 0005, go last: ALTER TABLE appends them)
REPORTS: dict[str, list[tuple[str, str]]] = {
    "themes": [("theme_id", "int"), ("label", "str"), ("keywords", "str"), ("size", "int"), ("share", "float"),
               ("sentiment_mean", "float"), ("negative", "float"), ("neutral", "float"), ("positive", "float"),
               ("rating_mean", "float"), ("rating_count", "int"), ("emerging", "bool"), ("impact_coef", "float"),
               ("impact_low", "float"), ("impact_high", "float"), ("merged_theme_ids", "str"),
               ("original_label", "str"), ("cohesion", "float")],
    "document_themes": [("doc_id", "str"), ("theme_id", "int"), ("activation", "float")],
    "documents": [("doc_id", "str"), ("text", "str"), ("sentiment_score", "float"), ("sentiment_label", "str"),
                  ("rating", "float"), ("date", "datetime")],
    "theme_trends": [("theme_id", "int"), ("label", "str"), ("period", "str"), ("period_start", "date"),
                     ("documents", "int"), ("period_documents", "int"), ("share", "float"), ("emerging", "bool")],
    "theme_impact": [("theme_id", "int"), ("label", "str"), ("coef", "float"), ("low", "float"), ("high", "float"),
                     ("rated_documents", "int")],
    "theme_groups": [("group_id", "int"), ("level", "int"), ("label", "str"), ("keywords", "str"), ("size", "int"),
                     ("share", "float"), ("sentiment_mean", "float"), ("negative", "float"), ("neutral", "float"),
                     ("positive", "float"), ("rating_mean", "float"), ("rating_count", "int"), ("theme_ids", "str"),
                     ("cohesion", "float"), ("kind", "str")],
}  # fmt: skip
NEEDS_THEMES = {"themes", "document_themes", "theme_trends", "theme_impact", "theme_groups"}


def columns(name: str) -> list[str]:
    return [c for c, _ in REPORTS[name]]


# ---------------------------------------------------------------- rows


def shown_records(session: Session, job: Job) -> list[dict[str, Any]]:
    """The job's themes as shown (merged ones folded in, hidden ones left out), largest first."""
    view = job_view(session, job)
    rows = session.scalars(select(ThemeRow).where(ThemeRow.job_id == job.id, ThemeRow.theme_id.in_(view.visible))
                           .order_by(ThemeRow.size.desc(), ThemeRow.theme_id)).all()  # fmt: skip
    return [view.record(r) for r in rows]


def report_rows(session: Session, project: Project, name: str) -> Iterator[tuple]:
    """The rows of a report table for the project's current job (documents: every document of the project)."""
    job = session.get(Job, project.current_job_id) if project.current_job_id else None
    if name == "documents":
        yield from _document_rows(session, project.id)
        return
    if job is None:
        return
    if name == "themes":
        for r in shown_records(session, job):
            impact = r.get("impact") or {}
            yield (r["id"], *_summary(r), bool(r.get("emerging")), impact.get("coef"), impact.get("low"),
                   impact.get("high"), "; ".join(str(m) for m in r.get("merged", [])) or None,
                   r.get("original_label"), r.get("cohesion"))  # fmt: skip
    elif name == "theme_impact":
        for r in shown_records(session, job):
            if r.get("impact"):
                i = r["impact"]
                yield r["id"], r["label"], i["coef"], i["low"], i["high"], i.get("n")
    elif name == "theme_trends":
        records = {r["id"]: r for r in shown_records(session, job)}
        query = (select(ThemeTrendRow).where(ThemeTrendRow.job_id == job.id, ThemeTrendRow.theme_id.in_(list(records)))
                 .order_by(ThemeTrendRow.theme_id, ThemeTrendRow.period_start))  # fmt: skip
        for t in session.scalars(query.execution_options(yield_per=BATCH)):
            record = records[t.theme_id]
            yield (t.theme_id, record["label"], t.period, t.period_start, t.documents, t.period_documents, t.share,
                   bool(record.get("emerging")))  # fmt: skip
    elif name == "document_themes":
        yield from _document_theme_rows(session, job)
    elif name == "theme_groups":
        query = select(ThemeGroupRow.record).where(ThemeGroupRow.job_id == job.id)
        for g in session.scalars(query.order_by(ThemeGroupRow.size.desc(), ThemeGroupRow.group_id)):
            yield (g["id"], g["level"], *_summary(g), "; ".join(str(t) for t in g["themes"]), g.get("cohesion"),
                   g.get("kind", "union"))  # fmt: skip
    else:
        raise KeyError(name)


def _summary(r: dict[str, Any]) -> tuple:
    """label … rating_count of a theme or group record: the columns ``themes`` and ``theme_groups`` share."""
    sentiment, rating = r["sentiment"], r["rating"]
    return (r["label"], "; ".join(r["keywords"]), r["size"], r["share"], sentiment["mean"], sentiment["negative"],
            sentiment["neutral"], sentiment["positive"], None if rating is None else rating["mean"],
            0 if rating is None else rating["count"])  # fmt: skip


def _document_theme_rows(session: Session, job: Job) -> Iterator[tuple]:
    view = job_view(session, job)
    visible = set(view.visible)
    themes = [t for t, root in view.root_of.items() if root in visible]
    merged = {t: root for t, root in view.root_of.items() if t != root and root in visible}
    theme = case(merged, value=DocumentTheme.theme_id, else_=DocumentTheme.theme_id) if merged else DocumentTheme.theme_id
    activation = func.max(DocumentTheme.activation)
    query = (select(Document.doc_id, theme.label("theme_id"), activation.label("activation"))
             .join(Document, Document.id == DocumentTheme.document_id)
             .where(DocumentTheme.job_id == job.id, DocumentTheme.theme_id.in_(themes))
             .group_by(Document.id, Document.doc_id, theme)
             .order_by(theme, activation.desc(), Document.doc_id))  # fmt: skip
    for row in session.execute(query.execution_options(yield_per=BATCH)):
        yield tuple(row)


def _document_rows(session: Session, project_id: str) -> Iterator[tuple]:
    query = (select(Document.doc_id, Document.text, Document.sentiment_score, Document.sentiment_label,
                    Document.rating, Document.date).where(Document.project_id == project_id).order_by(Document.id))  # fmt: skip
    for doc_id, body, score, label, rating, when in session.execute(query.execution_options(yield_per=BATCH)):
        yield doc_id, body, None if score is None else round(score, 4), label, rating, utc(when)


def utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def text_cell(value: Any) -> Any:
    """A value as a CSV cell: booleans true/false, timestamps ISO 8601 UTC, dates ISO, None empty."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return utc(value).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, date):
        return value.isoformat()
    return value


def parquet_bytes(name: str, rows: Iterator[tuple]) -> bytes:
    """The table as Parquet (types as in REPORTS)."""
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    types = {"int": pa.int64(), "float": pa.float64(), "str": pa.string(), "bool": pa.bool_(), "date": pa.date32(),
             "datetime": pa.timestamp("us", tz="UTC")}  # fmt: skip
    schema = pa.schema([(c, types[t]) for c, t in REPORTS[name]])
    data = list(zip(*rows)) or [[] for _ in schema]
    table = pa.table([pa.array(list(col), type=f.type) for col, f in zip(data, schema)], schema=schema)
    table = table.replace_schema_metadata({"feedback_themes.report": name, "feedback_themes.schema_version": "1"})
    out = io.BytesIO()
    pq.write_table(table, out)
    return out.getvalue()


# ---------------------------------------------------------------- the PostgreSQL reporting schema


def publish_reporting(session: Session, project_id: str, tables: tuple[str, ...] | None = None) -> bool:
    """Replace the project's rows in the ``reporting`` tables (PostgreSQL only; a no-op elsewhere), in a savepoint of
    the caller's transaction: a failure is logged and rolled back without failing the caller. Returns True when
    published."""
    if session.get_bind().dialect.name != "postgresql":
        return False
    try:
        with session.begin_nested():
            _publish(session, project_id, tables or ("projects", *REPORTS))
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
        insert = text(f"INSERT INTO reporting.{name} (tenant_id, project_id, {', '.join(names)}) "
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
            _publish(session, project_id, ("projects", *REPORTS))
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
    for name in ("role_tenants", "projects", *REPORTS):
        session.execute(text(f'GRANT SELECT ON reporting.{name} TO "{role}"'))
    session.execute(text("DELETE FROM reporting.role_tenants WHERE role_name = :r"), {"r": role})
    session.execute(text("INSERT INTO reporting.role_tenants VALUES (:r, :t)"), {"r": role, "t": tenant.id})
    return secret


def _literal(session: Session, value: str) -> str:
    return session.scalar(text("SELECT quote_literal(:v)"), {"v": value})


# ---------------------------------------------------------------- command line: feedback-themes reporting …

reporting_app = typer.Typer(no_args_is_help=True, help="The PostgreSQL `reporting` schema for BI tools (docs/bi.md).")


@reporting_app.command("grant")
def grant_command(
    role: str = typer.Option(..., help="Role to create or update (lower-case SQL name)."),
    tenant: str = typer.Option(..., help="Tenant name whose rows the role sees."),
    nologin: bool = typer.Option(False, "--nologin", help="NOLOGIN role, to GRANT to existing users."),
    password: str = typer.Option(None, help="Password to set (default: a new random one, printed)."),
) -> None:
    """Create a read-only role that sees only one tenant's rows of the reporting tables."""
    from sqlalchemy.engine import make_url

    from service.settings import get_settings
    from service.storage.session import session_scope, upgrade_database

    upgrade_database()
    try:
        with session_scope() as session:
            secret = grant_tenant_role(session, role, tenant, login=not nologin, password=password)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    url = make_url(get_settings().resolved_database_url)
    typer.echo(f"role {role} reads tenant {tenant!r}'s rows of the schema `reporting` "
               f"(host {url.host or 'localhost'}, port {url.port or 5432}, database {url.database})")  # fmt: skip
    if secret:
        typer.echo(f"password (shown once): {secret}")
    else:
        typer.echo(f'NOLOGIN: give it to a user with  GRANT "{role}" TO some_user;  then  SET ROLE "{role}";')


@reporting_app.command("publish")
def publish_command() -> None:
    """Publish every project's report tables now (a backfill; finished jobs and edits publish by themselves)."""
    from service.storage.session import session_scope, upgrade_database

    upgrade_database()
    with session_scope() as session:
        if session.get_bind().dialect.name != "postgresql":
            typer.echo("error: the reporting schema needs PostgreSQL (set FEEDBACK_THEMES_DATABASE_URL)", err=True)
            raise typer.Exit(2)
        typer.echo(f"published {publish_all(session)} projects")
