"""Request and response bodies of the API."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

JobStatus = Literal["queued", "running", "succeeded", "failed"]


class FeedbackItem(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(max_length=1_000_000)
    rating: float | None = None
    date: str | None = Field(None, max_length=100)
    id: str | None = Field(None, max_length=200)


class FeedbackBatch(BaseModel):
    """A batch of feedback sent by another system."""

    model_config = ConfigDict(extra="forbid")
    project: str | None = Field(None, max_length=32)
    items: list[FeedbackItem] = Field(min_length=1, max_length=1_000_000)


class JobCreated(BaseModel):
    id: str
    status: JobStatus
    project_id: str


class JobOut(BaseModel):
    id: str
    project_id: str
    status: JobStatus
    stage: str | None
    progress: float = Field(ge=0, le=1)
    counts: dict[str, Any]
    error: dict[str, Any] | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class ProjectOut(BaseModel):
    id: str
    name: str | None
    created_at: datetime
    current_job_id: str | None
    n_documents: int
    n_themes: int
    jobs: int


class ProjectList(BaseModel):
    projects: list[ProjectOut]
    next_cursor: str | None


class ThemesPage(BaseModel):
    """The ``themes.json`` schema, one page of themes at a time."""

    metadata: dict[str, Any]
    themes: list[dict[str, Any]]
    next_cursor: str | None


class GroupsPage(BaseModel):
    """The ``groups`` of ``themes.json``, one page at a time: broader subjects and sub-themes (``kind``: ``union``,
    ``broader`` or ``sub_theme``), each listing the ids of the themes it spans."""

    metadata: dict[str, Any]
    groups: list[dict[str, Any]]
    next_cursor: str | None


class Member(BaseModel):
    doc_id: str
    text: str
    activation: float
    sentiment_score: float | None
    sentiment_label: str | None
    rating: float | None


class ThemeDetail(BaseModel):
    theme: dict[str, Any]
    members: list[Member]
    next_cursor: str | None
