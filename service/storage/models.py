"""Database tables. The job row is the truth about a job; themes and memberships are stored per job."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from service.storage.types import UTCDateTime


def new_id() -> str:
    return uuid.uuid4().hex


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON, datetime: UTCDateTime()}


class Tenant(Base):
    __tablename__ = "tenants"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiKey(Base):
    __tablename__ = "api_keys"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(12))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class Project(Base):
    __tablename__ = "projects"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    name: Mapped[str | None] = mapped_column(String(200), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    current_job_id: Mapped[str | None] = mapped_column(String(32), default=None)
    sae_path: Mapped[str | None] = mapped_column(Text, default=None)


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (UniqueConstraint("tenant_id", "idempotency_key", name="uq_jobs_idempotency"),
                      Index("ix_jobs_status_heartbeat", "status", "heartbeat_at"))  # fmt: skip
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    stage: Mapped[str | None] = mapped_column(String(16), default=None)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    counts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    source: Mapped[str] = mapped_column(Text)  # path of the stored upload (CSV or JSON items)
    source_kind: Mapped[str] = mapped_column(String(8))  # csv | json
    columns: Mapped[dict[str, Any]] = mapped_column(default=dict)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), default=None)
    payload_hash: Mapped[str | None] = mapped_column(String(64), default=None)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)  # themes.json metadata
    n_chunks: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    # Liveness (worker/watchdog.py): touched while a task works on the job; a queued or running job whose heartbeat
    # stops is re-queued from its stored state by the watchdog.
    heartbeat_at: Mapped[datetime | None] = mapped_column(default=utcnow)
    owner: Mapped[str | None] = mapped_column(String(64), default=None)  # task id holding the ingest or analysis
    redrives: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    analyze_sent_at: Mapped[datetime | None] = mapped_column(default=None)  # every chunk done, analysis queued
    # the upload's metadata columns (every column but text, rating, date and id that was kept), typed over this
    # upload's rows: [{"name", "type", "distinct_values", "filled"}] (worker/pipeline/metadata.py)
    metadata_columns: Mapped[list[Any]] = mapped_column(default=list)


class JobChunk(Base):
    """An embedding chunk of a job that is done (its texts are in the embedding cache)."""

    __tablename__ = "job_chunks"
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    chunk: Mapped[int] = mapped_column(Integer, primary_key=True)


class Document(Base):
    __tablename__ = "documents"
    __table_args__ = (UniqueConstraint("project_id", "doc_id", name="uq_documents_doc_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    job_id: Mapped[str] = mapped_column(String(32), index=True)
    doc_id: Mapped[str] = mapped_column(String(200))
    text: Mapped[str] = mapped_column(Text)
    rating: Mapped[float | None] = mapped_column(Float, default=None)
    date: Mapped[datetime | None] = mapped_column(default=None)
    sentiment_score: Mapped[float | None] = mapped_column(Float, default=None)
    sentiment_label: Mapped[str | None] = mapped_column(String(8), default=None)


class DocumentAttribute(Base):
    """A metadata value of a comment (a column of its upload that is not its text, rating, date or id): the cell as
    text, and as a number and as a date where it reads as one (the column's type, ``ProjectColumn.type``, decides
    which a filter uses)."""

    __tablename__ = "document_attributes"
    __table_args__ = (Index("ix_document_attributes_lookup", "project_id", "name", "value"),
                      Index("ix_document_attributes_number", "project_id", "name", "number"))  # fmt: skip
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(32))
    value: Mapped[str] = mapped_column(String(500))
    number: Mapped[float | None] = mapped_column(Float, default=None)
    date: Mapped[datetime | None] = mapped_column(default=None)


class ProjectColumn(Base):
    """A metadata column of a project, typed over every comment of the project (worker/pipeline/metadata.py):
    ``category``, ``number``, ``date`` or ``text`` (too many distinct values to be a segment)."""

    __tablename__ = "project_columns"
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, default=0)  # order of first appearance
    type: Mapped[str] = mapped_column(String(16))
    distinct_values: Mapped[int] = mapped_column(Integer, default=0)
    filled: Mapped[int] = mapped_column(Integer, default=0)  # comments with a value
    segment: Mapped[bool] = mapped_column(Boolean, default=True)  # offered as a segment filter


class Embedding(Base):
    """Embedding cache shared by every worker: key = sha256(model, text)."""

    __tablename__ = "embeddings"
    key: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    dim: Mapped[int] = mapped_column(Integer)
    vector: Mapped[bytes] = mapped_column(LargeBinary)


# ThemeRow.level: the levels of the theme tree, as worker.pipeline.tree numbers them (a copy: storage never loads the
# tree stage, which trains an SAE; tests/test_tree_storage.py checks that they agree)
LEVEL_CATEGORY, LEVEL_THEME, LEVEL_SUB_THEME = 1, 2, 3
LEVELS = (LEVEL_CATEGORY, LEVEL_THEME, LEVEL_SUB_THEME)


class ThemeRow(Base):
    """A node of a job's theme tree: a category (level 1), a theme (level 2, its id an SAE feature) or a sub-theme
    (level 3); ``theme_id`` is the node id (id ranges: ``worker.pipeline.tree``), ``parent_id`` its parent's."""

    __tablename__ = "themes"
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    theme_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[str] = mapped_column(String(32), index=True)
    level: Mapped[int] = mapped_column(Integer, default=2, server_default="2")
    parent_id: Mapped[int | None] = mapped_column(Integer, default=None)
    label: Mapped[str] = mapped_column(Text)
    size: Mapped[int] = mapped_column(Integer)
    sentiment_mean: Mapped[float] = mapped_column(Float)
    first_seen_job: Mapped[str] = mapped_column(String(32))
    record: Mapped[dict[str, Any]] = mapped_column()  # the node in the themes.json schema
    # After the project's edits and the impact/trend analysis (see derived.refresh_derived): impact, emerging and,
    # for a theme that others were merged into, its merged size, sentiment, rating, examples; {"merged_into": id} for
    # a theme merged into another. ``size`` and ``sentiment_mean`` above follow it (they order the lists).
    derived: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)


