"""Segments: the comments of a project that match metadata conditions (``Department Name=Dresses``,
``Age>=40``) and a date range, as a subquery of document ids that every view of themes, the tree, stats and trends
can be restricted to.

Conditions on one column are joined by OR when they are equalities (``Country=US``, ``Country=CA``) and by AND
otherwise (``Age>=30``, ``Age<40``, ``Channel!=email``); conditions on different columns by AND. ``!=`` keeps
comments without a value. A category takes ``=`` and ``!=``; a number and a date also ``<``, ``<=``, ``>``, ``>=``
(``=`` on a date: that day). ``from``/``to`` bound the comments' own date (the upload's date column), both
inclusive (``to`` as a day: the whole day).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import pandas as pd
from sqlalchemy import Select, and_, or_, select
from sqlalchemy.orm import Session

from service.storage.errors import InvalidInput
from service.storage.job_arrays import other_pending_jobs
from service.storage.models import Document, DocumentAttribute, Job, ProjectColumn

OPERATOR = re.compile(r"(!=|>=|<=|=|>|<)")
RANGES = (">=", "<=", ">", "<")
DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
MAX_CONDITIONS = 20


@dataclass(frozen=True)
class Condition:
    column: str
    op: str
    value: str

    def __str__(self) -> str:
        return f"{self.column}{self.op}{self.value}"


@dataclass(frozen=True)
class Segment:
    """Conditions on metadata columns and a range of the comments' dates; empty: every comment."""

    conditions: tuple[Condition, ...] = ()
    date_from: str | None = None
    date_to: str | None = None
    label: str = field(default="", compare=False)

    def __bool__(self) -> bool:
        return bool(self.conditions or self.date_from or self.date_to)

    def describe(self) -> dict[str, Any]:
        return {"conditions": [str(c) for c in self.conditions], "from": self.date_from, "to": self.date_to}


def parse_condition(text: str) -> Condition:
    """``column<op>value`` (the first operator splits it; a column name cannot hold one)."""
    match = OPERATOR.search(text)
    if match is None or not text[: match.start()].strip():
        raise InvalidInput(f"segment {text!r}: write column=value (or !=, <, <=, >, >= for numbers and dates)",
                           "bad-segment")  # fmt: skip
    return Condition(text[: match.start()].strip(), match.group(1), text[match.end() :].strip())


def parse_segment(conditions: list[str], date_from: str | None = None, date_to: str | None = None) -> Segment:
    """A segment from query parameters (the conditions are checked against the project's columns later)."""
    if len(conditions) > MAX_CONDITIONS:
        raise InvalidInput(f"at most {MAX_CONDITIONS} segment conditions", "bad-segment")
    for name, value in (("from", date_from), ("to", date_to)):
        if value is not None:
            parse_time(value, name)
    return Segment(tuple(parse_condition(c) for c in conditions), date_from or None, date_to or None)


def parse_time(value: str, what: str) -> datetime:
    """A date or a timestamp (UTC unless it says otherwise); InvalidInput naming ``what`` when it is neither."""
    try:
        stamp = pd.Timestamp(value.strip())
    except (ValueError, TypeError):
        stamp = pd.NaT
    if pd.isna(stamp):
        raise InvalidInput(f"{what}: {value!r} is not a date (write YYYY-MM-DD or an ISO 8601 time)", "bad-segment")
    stamp = stamp.tz_localize(timezone.utc) if stamp.tzinfo is None else stamp.tz_convert(timezone.utc)
    return stamp.to_pydatetime()


def day_end(value: str, what: str) -> tuple[datetime, bool]:
    """The end of a range given as ``value``: (bound, inclusive); a bare day ends before the next day."""
    stamp = parse_time(value, what)
    return (stamp + timedelta(days=1), False) if DAY.match(value.strip()) else (stamp, True)


def job_document_ids(job: Job) -> Select:
    """The ids of the project's documents a job covers (all but those of other jobs still being ingested or
    analysed: as :func:`service.storage.derived.job_documents`)."""
    return select(Document.id).where(Document.project_id == job.project_id,
                                     Document.job_id.not_in(other_pending_jobs(job)))  # fmt: skip


def segment_document_ids(session: Session, job: Job, segment: Segment) -> Select:
    """The ids of the job's documents in the segment (a subquery); InvalidInput for a column the project lacks, a
    text column, an operator the column's type does not take, or a value that does not read as its type."""
    query = job_document_ids(job)
    if segment.date_from:
        query = query.where(Document.date >= parse_time(segment.date_from, "from"))
    if segment.date_to:
        end, inclusive = day_end(segment.date_to, "to")
        query = query.where(Document.date <= end if inclusive else Document.date < end)
    for keep, matching in condition_sets(session, job.project_id, segment):
        query = query.where(Document.id.in_(matching) if keep else Document.id.not_in(matching))
    return query


