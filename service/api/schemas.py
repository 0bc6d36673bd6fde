"""Request and response bodies of the API."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer

JobStatus = Literal["queued", "running", "succeeded", "failed"]


MetadataValue = str | int | float | bool | None


class FeedbackItem(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(max_length=1_000_000)
    rating: float | None = None
    date: str | None = Field(None, max_length=100)
    id: str | None = Field(None, max_length=200)
    metadata: dict[str, MetadataValue] | None = Field(None, max_length=100, description="Metadata columns of the "
                                                      "comment (product, channel, country …): name → value")  # fmt: skip


class FeedbackBatch(BaseModel):
    """A batch of feedback sent by another system."""

    model_config = ConfigDict(extra="forbid")
    project: str | None = Field(None, max_length=32)
    items: list[FeedbackItem] = Field(min_length=1, max_length=1_000_000)


class JobCreated(BaseModel):
    id: str
    status: JobStatus
    project_id: str


class MetadataColumn(BaseModel):
    """A metadata column: its type (category, number, date; text: too many distinct values to be a segment), its
    distinct values and filled cells."""

    name: str
    type: Literal["category", "number", "date", "text"]
    distinct_values: int
    filled: int
    segment: bool | None = Field(None, description="offered as a segment filter (in a project's columns)")


class JobOut(BaseModel):
    id: str
    project_id: str
    status: JobStatus
    stage: str | None
    progress: float = Field(ge=0, le=1)
    eta_seconds: float | None = Field(None, description="seconds left, estimated from the progress so far (a running "
                                      "job from 5 % on; else null)")  # fmt: skip
    counts: dict[str, Any]
    metadata_columns: list[MetadataColumn] = Field(default_factory=list, description="this upload's metadata "
                                                   "columns, typed over its rows (once ingested)")  # fmt: skip
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
    columns: list[MetadataColumn] = Field(default_factory=list, description="the project's metadata columns, "
                                          "typed over all its comments")  # fmt: skip


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
    """A node of the theme tree (a category, theme or sub-theme) in the ``themes.json`` schema, with what the service
    adds (``first_seen_job``, ``is_new``, ``impact``, ``emerging``, ``merged``, ``hidden``, ``original_name`` and
    ``original_label``). Fields a record stored by an older version lacks are left out."""

    id: int = Field(description="node id: a theme's is its SAE feature (< 100000), a category's 1000001…, a "
                    "sub-theme's 2000001…")  # fmt: skip
    level: int | None = Field(None, description="1: category, 2: theme, 3: sub-theme")
    parent: int | None = Field(None, description="the parent node's id (null for a category)")
    children: list[int] | None = Field(None, description="the child nodes' ids (a category's themes, a theme's "
                                       "sub-themes)")  # fmt: skip
    name: str | None = Field(None, description="a short phrase naming the node (as shown: renamed if renamed)")
    label: str = Field(description="the same as name (kept for older readers)")
    keywords: list[str] = []
    size: int = Field(0, description="comments")
    share: float = Field(0.0, description="of all comments")
    span_count: int | None = Field(None, description="spans (sentences) carrying the node; absent in results "
                                   "stored before spans were counted")  # fmt: skip
    sentiment: dict[str, Any] = {}
    rating: dict[str, Any] | None = None
    cohesion: float | None = None
    examples: list[Example] = []
    features: list[int] = []


class ThemesPage(BaseModel):
    """The ``themes.json`` schema, one page of themes (level 2) at a time."""

    metadata: dict[str, Any]
    themes: list[ThemeRecord]
    next_cursor: str | None


class TreeNode(BaseModel):
    """A node of the compact tree, with its shown children nested."""

    id: int
    level: int = Field(description="1: category, 2: theme, 3: sub-theme")
    name: str
    keywords: list[str] = Field(description="the first five")
    size: int = Field(description="comments")
    share: float = Field(description="of all comments")
    sentiment_mean: float | None
    rating_mean: float | None
    impact: float | None = Field(None, description="the node's impact on the rating (its coefficient; null without "
                                 "ratings or under a segment)")  # fmt: skip
    emerging: bool = False
    hidden: bool | None = Field(None, description="with include_hidden only")
    children: list[TreeNode] = []

    @model_serializer(mode="wrap")
    def _without_unset_hidden(self, handler: SerializerFunctionWrapHandler):  # type: ignore[no-untyped-def]
        data = handler(self)
        if self.hidden is None:
            data.pop("hidden", None)
        return data


class TreePage(BaseModel):
    """The theme tree as shown: categories (largest first), each with its themes, each with its sub-themes."""

    metadata: dict[str, Any]
    categories: list[TreeNode]


class NodeChildren(BaseModel):
    """A node's shown children (full records, largest first)."""

    metadata: dict[str, Any]
    node_id: int
    children: list[ThemeRecord]


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