class DocumentTheme(Base):
    """A comment's membership of a node of every level (a category's: the union of its themes' members, the highest
    activation)."""

    __tablename__ = "document_themes"
    __table_args__ = (Index("ix_document_themes_job_theme", "job_id", "theme_id", "activation"),)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    theme_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"), primary_key=True)
    activation: Mapped[float] = mapped_column(Float)
    # the comment's sentiment in this node (its carrying spans and the whole comment; null: stored before it was
    # kept, read as the comment's own score)
    sentiment: Mapped[float | None] = mapped_column(Float, default=None)


class SpanTheme(Base):
    """A span (sentence) of a comment that carries a theme or a sub-theme (a category's spans are its themes'): its
    index in the comment, its character offsets ``[span_start, span_end)`` in the comment's text, and its activation
    (``document_themes`` holds the comment's)."""

    __tablename__ = "span_themes"
    __table_args__ = (Index("ix_span_themes_job_theme", "job_id", "theme_id", "activation"),)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    theme_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"), primary_key=True)
    span_index: Mapped[int] = mapped_column(Integer, primary_key=True)
    span_start: Mapped[int] = mapped_column(Integer)
    span_end: Mapped[int] = mapped_column(Integer)
    activation: Mapped[float] = mapped_column(Float)


class ThemeEdit(Base):
    """A person's edit of a node (``theme_id``: its id, any level), kept per project across jobs: a new name (column
    ``label``), hidden, or merged into another node of its level."""

    __tablename__ = "theme_edits"
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True)
    theme_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    label: Mapped[str | None] = mapped_column(String(200), default=None)
    hidden: Mapped[bool] = mapped_column(Boolean, default=False)
    merged_into: Mapped[int | None] = mapped_column(Integer, default=None)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ThemeTrendRow(Base):
    """A node's comments and share in one period (day, week or month), per job."""

    __tablename__ = "theme_trends"
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    theme_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    period_start: Mapped[Any] = mapped_column(Date, primary_key=True)
    period: Mapped[str] = mapped_column(String(8))
    documents: Mapped[int] = mapped_column(Integer)
    period_documents: Mapped[int] = mapped_column(Integer)
    share: Mapped[float] = mapped_column(Float)


class ReportToken(Base):
    """A read-only token for one project's reports, for tools that only take a URL (stored hashed)."""

    __tablename__ = "report_tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    tenant_id: Mapped[str] = mapped_column(String(32))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(12))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    api_key_id: Mapped[int | None] = mapped_column(Integer, index=True, default=None)  # the key that made it


class Alert(Base):
    """Something a person should know after a job of a project: a new theme, a spike of a theme's share, or a drop
    of its sentiment (worker/pipeline/alerts.py), with its figures and example comments. ``key`` makes recomputing a
    job's alerts idempotent."""

    __tablename__ = "alerts"
    __table_args__ = (UniqueConstraint("project_id", "key", name="uq_alerts_key"),
                      Index("ix_alerts_project_created", "project_id", "created_at"))  # fmt: skip
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    job_id: Mapped[str] = mapped_column(String(32), index=True)
    key: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32))  # new_theme | spike | sentiment_drop
    window: Mapped[str] = mapped_column(String(16))  # batch | day | week
    theme_id: Mapped[int | None] = mapped_column(Integer, default=None)
    level: Mapped[int | None] = mapped_column(Integer, default=None)
    title: Mapped[str] = mapped_column(Text)
    figures: Mapped[dict[str, Any]] = mapped_column(default=dict)
    examples: Mapped[list[Any]] = mapped_column(default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Webhook(Base):
    """An HTTPS endpoint a project sends events to (``events``: ``alert``, ``job.succeeded``, ``job.failed``), in
    ``format`` ``json`` (signed with ``secret``: HMAC-SHA256) or a chat format (``slack``, ``teams``, ``discord``,
    ``google_chat``: sent through apprise)."""

    __tablename__ = "webhooks"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    tenant_id: Mapped[str] = mapped_column(String(32))
    url: Mapped[str] = mapped_column(Text)
    format: Mapped[str] = mapped_column(String(16), default="json")
    events: Mapped[list[Any]] = mapped_column(default=list)
    secret: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class WebhookDelivery(Base):
    """One event for one webhook: sent at most once successfully (unique per webhook and ``event_key``), retried
    with backoff; ``status`` pending | delivered | failed, ``attempts`` so far, the last answer's status or error."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (UniqueConstraint("webhook_id", "event_key", name="uq_webhook_deliveries_event"),
                      Index("ix_webhook_deliveries_status", "status", "created_at"))  # fmt: skip
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    webhook_id: Mapped[str] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"), index=True)
    project_id: Mapped[str] = mapped_column(String(32), index=True)
    event: Mapped[str] = mapped_column(String(32))
    event_key: Mapped[str] = mapped_column(String(200))
    payload: Mapped[dict[str, Any]] = mapped_column()
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_status: Mapped[int | None] = mapped_column(Integer, default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    queued_at: Mapped[datetime | None] = mapped_column(default=None)  # its task sent to the broker
    delivered_at: Mapped[datetime | None] = mapped_column(default=None)
