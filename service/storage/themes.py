"""Reading a job's theme tree (edits applied): its themes, any node, a node's children and member comments."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.storage.errors import NotFound
from service.storage.models import LEVEL_CATEGORY, LEVEL_THEME, Document, DocumentTheme, Job, SpanTheme, ThemeRow
from service.storage.segment_view import apply_segment, segment_figures
from service.storage.segments import Segment, segment_document_ids
from service.storage.theme_view import JobView, job_view

THEME_SORTS = {"size": ThemeRow.size, "sentiment": ThemeRow.sentiment_mean}
RECORD_SORTS = {"size": lambda r: r["size"], "sentiment": lambda r: r["sentiment"]["mean"]}
TREE_KEYWORDS = 5  # keywords per node in the compact tree


def themes_page(session: Session, job: Job, sort: str, order: str, offset: int, limit: int,
                include_hidden: bool = False, segment: Segment | None = None) -> tuple[list[dict], int, dict | None]:  # fmt: skip
    """A page of the job's themes (level 2) in the themes.json schema, with the project's edits applied, the total,
    and the segment's description (figures over the segment's comments; themes without one left out)."""
    view = job_view(session, job)
    shown = view.at_level(LEVEL_THEME, view.roots if include_hidden else view.visible)
    base = select(ThemeRow).where(ThemeRow.job_id == job.id, ThemeRow.theme_id.in_(shown))
    if segment:  # the figures of every theme first, then the page's records
        figures = segment_figures(session, job, view, segment)
        ranked = sorted((t for t in shown if figures.nodes.get(t)), key=lambda t: t)
        ranked.sort(key=lambda t: RECORD_SORTS[sort](figures.nodes[t]), reverse=order == "desc")
        page = ranked[offset : offset + limit]
        rows = {r.theme_id: r for r in session.scalars(base.where(ThemeRow.theme_id.in_(page)))}
        records = [view.record(rows[t]) for t in page]
        inside = figures.examples_inside(session, job, records)
        return [figures.overlay(r, inside) for r in records], len(ranked), figures.metadata()
    column = THEME_SORTS[sort]
    ordering = (column.desc() if order == "desc" else column.asc(), ThemeRow.theme_id.asc())
    total = session.scalar(select(func.count()).select_from(base.subquery())) or 0
    rows = session.scalars(base.order_by(*ordering).offset(offset).limit(limit)).all()
    return [view.record(row) for row in rows], total, None


def theme_row(session: Session, job_id: str, theme_id: int) -> ThemeRow:
    row = session.get(ThemeRow, (job_id, theme_id))
    if row is None:
        raise NotFound(f"no theme {theme_id} in this project", "theme-not-found")
    return row


def shown_row(session: Session, job: Job, view: JobView, theme_id: int) -> ThemeRow:
    """The stored row of a node the job shows; NotFound for a node it lacks, or one merged into another (naming
    where it went)."""
    row = theme_row(session, job.id, theme_id)
    root = view.root_of.get(theme_id, theme_id)
    if root != theme_id:
        raise NotFound(f"theme {theme_id} was merged into theme {root}", "theme-merged")
    return row


def theme_detail(session: Session, job: Job, theme_id: int, view: JobView | None = None,
                 segment: Segment | None = None) -> dict[str, Any]:  # fmt: skip
    """One node of any level as shown (edits applied; with a segment: its figures over the segment's comments, in
    ``segment`` the segment's description); a node merged into another is not found, naming where it went."""
    view = view or job_view(session, job)
    row = shown_row(session, job, view, theme_id)
    records, described = apply_segment(session, job, view, [view.record(row)], segment, keep_empty=True)
    return {**records[0], "segment": described} if described else records[0]


def node_children(session: Session, job: Job, node_id: int, include_hidden: bool = False,
                  segment: Segment | None = None) -> tuple[list[dict[str, Any]], dict | None]:  # fmt: skip
    """The shown children of a node (full records, largest first; hidden ones only with ``include_hidden``; with a
    segment: its figures, children without a comment in it left out) and the segment's description."""
    view = job_view(session, job)
    theme_detail(session, job, node_id, view)
    shown = set(view.roots if include_hidden else view.visible)
    children = [c for c in view.shown_children(node_id) if c in shown]
    rows = session.scalars(select(ThemeRow).where(ThemeRow.job_id == job.id, ThemeRow.theme_id.in_(children))
                           .order_by(ThemeRow.size.desc(), ThemeRow.theme_id)).all()  # fmt: skip
    records, described = apply_segment(session, job, view, [view.record(row) for row in rows], segment)
    return sorted(records, key=lambda r: (-r["size"], r["id"])), described


def theme_tree(session: Session, job: Job, include_hidden: bool = False,
               segment: Segment | None = None) -> tuple[list[dict[str, Any]], dict | None]:  # fmt: skip
    """The shown tree, nested: categories (largest first) with their themes with their sub-themes, compact nodes
    (with a segment: their figures over it, nodes without a comment in it left out), and the segment's
    description. A node whose parent the job lacks (results stored without a tree) is listed at the top."""
    view = job_view(session, job)
    shown = view.roots if include_hidden else view.visible
    rows = {r.theme_id: r for r in session.scalars(select(ThemeRow).where(ThemeRow.job_id == job.id,
                                                                          ThemeRow.theme_id.in_(shown)))}  # fmt: skip
    records = {node: view.record(row) for node, row in rows.items()}
    if segment:
        kept, described = apply_segment(session, job, view, list(records.values()), segment)
        records = {r["id"]: r for r in kept}

    def order(nodes: list[int]) -> list[int]:
        return sorted((n for n in nodes if n in records), key=lambda n: (-records[n]["size"], n))

    def nested(node: int, seen: frozenset[int]) -> dict[str, Any]:
        below = [c for c in order(view.shown_children(node)) if c not in seen]
        return {**compact_node(records[node], include_hidden), "children": [nested(c, seen | {c}) for c in below]}

    tops = [n for n in records if view.shown_parent(n) not in records]
    tops.sort(key=lambda n: (view.level_of.get(n, LEVEL_THEME) != LEVEL_CATEGORY, -records[n]["size"], n))
    return [nested(n, frozenset({n})) for n in tops], (described if segment else None)


def compact_node(record: dict[str, Any], with_hidden: bool = False) -> dict[str, Any]:
    """A node's fields in the compact tree."""
    rating = record.get("rating") or {}
    node = {"id": record["id"], "level": record["level"], "name": record["name"],
            "keywords": list(record.get("keywords", []))[:TREE_KEYWORDS], "size": record["size"],
            "share": record["share"], "sentiment_mean": (record.get("sentiment") or {}).get("mean"),
            "rating_mean": rating.get("mean"), "impact": (record.get("impact") or {}).get("coef"),
            "emerging": bool(record.get("emerging"))}  # fmt: skip
    if with_hidden:
        node["hidden"] = record["hidden"]
    return node


def span_nodes(view: JobView, nodes: list[int]) -> list[int]:
    """The nodes whose span rows carry ``nodes`` (of one level): a category's are its themes (every theme stored
    under it or under a category merged into it), a theme's or sub-theme's its own."""
    if not nodes or view.level_of.get(nodes[0], LEVEL_THEME) != LEVEL_CATEGORY:
        return nodes
    under = set(nodes)
    return sorted(t for t, parent in view.parent_of.items() if parent in under)


def theme_members(session: Session, job_id: str, theme_id: int, offset: int, limit: int,
                  segment: Segment | None = None) -> tuple[list[dict], int]:  # fmt: skip
    """Member comments of a node (of every node merged into it; with a segment: those in it), highest activation
    first, each with the spans that carry it (``spans``: index, character offsets, activation; in comment order; a
    category's: those carrying its themes; empty for a job stored without span rows)."""
    job = session.get(Job, job_id)
    view = job_view(session, job)
    group = view.groups.get(theme_id, [theme_id])
    where = (DocumentTheme.job_id == job_id, DocumentTheme.theme_id.in_(group))
    if segment:
        where = (*where, DocumentTheme.document_id.in_(segment_document_ids(session, job, segment)))
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
    spans = member_spans(session, job_id, span_nodes(view, group), [row.id for row in rows])
    members = []
    for row in rows:
        member = dict(row._mapping)
        member["spans"] = spans.get(member.pop("id"), [])
        members.append(member)
    return members, total


def member_spans(session: Session, job_id: str, themes: list[int], document_ids: list[int]) -> dict[int, list[dict]]:
    """Per document, the spans carrying any of ``themes`` in the job (a span carrying several: once, with its highest
    activation), in comment order."""
    if not document_ids or not themes:
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
