"""Reading a job's themes (edits applied), a theme's member comments, and the theme groups."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.storage.errors import NotFound
from service.storage.models import Document, DocumentTheme, Job, SpanTheme, ThemeGroupRow, ThemeRow
from service.storage.theme_view import job_view

THEME_SORTS = {"size": ThemeRow.size, "sentiment": ThemeRow.sentiment_mean}


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
        raise NotFound(f"no theme {theme_id} in this project", "theme-not-found")
    return row


def theme_detail(session: Session, job: Job, theme_id: int) -> dict[str, Any]:
    """One theme as shown (edits applied); a theme merged into another is not found, naming where it went."""
    view = job_view(session, job)
    row = theme_row(session, job.id, theme_id)
    root = view.root_of.get(theme_id, theme_id)
    if root != theme_id:
        raise NotFound(f"theme {theme_id} was merged into theme {root}", "theme-merged")
    return view.record(row)


def theme_members(session: Session, job_id: str, theme_id: int, offset: int, limit: int) -> tuple[list[dict], int]:
    """Member comments of a theme (of every theme merged into it), highest activation first, each with the spans
    that carry the theme (``spans``: index, character offsets, activation; in comment order; empty for a job stored
    without span rows)."""
    job = session.get(Job, job_id)
    group = job_view(session, job).groups.get(theme_id, [theme_id])
    where = (DocumentTheme.job_id == job_id, DocumentTheme.theme_id.in_(group))
    total = session.scalar(select(func.count(func.distinct(DocumentTheme.document_id))).where(*where)) or 0
    activation = func.max(DocumentTheme.activation).label("activation")
    rows = session.execute(
        select(Document.id, Document.doc_id, Document.text, activation, Document.sentiment_score,
               Document.sentiment_label, Document.rating)
        .join(Document, Document.id == DocumentTheme.document_id)
        .where(*where)
        .group_by(Document.id, Document.doc_id, Document.text, Document.sentiment_score, Document.sentiment_label,
                  Document.rating)
        .order_by(activation.desc(), Document.id)
        .offset(offset).limit(limit)
    ).all()  # fmt: skip
    spans = member_spans(session, job_id, group, [row.id for row in rows])
    members = []
    for row in rows:
        member = dict(row._mapping)
        member["spans"] = spans.get(member.pop("id"), [])
        members.append(member)
    return members, total


def member_spans(session: Session, job_id: str, themes: list[int], document_ids: list[int]) -> dict[int, list[dict]]:
    """Per document, the spans carrying any of ``themes`` in the job (a span carrying several: once, with its highest
    activation), in comment order."""
    if not document_ids:
        return {}
    activation = func.max(SpanTheme.activation).label("activation")
    query = (select(SpanTheme.document_id, SpanTheme.span_index, SpanTheme.span_start, SpanTheme.span_end, activation)
             .where(SpanTheme.job_id == job_id, SpanTheme.theme_id.in_(themes),
                    SpanTheme.document_id.in_(document_ids))
             .group_by(SpanTheme.document_id, SpanTheme.span_index, SpanTheme.span_start, SpanTheme.span_end)
             .order_by(SpanTheme.document_id, SpanTheme.span_index))  # fmt: skip
    out: dict[int, list[dict]] = {}
    for document_id, index, start, end, value in session.execute(query):
        out.setdefault(document_id, []).append({"index": index, "start": start, "end": end, "activation": value})
    return out


def groups_page(session: Session, job: Job, offset: int, limit: int) -> tuple[list[dict], int]:
    """A page of the job's theme groups (largest first) in the themes.json schema. Groups come from the analysis:
    a theme renamed, hidden or merged later keeps its place in them."""
    base = select(ThemeGroupRow.record).where(ThemeGroupRow.job_id == job.id)
    total = session.scalar(select(func.count()).select_from(ThemeGroupRow).where(ThemeGroupRow.job_id == job.id)) or 0
    order = (ThemeGroupRow.size.desc(), ThemeGroupRow.group_id.asc())
    return list(session.scalars(base.order_by(*order).offset(offset).limit(limit))), total
