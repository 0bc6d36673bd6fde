"""``/v1/projects``: projects, their current themes, a node's members, edits of nodes, trends and figures.

Theme endpoints list themes (level 2); ``/themes/{id}`` (read, edit, merge, members) takes a node of any level. The
tree is in ``routes_tree``, the report tables (CSV, Parquet) in ``routes_reports``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Query
from pydantic import BaseModel, ConfigDict, Field

from service.api.deps import MAX_ID, NodeId, SessionDep, TenantDep
from service.api.pagination import decode_cursor, next_cursor
from service.api.schemas import Member, ProjectList, ProjectOut, ThemeDetail, ThemesPage
from service.api.segments import SegmentDep
from service.storage.edits import edit_theme, list_edits, merge_themes, unmerge_theme
from service.storage.jobs import page_metadata
from service.storage.reporting_schema import EDITED_TABLES, publish_reporting
from service.storage.segments import Segment
from service.storage.stats import project_stats, theme_trends_view
from service.storage.tenancy import current_job, list_projects, project_for_tenant, project_summary
from service.storage.themes import theme_detail, theme_members, themes_page

router = APIRouter(prefix="/v1/projects", tags=["projects"])
Limit = Annotated[int, Query(ge=1, le=500)]
Cursor = Annotated[str | None, Query(max_length=40)]
IncludeHidden = Annotated[bool, Query(description="Include hidden themes (flagged `hidden: true`)")]


class ThemeEditIn(BaseModel):
    """A node's new name (empty or null: the generated name again; ``label``: the same, its older spelling) and/or
    whether it is hidden (a hidden node hides its descendants)."""

    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, max_length=200)
    label: str | None = Field(None, max_length=200)
    hidden: bool | None = None


class MergeIn(BaseModel):
    """Nodes of this node's level to show as part of it from now on (their own ids stay; other nodes are untouched;
    another level's: 422 ``merge-across-levels``)."""

    model_config = ConfigDict(extra="forbid")
    themes: list[Annotated[int, Field(ge=0, le=MAX_ID)]] = Field(min_length=1, max_length=500)


class ThemeEditOut(BaseModel):
    theme_id: int = Field(description="the node's id")
    name: str | None
    label: str | None
    hidden: bool
    merged_into: int | None
    updated_at: datetime


class TrendsOut(BaseModel):
    segment: dict[str, Any] | None = None
    period: Literal["day", "week", "month"] | None
    periods: list[str]
    totals: list[int]
    themes: list[dict[str, Any]]


class PeriodOut(BaseModel):
    first: datetime = Field(description="the earliest comment date")
    last: datetime = Field(description="the latest comment date")
    dated: int = Field(description="comments with a date")


class StatsOut(BaseModel):
    segment: dict[str, Any] | None = None
    documents: int
    sentiment: dict[str, int]
    sentiment_histogram: dict[str, list[Any]]
    ratings: list[dict[str, Any]]
    period: PeriodOut | None = Field(None, description="the dates the comments span; null when none has a date")


@router.get("", response_model=ProjectList, summary="The caller's projects")
def get_projects(tenant: TenantDep, session: SessionDep, limit: Limit = 50, cursor: Cursor = None) -> ProjectList:
    offset = decode_cursor(cursor)
    projects, total = list_projects(session, tenant, offset, limit)
    return ProjectList(projects=[ProjectOut(**project_summary(session, p)) for p in projects],
                       next_cursor=next_cursor(offset, limit, total))  # fmt: skip


@router.get("/{project_id}", response_model=ProjectOut, summary="One project")
def get_project(project_id: str, tenant: TenantDep, session: SessionDep) -> ProjectOut:
    return ProjectOut(**project_summary(session, project_for_tenant(session, tenant, project_id)))


