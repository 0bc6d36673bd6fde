"""The theme tree of a project (its current job) or of a finished job: ``/tree`` (nested, compact),
``/nodes/{node_id}`` (one node, its full record) and ``/nodes/{node_id}/children``; and the ``/groups`` endpoints that
the tree replaced (410 Gone)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from service.api.deps import NodeId, SessionDep, TenantDep
from service.api.errors import ProblemError
from service.api.schemas import NodeChildren, ThemeRecord, TreePage
from service.api.segments import SegmentDep
from service.storage.jobs import finished_job, page_metadata
from service.storage.models import Job
from service.storage.segments import Segment
from service.storage.tenancy import current_job, job_for_tenant, project_for_tenant
from service.storage.themes import node_children, theme_detail, theme_tree

projects = APIRouter(prefix="/v1/projects", tags=["projects"])
jobs = APIRouter(prefix="/v1/jobs", tags=["jobs"])
IncludeHidden = Annotated[bool, Query(description="Include hidden nodes and their descendants (flagged `hidden`)")]
GROUPS_GONE = "theme groups were replaced by the theme tree: GET {}/tree (categories, themes, sub-themes)"


def tree_page(session: SessionDep, job: Job, include_hidden: bool, segment: Segment) -> TreePage:
    categories, described = theme_tree(session, job, include_hidden, segment)
    return TreePage(metadata=page_metadata(job, 0, described), categories=categories)


def children_page(session: SessionDep, job: Job, node_id: int, include_hidden: bool, segment: Segment) -> NodeChildren:
    children, described = node_children(session, job, node_id, include_hidden, segment)
    return NodeChildren(metadata=page_metadata(job, 0, described), node_id=node_id, children=children)


@projects.get("/{project_id}/tree", response_model=TreePage, summary="The project's current theme tree")
def get_project_tree(project_id: str, tenant: TenantDep, session: SessionDep,
                     include_hidden: IncludeHidden = False, segment: SegmentDep = Segment()) -> TreePage:  # fmt: skip
    return tree_page(session, current_job(session, tenant, project_id), include_hidden, segment)


@projects.get("/{project_id}/nodes/{node_id}", response_model=ThemeRecord, summary="One node of the theme tree")
def get_project_node(project_id: str, node_id: NodeId, tenant: TenantDep, session: SessionDep,
                     segment: SegmentDep = Segment()) -> dict:  # fmt: skip
    return theme_detail(session, current_job(session, tenant, project_id), node_id, segment=segment)


@projects.get("/{project_id}/nodes/{node_id}/children", response_model=NodeChildren,
              summary="A node's children in the theme tree")  # fmt: skip
def get_project_node_children(project_id: str, node_id: NodeId, tenant: TenantDep, session: SessionDep,
                              include_hidden: IncludeHidden = False, segment: SegmentDep = Segment()) -> NodeChildren:  # fmt: skip
    return children_page(session, current_job(session, tenant, project_id), node_id, include_hidden, segment)


@projects.get("/{project_id}/groups", include_in_schema=False)
def get_project_groups(project_id: str, tenant: TenantDep, session: SessionDep) -> None:
    project = project_for_tenant(session, tenant, project_id)
    raise ProblemError(410, GROUPS_GONE.format(f"/v1/projects/{project.id}"), "groups-replaced-by-tree")


@jobs.get("/{job_id}/tree", response_model=TreePage, summary="The theme tree as of this job")
def get_job_tree(job_id: str, tenant: TenantDep, session: SessionDep,
                 include_hidden: IncludeHidden = False, segment: SegmentDep = Segment()) -> TreePage:  # fmt: skip
    return tree_page(session, finished_job(session, tenant, job_id), include_hidden, segment)


@jobs.get("/{job_id}/nodes/{node_id}", response_model=ThemeRecord, summary="One node of the theme tree of this job")
def get_job_node(job_id: str, node_id: NodeId, tenant: TenantDep, session: SessionDep,
                 segment: SegmentDep = Segment()) -> dict:  # fmt: skip
    return theme_detail(session, finished_job(session, tenant, job_id), node_id, segment=segment)


@jobs.get("/{job_id}/nodes/{node_id}/children", response_model=NodeChildren,
          summary="A node's children in the theme tree of this job")  # fmt: skip
def get_job_node_children(job_id: str, node_id: NodeId, tenant: TenantDep, session: SessionDep,
                          include_hidden: IncludeHidden = False, segment: SegmentDep = Segment()) -> NodeChildren:  # fmt: skip
    return children_page(session, finished_job(session, tenant, job_id), node_id, include_hidden, segment)


@jobs.get("/{job_id}/groups", include_in_schema=False)
def get_job_groups(job_id: str, tenant: TenantDep, session: SessionDep) -> None:
    job = job_for_tenant(session, tenant, job_id)
    raise ProblemError(410, GROUPS_GONE.format(f"/v1/jobs/{job.id}"), "groups-replaced-by-tree")
