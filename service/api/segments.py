"""The segment filter every view of themes, the tree, stats and trends takes: ``segment`` (repeatable,
``column=value``; ``!=``, ``<``, ``<=``, ``>``, ``>=`` for numbers and dates) and ``from``/``to`` (the comments'
dates). See :mod:`service.storage.segments`."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query

from service.storage.segments import Segment, parse_segment

SEGMENT_HELP = ("A metadata condition, `column=value` (also `!=`; `<`, `<=`, `>`, `>=` for number and date columns); "
                "repeat for more: equalities on one column are OR'ed, everything else AND'ed")  # fmt: skip
Conditions = Annotated[list[str], Query(description=SEGMENT_HELP, max_length=20)]
DateBound = Annotated[str | None, Query(max_length=40)]


async def segment_query(segment: Conditions = [],  # noqa: B006 - FastAPI copies query defaults
                        date_from: Annotated[str | None, Query(alias="from", max_length=40,
                                                               description="Comments dated from (inclusive)")] = None,
                        date_to: Annotated[str | None, Query(alias="to", max_length=40,
                                                             description="Comments dated up to (inclusive; a day: "
                                                             "the whole day)")] = None) -> Segment:  # fmt: skip
    """The request's segment (empty: every comment); 422 ``bad-segment`` for a condition that does not parse."""
    return parse_segment([c for c in segment if c.strip()], date_from, date_to)


SegmentDep = Annotated[Segment, Depends(segment_query)]