@router.get("/{project_id}/themes", response_model=ThemesPage, summary="The project's current themes")
def get_project_themes(
    project_id: str,
    tenant: TenantDep,
    session: SessionDep,
    limit: Limit = 50,
    cursor: Cursor = None,
    sort: Literal["size", "sentiment"] = "size",
    order: Literal["asc", "desc"] = "desc",
    include_hidden: IncludeHidden = False,
    segment: SegmentDep = Segment(),
) -> ThemesPage:
    job = current_job(session, tenant, project_id)
    offset = decode_cursor(cursor)
    themes, total, described = themes_page(session, job, sort, order, offset, limit, include_hidden, segment)
    return ThemesPage(metadata=page_metadata(job, total, described), themes=themes,
                      next_cursor=next_cursor(offset, limit, total))  # fmt: skip


@router.get("/{project_id}/themes/{theme_id}", response_model=ThemeDetail, summary="A theme with its member comments")
def get_theme(
    project_id: str, theme_id: NodeId, tenant: TenantDep, session: SessionDep, limit: Limit = 50,
    cursor: Cursor = None, segment: SegmentDep = Segment(),
) -> ThemeDetail:  # fmt: skip
    job = current_job(session, tenant, project_id)
    theme = theme_detail(session, job, theme_id, segment=segment)
    offset = decode_cursor(cursor)
    members, total = theme_members(session, job.id, theme_id, offset, limit, segment)
    return ThemeDetail(theme=theme, members=[Member(**m) for m in members],
                       next_cursor=next_cursor(offset, limit, total))  # fmt: skip


@router.patch("/{project_id}/themes/{theme_id}", summary="Rename or hide/show a theme (kept for the project)")
def patch_theme(
    project_id: str, theme_id: NodeId, edit: Annotated[ThemeEditIn, Body()], tenant: TenantDep, session: SessionDep
) -> dict[str, Any]:
    job = current_job(session, tenant, project_id)
    theme = edit_theme(session, job, theme_id, edit.model_dump(exclude_unset=True))
    publish_reporting(session, project_id, EDITED_TABLES)
    session.commit()  # before the answer: the session dependency would commit only after it is sent
    return theme


@router.post("/{project_id}/themes/{theme_id}/merge", summary="Merge other themes into this one")
def post_merge(
    project_id: str, theme_id: NodeId, merge: Annotated[MergeIn, Body()], tenant: TenantDep, session: SessionDep
) -> dict[str, Any]:
    job = current_job(session, tenant, project_id)
    theme = merge_themes(session, job, theme_id, sorted(set(merge.themes)))
    publish_reporting(session, project_id, EDITED_TABLES)
    session.commit()  # before the answer: the session dependency would commit only after it is sent
    return theme


@router.post("/{project_id}/themes/{theme_id}/unmerge", summary="Show a merged theme on its own again")
def post_unmerge(project_id: str, theme_id: NodeId, tenant: TenantDep, session: SessionDep) -> dict[str, Any]:
    job = current_job(session, tenant, project_id)
    theme = unmerge_theme(session, job, theme_id)
    publish_reporting(session, project_id, EDITED_TABLES)
    session.commit()  # before the answer: the session dependency would commit only after it is sent
    return theme


@router.get("/{project_id}/edits", response_model=list[ThemeEditOut], summary="The project's theme edits")
def get_edits(project_id: str, tenant: TenantDep, session: SessionDep) -> list[dict[str, Any]]:
    return list_edits(session, project_for_tenant(session, tenant, project_id).id)


@router.get("/{project_id}/trends", response_model=TrendsOut, summary="Each theme's comments and share per period")
def get_trends(project_id: str, tenant: TenantDep, session: SessionDep,
               level: Annotated[int, Query(ge=1, le=3, description="1: categories, 2: themes, 3: sub-themes")] = 2,
               segment: SegmentDep = Segment()) -> dict[str, Any]:  # fmt: skip
    return theme_trends_view(session, current_job(session, tenant, project_id), (level,), segment)


@router.get("/{project_id}/stats", response_model=StatsOut, summary="Comments by sentiment, and ratings")
def get_stats(project_id: str, tenant: TenantDep, session: SessionDep, segment: SegmentDep = Segment()) -> dict[str, Any]:
    return project_stats(session, project_for_tenant(session, tenant, project_id), segment)
