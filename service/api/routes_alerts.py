"""``/v1/projects/{project_id}/alerts``: what changed in a project's newest comments, computed after each job
(``worker/pipeline/alerts.py``), newest first."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from service.api.deps import SessionDep, TenantDep
from service.api.pagination import decode_cursor, next_cursor
from service.storage.alerts import list_alerts
from service.storage.tenancy import project_for_tenant

router = APIRouter(prefix="/v1/projects", tags=["alerts"])
Kind = Literal["new_theme", "spike", "sentiment_drop"]


class AlertTheme(BaseModel):
    id: int
    level: int | None = Field(description="2: a theme, 3: a sub-theme")
    name: str | None = Field(description="the node's name as the project shows it now (renames apply)")


class AlertOut(BaseModel):
    id: int
    kind: Kind
    window: Literal["batch", "day", "week"] = Field(description="batch: this job's upload against earlier ones; "
                                                    "day / week: the last day / 7 days of dates against before")  # fmt: skip
    theme: AlertTheme | None
    title: str
    figures: dict[str, Any] = Field(description="count, n, share, baseline_count, baseline_n, baseline_share, lift, "
                                    "sentiment_mean, baseline_sentiment, p_value, q_value (and window_start, "
                                    "window_end for a date window)")  # fmt: skip
    examples: list[dict[str, Any]] = Field(description="up to 3 comments of the window in the node: doc_id, text")
    created_at: datetime
    project_id: str
    job_id: str


class AlertsPage(BaseModel):
    alerts: list[AlertOut]
    next_cursor: str | None


@router.get("/{project_id}/alerts", response_model=AlertsPage, summary="The project's alerts, newest first")
def get_alerts(project_id: str, tenant: TenantDep, session: SessionDep,
               kind: Annotated[Kind | None, Query(description="Only alerts of this kind")] = None,
               since: Annotated[datetime | None, Query(description="Only alerts made at or after this time "
                                                       "(ISO 8601)")] = None,
               limit: Annotated[int, Query(ge=1, le=500)] = 50,
               cursor: Annotated[str | None, Query(max_length=40)] = None) -> AlertsPage:  # fmt: skip
    project = project_for_tenant(session, tenant, project_id)
    offset = decode_cursor(cursor)
    alerts, total = list_alerts(session, project.id, kind, since, offset, limit)
    return AlertsPage(alerts=[AlertOut(**a) for a in alerts], next_cursor=next_cursor(offset, limit, total))
