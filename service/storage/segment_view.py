"""A job's tree seen through a segment: each shown node's size, share, sentiment, rating and examples over the
segment's comments only, laid over the node's record. The segment's comments are found in SQL (metadata conditions
on ``document_attributes``), the figures counted with numpy over the job's cached arrays
(:mod:`service.storage.job_arrays`). Impact is the whole project's (``null`` here); keywords, name, cohesion and the
trend flag stay the whole project's too."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.storage.job_arrays import JobArrays, job_arrays, naive_utc
from service.storage.models import Document, Job
from service.storage.segments import Segment, condition_sets, date_bounds, matching_ids
from service.storage.theme_view import JobView

NEUTRAL_BAND = 0.05  # as worker.pipeline.sentiment labels scores
DIGITS = 4


@dataclass
class SegmentFigures:
    """Per shown node (root), its figures over the segment's comments (``mask`` over the job's comments)."""

    segment: Segment
    arrays: JobArrays
    mask: np.ndarray
    nodes: dict[int, dict[str, Any]]

    @property
    def n_documents(self) -> int:
        return int(self.mask.sum())

    def metadata(self) -> dict[str, Any]:
        return {**self.segment.describe(), "n_documents": self.n_documents}

    def overlay(self, record: dict[str, Any], inside: set[str]) -> dict[str, Any]:
        """The node's record with the segment's figures (size 0 when no comment of the segment is a member) and its
        examples that are in the segment (``inside``: their doc ids)."""
        figures = self.nodes.get(record["id"]) or empty_figures()
        examples = [e for e in record.get("examples", []) if e.get("doc_id") in inside]
        return {**record, **figures, "share": round(figures["size"] / max(1, self.n_documents), DIGITS),
                "examples": examples, "impact": None}  # fmt: skip

    def examples_inside(self, session: Session, job: Job, records: list[dict[str, Any]]) -> set[str]:
        """The doc ids of the records' examples that are in the segment."""
        doc_ids = sorted({e["doc_id"] for r in records for e in r.get("examples", [])})
        if not doc_ids:
            return set()
        found = session.execute(select(Document.doc_id, Document.id).where(Document.project_id == job.project_id,
                                                                           Document.doc_id.in_(doc_ids))).all()  # fmt: skip
        rows = self.arrays.rows_of(np.array([i for _, i in found], dtype=np.int64))
        inside_ids = set(self.arrays.document_ids[rows[self.mask[rows]]].tolist())
        return {doc_id for doc_id, i in found if i in inside_ids}


def empty_figures() -> dict[str, Any]:
    return {"size": 0, "sentiment": {"mean": 0.0, "negative": 0.0, "neutral": 0.0, "positive": 0.0}, "rating": None}


def segment_mask(session: Session, job: Job, arrays: JobArrays, segment: Segment) -> np.ndarray:
    """Which of the job's comments are in the segment."""
    mask = np.ones(len(arrays.document_ids), dtype=bool)
    start, end = date_bounds(segment)
    if start is not None:
        mask &= arrays.date >= _moment(start)
    if end is not None:
        bound, inclusive = end
        mask &= arrays.date <= _moment(bound) if inclusive else arrays.date < _moment(bound)
    among, excluded = matching_ids(condition_sets(session, job.project_id, segment))
    if among is not None:
        mask &= arrays.mask_of(_ids(session, among))
    if excluded is not None:
        mask &= ~arrays.mask_of(_ids(session, excluded))
    return mask


def _ids(session: Session, query: Any) -> np.ndarray:
    return np.fromiter((i for (i,) in session.execute(query)), dtype=np.int64)


def _moment(value: datetime) -> np.datetime64:
    """A datetime as the arrays hold dates (naive UTC)."""
    return np.datetime64(naive_utc(value), "ns")


def shown_nodes(view: JobView, node: np.ndarray) -> np.ndarray:
    """Per membership, the node it is shown as (a merged node's: the node it was merged into)."""
    ids = np.unique(node)
    return np.array([view.root_of.get(int(i), int(i)) for i in ids], dtype=np.int64)[np.searchsorted(ids, node)]


def segment_figures(session: Session, job: Job, view: JobView, segment: Segment,
                    mask: np.ndarray | None = None) -> SegmentFigures:  # fmt: skip
    """Every shown node's figures over the segment (``mask``: its comments when given otherwise, as the rest of
    another segment); a merged node's comments count once for the node shown."""
    arrays = job_arrays(session, job)
    mask = segment_mask(session, job, arrays, segment) if mask is None else mask
    return SegmentFigures(segment, arrays, mask, node_figures(arrays, view, mask))


def node_figures(arrays: JobArrays, view: JobView, mask: np.ndarray) -> dict[int, dict[str, Any]]:
    """Size, sentiment and rating per shown node over the comments in ``mask``."""
    chosen = mask[arrays.row]
    node, row, score = arrays.node[chosen], arrays.row[chosen], arrays.sentiment[chosen]
    if not len(node):
        return {}
    roots = shown_nodes(view, node)
    shown, index = np.unique(roots, return_inverse=True)
    if len(shown) < len(np.unique(node)):  # merged nodes: each comment once per node shown
        _, first = np.unique(index.astype(np.int64) * len(arrays.document_ids) + row, return_index=True)
        index, row, score = index[first], row[first], score[first]
    size = np.bincount(index, minlength=len(shown))
    total = np.bincount(index, weights=score, minlength=len(shown))
    negative = np.bincount(index, weights=score <= -NEUTRAL_BAND, minlength=len(shown))
    positive = np.bincount(index, weights=score >= NEUTRAL_BAND, minlength=len(shown))
    rating = arrays.rating[row]
    rated = ~np.isnan(rating)
    rating_sum = np.bincount(index[rated], weights=rating[rated], minlength=len(shown))
    rating_count = np.bincount(index[rated], minlength=len(shown))
    out = {}
    for i, node_id in enumerate(shown.tolist()):
        n, neg, pos = int(size[i]), negative[i] / size[i], positive[i] / size[i]
        out[node_id] = {
            "size": n,
            "sentiment": {"mean": round(float(total[i] / n), DIGITS), "negative": round(float(neg), DIGITS),
                          "neutral": round(float(max(0.0, 1 - neg - pos)), DIGITS), "positive": round(float(pos), DIGITS)},
            "rating": ({"mean": round(float(rating_sum[i] / rating_count[i]), DIGITS), "count": int(rating_count[i])}
                       if rating_count[i] else None),
        }  # fmt: skip
    return out


def apply_segment(session: Session, job: Job, view: JobView, records: list[dict[str, Any]], segment: Segment | None,
                  keep_empty: bool = False) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:  # fmt: skip
    """The records with the segment's figures (those with no member in the segment left out unless
    ``keep_empty``), and the segment's description for the page's metadata; the records as they are without a
    segment."""
    if not segment:
        return records, None
    figures = segment_figures(session, job, view, segment)
    kept = [r for r in records if keep_empty or figures.nodes.get(r["id"], {}).get("size")]
    inside = figures.examples_inside(session, job, kept)
    return [figures.overlay(r, inside) for r in kept], figures.metadata()
