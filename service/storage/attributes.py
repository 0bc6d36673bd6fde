"""Comments' metadata (the upload's other columns): storing a job's cells, typing a project's columns over all its
comments, and listing them with their most frequent values."""

from __future__ import annotations

from typing import Any

import pandas as pd
from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from service.storage.models import Document, DocumentAttribute, ProjectColumn
from worker.pipeline.metadata import MetadataOptions, attribute_rows, column_type

BATCH = 5000
TOP_VALUES = 20


def store_attributes(session: Session, project_id: str, job_id: str, doc_ids: list[str], cells: pd.DataFrame) -> int:
    """Replace the metadata of the job's documents (``doc_ids``: each row's document id in the project, ``cells``:
    the rows' cleaned cells, one column per metadata column). Returns the rows stored."""
    stored = dict(session.execute(select(Document.doc_id, Document.id)
                                  .where(Document.project_id == project_id, Document.job_id == job_id)).all())  # fmt: skip
    ids = [stored.get(d) for d in doc_ids]
    present = [i for i in ids if i is not None]
    for start in range(0, len(present), BATCH):
        session.execute(delete(DocumentAttribute).where(DocumentAttribute.document_id.in_(present[start:start + BATCH])))
    long = attribute_rows(cells)
    rows = [{"document_id": ids[row], "project_id": project_id, "name": name, "value": value,
             "number": None if pd.isna(number) else float(number),
             "date": None if pd.isna(when) else when.to_pydatetime()}
            for row, name, value, number, when in long.itertuples(index=False) if ids[row] is not None]  # fmt: skip
    for start in range(0, len(rows), BATCH):
        session.execute(insert(DocumentAttribute), rows[start : start + BATCH])
    return len(rows)


def refresh_project_columns(session: Session, project_id: str, order: list[str],
                            options: MetadataOptions = MetadataOptions()) -> list[ProjectColumn]:  # fmt: skip
    """Type the project's metadata columns over all its comments (counts in SQL) and store them; ``order``: this
    upload's columns, appended after the project's known ones. A column no comment has any more is removed."""
    counts = session.execute(
        select(DocumentAttribute.name, func.count(), func.count(DocumentAttribute.value.distinct()),
               func.count(DocumentAttribute.number), func.count(DocumentAttribute.date))
        .where(DocumentAttribute.project_id == project_id).group_by(DocumentAttribute.name)
    ).all()  # fmt: skip
    known = {c.name: c for c in session.scalars(select(ProjectColumn).where(ProjectColumn.project_id == project_id))}
    position = {name: c.position for name, c in known.items()}
    for name in order:
        position.setdefault(name, len(position))
    present = set()
    for name, filled, distinct, numbers, dates in counts:
        present.add(name)
        kind = column_type(filled, distinct, numbers, dates, options)
        column = known.get(name) or ProjectColumn(project_id=project_id, name=name)
        column.position = position.setdefault(name, len(position))
        column.type, column.distinct_values, column.filled, column.segment = kind, distinct, filled, kind != "text"
        session.add(column)
        known[name] = column
    for name in set(known) - present:
        session.delete(known.pop(name))
    session.flush()
    return sorted(known.values(), key=lambda c: c.position)


def project_columns(session: Session, project_id: str) -> list[ProjectColumn]:
    """The project's metadata columns in the order they first appeared."""
    return list(session.scalars(select(ProjectColumn).where(ProjectColumn.project_id == project_id)
                                .order_by(ProjectColumn.position)))  # fmt: skip


def column_summary(column: ProjectColumn) -> dict[str, Any]:
    return {"name": column.name, "type": column.type, "distinct_values": column.distinct_values,
            "filled": column.filled, "segment": column.segment}  # fmt: skip


def column_values(session: Session, project_id: str, column: ProjectColumn, limit: int = TOP_VALUES) -> dict[str, Any]:
    """A column with what a filter needs: a category's most frequent values with their counts; a number's or a
    date's least and greatest value."""
    where = (DocumentAttribute.project_id == project_id, DocumentAttribute.name == column.name)
    out = column_summary(column)
    if column.type == "number":
        low, high = session.execute(select(func.min(DocumentAttribute.number), func.max(DocumentAttribute.number))
                                    .where(*where)).one()  # fmt: skip
        out.update(min=low, max=high)
    elif column.type == "date":
        low, high = session.execute(select(func.min(DocumentAttribute.date), func.max(DocumentAttribute.date))
                                    .where(*where)).one()  # fmt: skip
        out.update(min=low, max=high)
    if column.type in ("category", "number"):
        count = func.count().label("n")
        top = session.execute(select(DocumentAttribute.value, count).where(*where).group_by(DocumentAttribute.value)
                              .order_by(count.desc(), DocumentAttribute.value).limit(limit)).all()  # fmt: skip
        out["values"] = [{"value": v, "count": n} for v, n in top]
    return out
