"""Report tables for BI tools: their rows for a project (the project's edits applied), as CSV cells or Parquet.

Schema version 4 (version 3 and ``document_attributes``, ``alerts``; version 3: version 2 and ``theme_tree``,
``document_nodes``, ``name`` and ``parent_id`` in ``themes``, ``theme_groups`` removed); the columns and their types are ``worker.pipeline.output.REPORT_COLUMNS``. Columns are only
ever appended within a version; a removal or change of meaning is a new version. See docs/bi.md.

``themes``, ``document_themes``, ``span_themes``, ``theme_trends`` and ``theme_impact`` are about themes (level 2);
``theme_tree`` and ``document_nodes`` hold every node of the tree (categories, themes, sub-themes). Hidden nodes and
their descendants are left out; a merged node's rows count for the node it was merged into.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import date, datetime, timezone
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from service.storage.alerts import alert_report_rows
from service.storage.errors import Conflict
from service.storage.models import (
    LEVEL_CATEGORY,
    LEVEL_THEME,
    LEVELS,
    Document,
    DocumentAttribute,
    DocumentTheme,
    Job,
    Project,
    ProjectColumn,
    SpanTheme,
    ThemeRow,
    ThemeTrendRow,
)
from service.storage.theme_view import JobView, job_view
from worker.pipeline.output import REPORT_COLUMNS, summary_cells

SCHEMA_VERSION = 4
BATCH = 2000
NEEDS_THEMES = {"themes", "document_themes", "span_themes", "theme_trends", "theme_impact", "theme_tree",
                "document_nodes"}  # fmt: skip


def columns(name: str) -> list[str]:
    return [c for c, _ in REPORT_COLUMNS[name]]


def check_report(project: Project, name: str) -> None:
    """Conflict for a table of themes while the project has no finished job."""
    if name in NEEDS_THEMES and not project.current_job_id:
        raise Conflict("the project has no finished job yet", "no-themes-yet")


def shown_records(session: Session, job: Job, levels: tuple[int, ...] = (LEVEL_THEME,),
                  view: JobView | None = None) -> list[dict[str, Any]]:  # fmt: skip
    """The job's nodes of ``levels`` as shown (merged ones folded in, hidden ones and their descendants left out),
    largest first."""
    view = view or job_view(session, job)
    shown = [n for n in view.visible if view.level_of.get(n, LEVEL_THEME) in levels]
    rows = session.scalars(select(ThemeRow).where(ThemeRow.job_id == job.id, ThemeRow.theme_id.in_(shown))
                           .order_by(ThemeRow.size.desc(), ThemeRow.theme_id)).all()  # fmt: skip
    return [view.record(r) for r in rows]


def report_rows(session: Session, project: Project, name: str) -> Iterator[tuple]:
    """The rows of a report table for the project's current job (documents: every document of the project), in
    the columns of ``REPORT_COLUMNS[name]``."""
    job = session.get(Job, project.current_job_id) if project.current_job_id else None
    if name == "documents":
        yield from _document_rows(session, project.id)
        return
    if name == "alerts":
        yield from alert_report_rows(session, project.id)
        return
    if name == "document_attributes":
        yield from _attribute_rows(session, project.id)
        return
    if name not in REPORT_COLUMNS:
        raise KeyError(name)
    if job is None:
        return
    if name == "themes":
        yield from _ordered(name, (node_cells(r) for r in shown_records(session, job)))
    elif name == "theme_tree":
        yield from _ordered(name, (node_cells(r) for r in tree_records(session, job)))
    elif name == "theme_impact":
        for r in shown_records(session, job):
            if r.get("impact"):
                i = r["impact"]
                yield r["id"], r["label"], i["coef"], i["low"], i["high"], i.get("n")
    elif name == "theme_trends":
        yield from _trend_rows(session, job)
    elif name == "document_themes":
        yield from _document_theme_rows(session, job)
    elif name == "span_themes":
        yield from _span_theme_rows(session, job)
    elif name == "document_nodes":
        yield from _document_node_rows(session, job)
    else:
        raise KeyError(name)


def node_cells(record: dict[str, Any]) -> dict[str, Any]:
    """A shown node's cells by column name, for the ``themes`` and ``theme_tree`` reports."""
    impact = record.get("impact") or {}
    cells = dict(zip(["label", "keywords", "size", "share", "sentiment_mean", "negative", "neutral", "positive",
                      "rating_mean", "rating_count"], summary_cells(record)))  # fmt: skip
    return {**cells, "theme_id": record["id"], "node_id": record["id"], "level": record.get("level", LEVEL_THEME),
            "parent_id": record.get("parent"), "name": record.get("name", record["label"]),
            "emerging": bool(record.get("emerging")), "impact_coef": impact.get("coef"),
            "impact_low": impact.get("low"), "impact_high": impact.get("high"),
            "merged_theme_ids": "; ".join(str(m) for m in record.get("merged", [])) or None,
            "original_label": record.get("original_label"), "original_name": record.get("original_name"),
            "cohesion": record.get("cohesion"), "span_count": span_count(record)}  # fmt: skip


