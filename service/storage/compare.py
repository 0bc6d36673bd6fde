"""Two segments compared node by node: each shown node's share of comments and mean sentiment in both, the
difference, and whether the shares differ significantly (a two-proportion test — Pearson's chi-squared on the 2×2
table, without continuity correction, which is the two-sided two-proportion z-test — with the Benjamini–Hochberg
correction across the nodes compared; both from scipy)."""

from __future__ import annotations

from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from service.storage.errors import InvalidInput
from service.storage.models import LEVEL_THEME, Job, ThemeRow
from service.storage.segment_view import segment_figures, segment_mask
from service.storage.segments import Segment
from service.storage.theme_view import job_view

DIGITS = 4


def two_proportion_p(count_a: int, n_a: int, count_b: int, n_b: int) -> float:
    """Two-sided p-value that two shares differ (1.0 when a margin is empty: nothing to test)."""
    from scipy.stats import chi2_contingency

    table = np.array([[count_a, n_a - count_a], [count_b, n_b - count_b]], dtype=float)
    if (table.sum(axis=0) == 0).any() or (table.sum(axis=1) == 0).any():
        return 1.0
    return float(chi2_contingency(table, correction=False).pvalue)


def adjusted(p_values: list[float]) -> list[float]:
    """Benjamini–Hochberg adjusted p-values (q-values)."""
    from scipy.stats import false_discovery_control

    return [float(q) for q in false_discovery_control(p_values, method="bh")] if p_values else []


def compare_segments(session: Session, job: Job, a: Segment, b: Segment | None, level: int = LEVEL_THEME,
                     alpha: float = 0.05) -> dict[str, Any]:  # fmt: skip
    """The shown nodes of ``level`` in segment ``a`` and in ``b`` (None: every other comment of the job), with
    shares, sentiment, differences (a − b), p- and q-values; most significant first."""
    if not a:
        raise InvalidInput("compare needs segment a: give a=column=value (or a_from/a_to)", "bad-segment")
    view = job_view(session, job)
    shown = view.at_level(level)
    side_a = segment_figures(session, job, view, a)
    mask_b = segment_mask(session, job, side_a.arrays, b) if b else ~side_a.mask
    side_b = segment_figures(session, job, view, b or Segment(), mask=mask_b)
    names = {r.theme_id: r for r in session.query(ThemeRow).filter(ThemeRow.job_id == job.id,
                                                                   ThemeRow.theme_id.in_(shown))}  # fmt: skip
    rows = []
    for node in shown:
        fa, fb = side_a.nodes.get(node), side_b.nodes.get(node)
        count_a, count_b = (fa or {}).get("size", 0), (fb or {}).get("size", 0)
        if not count_a and not count_b:
            continue
        share_a, share_b = count_a / max(1, side_a.n_documents), count_b / max(1, side_b.n_documents)
        record = view.record(names[node])
        rows.append({
            "id": node, "level": level, "name": record["name"], "parent": record.get("parent"),
            "a": _side(fa, count_a, share_a), "b": _side(fb, count_b, share_b),
            "difference": round(share_a - share_b, DIGITS),
            "lift": round(share_a / share_b, DIGITS) if share_b else None,
            "sentiment_difference": _difference(fa, fb),
            "p_value": two_proportion_p(count_a, side_a.n_documents, count_b, side_b.n_documents),
        })  # fmt: skip
    for row, q in zip(rows, adjusted([r["p_value"] for r in rows])):
        row["q_value"] = q
        row["significant"] = q < alpha
    rows.sort(key=lambda r: (not r["significant"], -abs(r["difference"]), r["id"]))
    return {"level": level, "alpha": alpha, "test": "two-proportion (chi-squared, 2x2), Benjamini-Hochberg",
            "a": side_a.metadata(), "b": {**side_b.metadata(), "rest": b is None or not b}, "themes": rows}  # fmt: skip


def _side(figures: dict[str, Any] | None, count: int, share: float) -> dict[str, Any]:
    sentiment = (figures or {}).get("sentiment") or {}
    return {"count": count, "share": round(share, DIGITS), "sentiment_mean": sentiment.get("mean") if count else None}


def _difference(a: dict[str, Any] | None, b: dict[str, Any] | None) -> float | None:
    if not a or not b:
        return None
    return round(a["sentiment"]["mean"] - b["sentiment"]["mean"], DIGITS)
