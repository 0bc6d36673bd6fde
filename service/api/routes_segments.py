"""A project's metadata columns (what a segment filter can name), the comparison of two segments, and a node's share
per value of a column."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from service.api.deps import NodeId, SessionDep, TenantDep
from service.api.segments import SEGMENT_HELP, DateBound, SegmentDep
from service.storage.attributes import column_values, project_columns
from service.storage.compare import compare_segments
from service.storage.segments import parse_segment
from service.storage.tenancy import current_job, project_for_tenant
from service.storage.theme_segments import theme_segments

router = APIRouter(prefix="/v1/projects", tags=["segments"])
Side = Annotated[list[str], Query(description=SEGMENT_HELP, max_length=20)]


@router.get("/{project_id}/columns", summary="The project's metadata columns, typed, with their frequent values")
def get_columns(project_id: str, tenant: TenantDep, session: SessionDep,
                values: Annotated[int, Query(ge=0, le=200, description="Most frequent values per column")] = 20,
                ) -> dict[str, Any]:  # fmt: skip
    project = project_for_tenant(session, tenant, project_id)
    return {"columns": [column_values(session, project.id, c, values) for c in project_columns(session, project.id)]}


@router.get("/{project_id}/compare", summary="Each theme's share and sentiment in two segments, and whether the "
            "shares differ significantly")  # fmt: skip
def get_compare(project_id: str, tenant: TenantDep, session: SessionDep,
                a: Side = [],  # noqa: B006 - FastAPI copies query defaults
                b: Side = [],  # noqa: B006
                a_from: DateBound = None, a_to: DateBound = None, b_from: DateBound = None, b_to: DateBound = None,
                level: Annotated[int, Query(ge=1, le=3, description="1: categories, 2: themes, 3: sub-themes")] = 2,
                alpha: Annotated[float, Query(gt=0, lt=1, description="False discovery rate for `significant`")] = 0.05,
                ) -> dict[str, Any]:  # fmt: skip
    """Segment ``a`` against segment ``b``, or against every other comment when ``b`` (and ``b_from``/``b_to``)
    is absent; two periods: ``a_from``/``a_to`` against ``b_from``/``b_to``."""
    job = current_job(session, tenant, project_id)
    side_a = parse_segment([c for c in a if c.strip()], a_from, a_to)
    side_b = parse_segment([c for c in b if c.strip()], b_from, b_to)
    return compare_segments(session, job, side_a, side_b or None, level, alpha)


@router.get("/{project_id}/themes/{theme_id}/segments", summary="A node's share of the comments per value of a "
            "metadata column")  # fmt: skip
def get_theme_segments(project_id: str, theme_id: NodeId, tenant: TenantDep, session: SessionDep,
                       segment: SegmentDep,
                       column: Annotated[str | None, Query(min_length=1, max_length=200, description="A category or "
                                                           "number column (absent: the project's first)")] = None,
                       values: Annotated[int, Query(ge=1, le=200, description="Most frequent values")] = 12,
                       ) -> dict[str, Any]:  # fmt: skip
    """Per value of ``column`` (its ``values`` most frequent among the segment's comments, most frequent first): the
    comments with it (``n_documents``), how many of them are in the node (``count``), ``share`` and the node's mean
    sentiment over them; ``overall`` over every comment of the segment, ``others`` over those with any other value.
    A date or free-text column, or one the project lacks: 422 ``bad-segment``."""
    return theme_segments(session, current_job(session, tenant, project_id), theme_id, column, values, segment)
