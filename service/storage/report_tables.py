"""Report tables for BI tools: their rows for a project (the project's edits applied), as CSV cells or Parquet.

Schema version 2 (version 1 and ``span_themes``, ``span_count`` in ``themes`` and ``theme_groups``); the columns and
their types are ``worker.pipeline.output.REPORT_COLUMNS``. Columns are only ever appended within a version; a removal or
change of meaning is a new version. See docs/bi.md.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import date, datetime, timezone
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from service.storage.errors import Conflict
from service.storage.models import (
    Document,
    DocumentTheme,
    Job,
    Project,
    SpanTheme,
    ThemeGroupRow,
    ThemeRow,
    ThemeTrendRow,
)
from service.storage.theme_view import job_view
from worker.pipeline.output import REPORT_COLUMNS, summary_cells

SCHEMA_VERSION = 2
BATCH = 2000
NEEDS_THEMES = {"themes", "document_themes", "span_themes", "theme_trends", "theme_impact", "theme_groups"}


def columns(name: str) -> list[str]:
    return [c for c, _ in REPORT_COLUMNS[name]]


def check_report(project: Project, name: str) -> None:
    """Conflict for a table of themes while the project has no finished job."""
    if name in NEEDS_THEMES and not project.current_job_id:
        raise Conflict("the project has no finished job yet", "no-themes-yet")


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
            yield (r["id"], *summary_cells(r), bool(r.get("emerging")), impact.get("coef"), impact.get("low"),
                   impact.get("high"), "; ".join(str(m) for m in r.get("merged", [])) or None,
                   r.get("original_label"), r.get("cohesion"), span_count(r))  # fmt: skip
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
    elif name == "span_themes":
        yield from _span_theme_rows(session, job)
    elif name == "theme_groups":
        query = select(ThemeGroupRow.record).where(ThemeGroupRow.job_id == job.id)
        for g in session.scalars(query.order_by(ThemeGroupRow.size.desc(), ThemeGroupRow.group_id)):
            yield (g["id"], g["level"], *summary_cells(g), "; ".join(str(t) for t in g["themes"]), g.get("cohesion"),
                   g.get("kind", "union"), span_count(g))  # fmt: skip
    else:
        raise KeyError(name)


def span_count(record: dict[str, Any]) -> int:
    """How many spans carry a theme or group; a record stored before spans were counted: its size (one span per
    comment)."""
    return record.get("span_count", record["size"])


def _shown_themes(session: Session, job: Job, column: Any) -> tuple[list[int], Any]:
    """The job's themes whose rows a report shows (those shown, and those merged into them), and ``column`` (a
    theme id column) mapped to the theme each is shown as."""
    view = job_view(session, job)
    visible = set(view.visible)
    themes = [t for t, root in view.root_of.items() if root in visible]
    merged = {t: root for t, root in view.root_of.items() if t != root and root in visible}
    return themes, case(merged, value=column, else_=column) if merged else column


def _document_theme_rows(session: Session, job: Job) -> Iterator[tuple]:
    themes, theme = _shown_themes(session, job, DocumentTheme.theme_id)
    activation = func.max(DocumentTheme.activation)
    query = (select(Document.doc_id, theme.label("theme_id"), activation.label("activation"))
             .join(Document, Document.id == DocumentTheme.document_id)
             .where(DocumentTheme.job_id == job.id, DocumentTheme.theme_id.in_(themes))
             .group_by(Document.id, Document.doc_id, theme)
             .order_by(theme, activation.desc(), Document.doc_id))  # fmt: skip
    for row in session.execute(query.execution_options(yield_per=BATCH)):
        yield tuple(row)


def _span_theme_rows(session: Session, job: Job) -> Iterator[tuple]:
    """One row per (span, shown theme): a span that carries several themes merged into one shows once, with its
    highest activation."""
    themes, theme = _shown_themes(session, job, SpanTheme.theme_id)
    activation = func.max(SpanTheme.activation)
    query = (select(Document.doc_id, SpanTheme.span_index, SpanTheme.span_start, SpanTheme.span_end, theme.label("theme_id"),
                    activation.label("activation"))
             .join(Document, Document.id == SpanTheme.document_id)
             .where(SpanTheme.job_id == job.id, SpanTheme.theme_id.in_(themes))
             .group_by(Document.id, Document.doc_id, SpanTheme.span_index, SpanTheme.span_start, SpanTheme.span_end, theme)
             .order_by(theme, activation.desc(), Document.doc_id, SpanTheme.span_index))  # fmt: skip
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
    """The table as Parquet (types as in ``REPORT_COLUMNS``)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    types = {"int": pa.int64(), "float": pa.float64(), "str": pa.string(), "bool": pa.bool_(), "date": pa.date32(),
             "datetime": pa.timestamp("us", tz="UTC")}  # fmt: skip
    schema = pa.schema([(c, types[t]) for c, t in REPORT_COLUMNS[name]])
    data = list(zip(*rows)) or [[] for _ in schema]
    table = pa.table([pa.array(list(col), type=f.type) for col, f in zip(data, schema)], schema=schema)
    table = table.replace_schema_metadata({"feedback_themes.report": name, "feedback_themes.schema_version": str(SCHEMA_VERSION)})
    out = io.BytesIO()
    pq.write_table(table, out)
    return out.getvalue()
