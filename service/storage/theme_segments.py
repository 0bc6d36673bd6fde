"""A node's share per value of a metadata column: for each of the column's most frequent values, the comments with
that value, how many of them are in the node, and the node's sentiment over them; the same over every comment and
over the comments with any other value. Counted with numpy over the job's cached arrays
(:mod:`service.storage.job_arrays`) and one query of the column's cells."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.storage.errors import InvalidInput
from service.storage.job_arrays import JobArrays, job_arrays
from service.storage.models import DocumentAttribute, Job, ProjectColumn
from service.storage.segment_view import DIGITS, segment_mask, shown_nodes
from service.storage.segments import Segment, checked_column
from service.storage.theme_view import JobView, job_view
from service.storage.themes import shown_row

MAX_NUMBER_VALUES = 200  # a number column with more distinct values is a range, not a set of values


def theme_segments(session: Session, job: Job, theme_id: int, column_name: str | None, n_values: int,
                   segment: Segment | None = None) -> dict[str, Any]:  # fmt: skip
    """A node's (any level; a merged node: NotFound) figures per value of a category or number column (None: the
    project's first), over the comments of the segment (every comment without one): its ``n_values`` most frequent
    values there, most frequent first, ``overall`` and ``others`` (comments with any other value; None when none
    has)."""
    view = job_view(session, job)
    record = view.record(shown_row(session, job, view, theme_id))
    column = grouping_column(session, job.project_id, column_name)
    arrays = job_arrays(session, job)
    mask = segment_mask(session, job, arrays, segment) if segment else np.ones(len(arrays.document_ids), dtype=bool)
    inside, sentiment = node_rows(arrays, view, theme_id)
    codes, names = value_codes(session, job.project_id, column.name, arrays)
    counted = mask & (codes >= 0)
    n_documents = np.bincount(codes[counted], minlength=len(names))
    top = sorted(np.flatnonzero(n_documents), key=lambda c: (-n_documents[c], names[c]))[:n_values]
    others = counted & ~np.isin(codes, top)
    return {
        "column": {"name": column.name, "type": column.type},
        "theme": {"id": record["id"], "level": record["level"], "name": record["name"]},
        "segment": segment.describe() if segment else None,
        "overall": figures(mask, inside, sentiment),
        "values": [{"value": names[c], **figures(mask & (codes == c), inside, sentiment)} for c in top],
        "others": figures(others, inside, sentiment) if others.any() else None,
    }


def grouping_column(session: Session, project_id: str, name: str | None) -> ProjectColumn:
    """The project's column ``name`` (None: its first such column) if its values can be counted one by one (a
    category, or a number with at most :data:`MAX_NUMBER_VALUES` distinct values); InvalidInput (``bad-segment``)
    naming the columns, or saying why."""
    columns = {c.name: c for c in session.scalars(select(ProjectColumn).where(ProjectColumn.project_id == project_id)
                                                  .order_by(ProjectColumn.position))}  # fmt: skip
    if name is None:
        countable = [c for c in columns.values() if c.type == "category" or
                     (c.type == "number" and c.distinct_values <= MAX_NUMBER_VALUES)]  # fmt: skip
        if not countable:
            raise InvalidInput("the project has no category column to count a share per value by", "bad-segment")
        return countable[0]
    column = checked_column(columns, name)
    if column.type == "date":
        raise InvalidInput(f"column {name!r} holds dates: a share per value needs a category or number column (filter "
                           "dates with from/to)", "bad-segment")  # fmt: skip
    if column.type == "number" and column.distinct_values > MAX_NUMBER_VALUES:
        raise InvalidInput(f"column {name!r} holds {column.distinct_values} distinct numbers: a share per value needs "
                           f"at most {MAX_NUMBER_VALUES} (filter ranges with segment=)", "bad-segment")  # fmt: skip
    return column


def node_rows(arrays: JobArrays, view: JobView, node_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Per comment of the job, whether it is in the shown node (with the nodes merged into it: each comment once,
    its first membership's sentiment), and its sentiment in the node (NaN outside it)."""
    chosen = shown_nodes(view, arrays.node) == node_id if len(arrays.node) else np.zeros(0, dtype=bool)
    rows, first = np.unique(arrays.row[chosen], return_index=True)
    inside = np.zeros(len(arrays.document_ids), dtype=bool)
    inside[rows] = True
    sentiment = np.full(len(arrays.document_ids), np.nan)
    sentiment[rows] = arrays.sentiment[chosen][first]
    return inside, sentiment


def value_codes(session: Session, project_id: str, name: str, arrays: JobArrays) -> tuple[np.ndarray, list[str]]:
    """Per comment of the job, the index of its value of column ``name`` among the values (-1 without one), and the
    values: one query of the column's cells."""
    where = (DocumentAttribute.project_id == project_id, DocumentAttribute.name == name)
    cells = session.execute(select(DocumentAttribute.document_id, DocumentAttribute.value).where(*where)).all()
    ids = np.fromiter((c[0] for c in cells), dtype=np.int64, count=len(cells))
    codes_of_cells, names = pd.factorize(pd.Series([c[1] for c in cells], dtype=object))
    codes = np.full(len(arrays.document_ids), -1, dtype=np.int64)
    at, found = arrays.positions(ids)  # cells of comments the job does not cover are left out
    codes[at[found]] = codes_of_cells[found]
    return codes, [str(v) for v in names]


def figures(chosen: np.ndarray, inside: np.ndarray, sentiment: np.ndarray) -> dict[str, Any]:
    """The node's figures over the ``chosen`` comments: how many they are, how many of them are in the node, that
    share, and the node's mean sentiment over those (None when none is)."""
    n_documents, hits = int(chosen.sum()), chosen & inside
    count = int(hits.sum())
    return {"n_documents": n_documents, "count": count, "share": round(count / max(1, n_documents), DIGITS),
            "sentiment_mean": round(float(sentiment[hits].mean()), DIGITS) if count else None}  # fmt: skip
