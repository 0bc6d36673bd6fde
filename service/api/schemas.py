"""Request and response bodies of the API."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer

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


# Character offsets: positions in the comment's text counted in Unicode code points (Python's str indices), so
# ``text[start:end]`` is the span; JavaScript strings count UTF-16 units (``Array.from(text)`` counts code points).
OFFSETS = "character offsets in the comment's text, in Unicode code points: the span is text[start:end]"


class StoredRecord(BaseModel):
    """A record stored as JSON, passed through as stored: fields it lacks (a record of an older version) are left
    out rather than sent as null, and fields not declared here are kept, in their order."""

    model_config = ConfigDict(extra="allow")

    # No return annotation: the response's JSON schema stays the model's (one would replace it).
    @model_serializer(mode="wrap")
    def _as_stored(self, handler: SerializerFunctionWrapHandler):  # type: ignore[no-untyped-def]
        data = handler(self)
        return {k: v for k, v in data.items() if k in self.model_fields_set or k not in type(self).model_fields}


class ExampleSpan(BaseModel):
    """The span (sentence) of an example comment that carries the theme."""

    index: int = Field(description="the span's position among the comment's spans, from 0")
    start: int = Field(description=OFFSETS)
    end: int
    text: str


class Example(StoredRecord):
    """One of a theme's examples: a whole comment, its activation and the span that carries the theme."""

    doc_id: str
    text: str
    activation: float
    span: ExampleSpan | None = Field(None, description="absent in results stored before spans were kept")


class ThemeRecord(StoredRecord):
    """A theme (or a theme group) in the ``themes.json`` schema, with what the service adds (``first_seen_job``,
    ``is_new``, ``impact``, ``emerging``, ``merged``, ``hidden``, ``original_label``; a group's ``level``, ``kind``,
    ``themes``). Fields a record stored by an older version lacks are left out."""

    id: int
    label: str
    keywords: list[str] = []
    size: int = Field(0, description="comments")
    share: float = Field(0.0, description="of all comments")
    span_count: int | None = Field(None, description="spans (sentences) carrying the theme; absent in results "
                                   "stored before spans were counted")  # fmt: skip
    sentiment: dict[str, Any] = {}
    rating: dict[str, Any] | None = None
    cohesion: float | None = None
    examples: list[Example] = []
    features: list[int] = []


class ThemesPage(BaseModel):
    """The ``themes.json`` schema, one page of themes at a time."""

    metadata: dict[str, Any]
    themes: list[ThemeRecord]
    next_cursor: str | None


class GroupsPage(BaseModel):
    """The ``groups`` of ``themes.json``, one page at a time: broader subjects and sub-themes (``kind``: ``union``,
    ``broader`` or ``sub_theme``), each listing the ids of the themes it spans."""

    metadata: dict[str, Any]
    groups: list[ThemeRecord]
    next_cursor: str | None


class MemberSpan(BaseModel):
    """A span (sentence) of a member comment that carries the theme."""

    index: int = Field(description="the span's position among the comment's spans, from 0")
    start: int = Field(description=OFFSETS)
    end: int
    activation: float


class Member(BaseModel):
    doc_id: str
    text: str
    activation: float
    sentiment_score: float | None
    sentiment_label: str | None
    rating: float | None
    spans: list[MemberSpan] = Field(default_factory=list, description="the comment's spans that carry the theme, in "
                                    "comment order (empty for results stored before spans were kept)")  # fmt: skip


class ThemeDetail(BaseModel):
    theme: ThemeRecord
    members: list[Member]
    next_cursor: str | None
