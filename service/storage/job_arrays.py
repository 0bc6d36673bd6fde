"""A finished job's memberships and comments as arrays, kept in memory per process, so that a segment's figures are
counted with numpy rather than by aggregating every membership in SQL for each request.

A job's memberships never change once it has succeeded; the comments it covers do when another job of its project
starts (that job's uploaded comments are left out until it ends, and comments it replaces go): the cache key holds
the project's pending jobs, so such a change loads the arrays again. Edits (merges, hides) are applied by the caller
at query time. Loading a 100k-comment job takes a few seconds once per process; the cache keeps the last
``MAX_JOBS`` jobs.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd
from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from service.storage.models import Document, DocumentTheme, Job

MAX_JOBS = 4


@dataclass
class JobArrays:
    """The comments a job covers (sorted by database id) and its memberships (one entry per node and comment)."""

    document_ids: np.ndarray  # int64, sorted
    rating: np.ndarray  # float64 per comment, NaN without one
    score: np.ndarray  # float64 per comment: its own sentiment score (NaN when unscored)
    date: np.ndarray  # datetime64[ns] per comment (UTC, naive), NaT without one
    node: np.ndarray  # int64 per membership: the node id
    row: np.ndarray  # int64 per membership: the comment's position in document_ids
    sentiment: np.ndarray  # float64 per membership: the comment's sentiment in the node

    def positions(self, document_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Where each given database id is (or would be) among the job's comments, and whether the job covers it."""
        ids = np.asarray(document_ids, dtype=np.int64)
        at = np.searchsorted(self.document_ids, ids)
        if not len(self.document_ids):
            return at, np.zeros(len(ids), dtype=bool)
        last = len(self.document_ids) - 1
        return at, (at <= last) & (self.document_ids[np.minimum(at, last)] == ids)

    def rows_of(self, document_ids: np.ndarray) -> np.ndarray:
        """Positions of the given database ids among the job's comments (ids it does not cover are dropped)."""
        at, found = self.positions(document_ids)
        return at[found]

    def mask_of(self, document_ids: np.ndarray) -> np.ndarray:
        mask = np.zeros(len(self.document_ids), dtype=bool)
        mask[self.rows_of(document_ids)] = True
        return mask


_CACHE: OrderedDict[tuple, JobArrays] = OrderedDict()
_LOCK = threading.Lock()


def other_pending_jobs(job: Job) -> Select:
    """The ids of the project's other jobs still being ingested or analysed: their comments are not the job's."""
    return select(Job.id).where(Job.project_id == job.project_id, Job.id != job.id,
                                Job.status.in_(("queued", "running")))  # fmt: skip


def pending_jobs(session: Session, job: Job) -> tuple[str, ...]:
    return tuple(sorted(session.scalars(other_pending_jobs(job))))


def job_arrays(session: Session, job: Job) -> JobArrays:
    """The job's arrays, from the cache or loaded now."""
    pending = pending_jobs(session, job)
    key = (str(session.get_bind().url), job.id, pending)
    with _LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
    arrays = load_job_arrays(session, job, pending)
    with _LOCK:
        _CACHE[key] = arrays
        while len(_CACHE) > MAX_JOBS:
            _CACHE.popitem(last=False)
    return arrays


def load_job_arrays(session: Session, job: Job, pending: tuple[str, ...]) -> JobArrays:
    docs = session.execute(
        select(Document.id, Document.rating, Document.sentiment_score, Document.date)
        .where(Document.project_id == job.project_id, Document.job_id.not_in(pending)).order_by(Document.id)
    ).all()  # fmt: skip
    document_ids = np.fromiter((d[0] for d in docs), dtype=np.int64, count=len(docs))
    rating = np.array([np.nan if d[1] is None else d[1] for d in docs], dtype=np.float64)
    score = np.array([np.nan if d[2] is None else d[2] for d in docs], dtype=np.float64)
    date = pd.to_datetime(pd.Series([naive_utc(d[3]) for d in docs], dtype=object)).to_numpy(dtype="datetime64[ns]")
    links = session.execute(select(DocumentTheme.theme_id, DocumentTheme.document_id, DocumentTheme.sentiment)
                            .where(DocumentTheme.job_id == job.id)).all()  # fmt: skip
    node = np.fromiter((r[0] for r in links), dtype=np.int64, count=len(links))
    ids = np.fromiter((r[1] for r in links), dtype=np.int64, count=len(links))
    at = np.searchsorted(document_ids, ids)
    covered = (at < len(document_ids)) & (document_ids[np.minimum(at, max(0, len(document_ids) - 1))] == ids) \
        if len(document_ids) else np.zeros(len(ids), dtype=bool)  # fmt: skip
    sentiment = np.array([np.nan if r[2] is None else r[2] for r in links], dtype=np.float64)
    node, row, sentiment = node[covered], at[covered], sentiment[covered]
    sentiment = np.where(np.isnan(sentiment), np.nan_to_num(score[row]), sentiment)  # stored before it was kept: the comment's
    return JobArrays(document_ids, rating, score, date, node, row, sentiment)


def naive_utc(value: datetime | None) -> datetime | None:
    """A datetime in UTC without its zone (a naive one is taken as UTC), as the arrays hold dates."""
    if value is None or value.tzinfo is None:
        return value
    return value.replace(tzinfo=None) - value.utcoffset()


def forget(job_id: str | None = None) -> None:
    """Drop a job's arrays (all, without an id): tests and processes that rewrite a job's rows."""
    with _LOCK:
        for key in [k for k in _CACHE if job_id is None or k[1] == job_id]:
            del _CACHE[key]