def date_bounds(segment: Segment) -> tuple[datetime | None, tuple[datetime, bool] | None]:
    """The segment's ``from`` and (``to``, inclusive) on the comments' own dates."""
    start = parse_time(segment.date_from, "from") if segment.date_from else None
    return start, (day_end(segment.date_to, "to") if segment.date_to else None)


def condition_sets(session: Session, project_id: str, segment: Segment) -> list[tuple[bool, Select]]:
    """The segment's metadata conditions as document id sets: (True, ids) the comments must be among, (False, ids)
    they must not be among."""
    if not segment.conditions:
        return []
    columns = {c.name: c for c in session.scalars(select(ProjectColumn).where(ProjectColumn.project_id ==
                                                                             project_id))}  # fmt: skip
    by_column: dict[str, list[Condition]] = {}
    for condition in segment.conditions:
        by_column.setdefault(condition.column, []).append(condition)
    sets: list[tuple[bool, Select]] = []
    for name, conditions in by_column.items():
        column = checked_column(columns, name)
        equal = [_test(column, c) for c in conditions if c.op == "="]
        ranges = [_test(column, c) for c in conditions if c.op in RANGES]
        unequal = [_test(column, c) for c in conditions if c.op == "!="]
        if equal:
            sets.append((True, _matching(project_id, column, or_(*equal))))
        if ranges:
            sets.append((True, _matching(project_id, column, and_(*ranges))))
        if unequal:
            sets.append((False, _matching(project_id, column, or_(*unequal))))
    return sets


def matching_ids(sets: list[tuple[bool, Select]]) -> tuple[Select | None, Select | None]:
    """The condition sets as one query of the ids the comments must be among (None: no such condition) and one of
    the ids they must not be among (None: none), each intersected in SQL."""
    keep = [m for k, m in sets if k]
    drop = [m for k, m in sets if not k]
    among = keep[0] if keep else None
    for other in keep[1:]:
        among = among.where(DocumentAttribute.document_id.in_(other))
    excluded = drop[0] if drop else None
    for other in drop[1:]:
        excluded = excluded.union(other)
    return among, excluded


def checked_column(columns: dict[str, ProjectColumn], name: str) -> ProjectColumn:
    column = columns.get(name)
    offered = sorted(c.name for c in columns.values() if c.segment)
    if column is None:
        listed = ", ".join(repr(c) for c in offered) or "none (upload metadata columns first)"
        raise InvalidInput(f"segment: the project has no metadata column {name!r}; columns: {listed}", "bad-segment")
    if not column.segment:
        raise InvalidInput(f"segment: column {name!r} is free text ({column.distinct_values} distinct values), not a "
                           f"segment; columns: {', '.join(repr(c) for c in offered)}", "bad-segment")  # fmt: skip
    return column


def _matching(project_id: str, column: ProjectColumn, test: Any) -> Select:
    return select(DocumentAttribute.document_id).where(DocumentAttribute.project_id == project_id,
                                                       DocumentAttribute.name == column.name, test)  # fmt: skip


def _test(column: ProjectColumn, condition: Condition) -> Any:
    """The SQL test of one condition on ``document_attributes`` (``!=`` is tested as ``=``, then excluded)."""
    op, value = condition.op, condition.value
    if column.type == "category":
        if op in RANGES:
            raise InvalidInput(f"segment {condition}: {column.name!r} is a category; use = or !=", "bad-segment")
        return DocumentAttribute.value == value
    if column.type == "number":
        try:
            number = float(value)
        except ValueError:
            raise InvalidInput(f"segment {condition}: {column.name!r} holds numbers; {value!r} is not one",
                               "bad-segment") from None  # fmt: skip
        return _compare(DocumentAttribute.number, op, number)
    what = f"segment {condition}"
    if op in ("=", "!="):
        start = parse_time(value, what)
        end, inclusive = day_end(value, what)
        upper = DocumentAttribute.date <= end if inclusive else DocumentAttribute.date < end
        return and_(DocumentAttribute.date >= start, upper)
    if op in ("<=", ">"):
        end, inclusive = day_end(value, what)  # "<= a day": through its end; "> a day": after it
        if op == "<=":
            return DocumentAttribute.date <= end if inclusive else DocumentAttribute.date < end
        return DocumentAttribute.date > end if inclusive else DocumentAttribute.date >= end
    return _compare(DocumentAttribute.date, op, parse_time(value, what))


def _compare(column: Any, op: str, value: Any) -> Any:
    return {"=": column == value, "!=": column == value, ">=": column >= value, "<=": column <= value,
            ">": column > value, "<": column < value}[op]  # fmt: skip