def _ordered(name: str, rows: Iterator[dict[str, Any]]) -> Iterator[tuple]:
    names = columns(name)
    for row in rows:
        yield tuple(row[c] for c in names)


def tree_records(session: Session, job: Job) -> list[dict[str, Any]]:
    """Every shown node, depth first: each category (largest first) followed by its themes (largest first), each
    followed by its sub-themes; then nodes whose parent is not shown (results stored without a tree)."""
    view = job_view(session, job)
    records = {r["id"]: r for r in shown_records(session, job, LEVELS, view)}
    out: list[dict[str, Any]] = []

    def walk(node: int) -> None:
        out.append(records.pop(node))
        below = [c for c in view.shown_children(node) if c in records]
        for child in sorted(below, key=lambda c: (-records[c]["size"], c)):
            walk(child)

    tops = [n for n in records if records[n].get("parent") not in records]
    for node in sorted(tops, key=lambda n: (records[n].get("level") != LEVEL_CATEGORY, -records[n]["size"], n)):
        if node in records:
            walk(node)
    return out + sorted(records.values(), key=lambda r: (r.get("level", LEVEL_THEME), -r["size"], r["id"]))


def span_count(record: dict[str, Any]) -> int:
    """How many spans carry a node; a record stored before spans were counted: its size (one span per comment)."""
    return record.get("span_count", record["size"])


def _trend_rows(session: Session, job: Job) -> Iterator[tuple]:
    records = {r["id"]: r for r in shown_records(session, job)}
    query = (select(ThemeTrendRow).where(ThemeTrendRow.job_id == job.id, ThemeTrendRow.theme_id.in_(list(records)))
             .order_by(ThemeTrendRow.theme_id, ThemeTrendRow.period_start))  # fmt: skip
    for t in session.scalars(query.execution_options(yield_per=BATCH)):
        record = records[t.theme_id]
        yield (t.theme_id, record["label"], t.period, t.period_start, t.documents, t.period_documents, t.share,
               bool(record.get("emerging")))  # fmt: skip


def _shown_themes(session: Session, job: Job, column: Any,
                  levels: tuple[int, ...] = (LEVEL_THEME,)) -> tuple[list[int], Any]:  # fmt: skip
    """The job's nodes of ``levels`` whose rows a report shows (those shown, and those merged into them), and
    ``column`` (a node id column) mapped to the node each is shown as."""
    view = job_view(session, job)
    visible = set(view.visible)
    themes = [t for t, root in view.root_of.items() if root in visible and view.level_of.get(t) in levels]
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


def _document_node_rows(session: Session, job: Job) -> Iterator[tuple]:
    """Every shown node's memberships (every level): a comment in several nodes merged into one shows once, with its
    highest activation; by level, node, activation (highest first)."""
    nodes, node = _shown_themes(session, job, DocumentTheme.theme_id, LEVELS)
    activation = func.max(DocumentTheme.activation)
    query = (select(Document.doc_id, node.label("node_id"), ThemeRow.level, activation.label("activation"))
             .join(Document, Document.id == DocumentTheme.document_id)
             .join(ThemeRow, (ThemeRow.job_id == DocumentTheme.job_id) & (ThemeRow.theme_id == DocumentTheme.theme_id))
             .where(DocumentTheme.job_id == job.id, DocumentTheme.theme_id.in_(nodes))
             .group_by(Document.id, Document.doc_id, node, ThemeRow.level)
             .order_by(ThemeRow.level, node, activation.desc(), Document.doc_id))  # fmt: skip
    names = columns("document_nodes")
    for row in session.execute(query.execution_options(yield_per=BATCH)):
        cells = dict(row._mapping)
        yield tuple(cells[c] for c in names)


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


def _attribute_rows(session: Session, project_id: str) -> Iterator[tuple]:
    """Every metadata cell of the project's comments: one row per (comment, column), with the column's type."""
    query = (select(Document.doc_id, DocumentAttribute.name, ProjectColumn.type, DocumentAttribute.value,
                    DocumentAttribute.number, DocumentAttribute.date)
             .join(Document, Document.id == DocumentAttribute.document_id)
             .join(ProjectColumn, (ProjectColumn.project_id == DocumentAttribute.project_id)
                   & (ProjectColumn.name == DocumentAttribute.name))
             .where(DocumentAttribute.project_id == project_id)
             .order_by(Document.id, ProjectColumn.position))  # fmt: skip
    for doc_id, name, kind, value, number, when in session.execute(query.execution_options(yield_per=BATCH)):
        yield doc_id, name, kind, value, number, utc(when)


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
