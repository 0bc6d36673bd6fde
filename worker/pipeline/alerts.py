"""Alerts stage: what changed in a project's newest comments, per node of its theme tree.

After each job of a project with history, every shown theme and sub-theme is compared in a few *windows* — its
comments in the window against its comments before it:

- ``batch``: the comments of this job's upload against those of earlier uploads;
- ``day`` / ``week``: when the comments have dates, those of the last day / the last 7 days present against every
  dated comment before (a date window is left out when it holds no comment of this upload, has nothing before it, or
  holds exactly the upload's comments, which ``batch`` already compares).

Three rules fire (:class:`AlertOptions` holds their thresholds):

- ``spike``: the node's share of the window is significantly above its share before (one-sided Fisher exact test,
  Benjamini–Hochberg across the window's nodes: q < ``fdr``), at least ``min_lift`` times it, with at least
  ``min_count`` comments;
- ``new_theme``: a node first seen in this job holding at least ``min_count`` comments of the upload that are
  concentrated in it: it passes the spike test of the ``batch`` window (a node that is new only because the tree was
  cut differently holds old comments, and is not news);
- ``sentiment_drop``: the mean sentiment of the node's comments in the window is significantly below that before
  (one-sided Mann–Whitney U, Benjamini–Hochberg across the window's nodes: q < ``fdr``), by at least ``min_drop``,
  with at least ``min_count`` comments on each side.

A node keeps its strongest alert of each kind across windows; a sub-theme's alert is folded into its theme's when
the theme has one of the same kind, and an alert whose comments in the window are mostly those of a stronger alert
of the same kind into that one; a change alerted after the project's previous job is not alerted again — the
same node, or a node whose comments in the window are mostly those of a node alerted then (a node's id can change
as the tree grows), for the same change (a spike and a new theme are one change); at most ``max_alerts`` remain,
strongest (smallest q) first.

Pure computation: arrays and frames in, :class:`Finding` list out (storage: ``service/storage/alerts.py``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import false_discovery_control, fisher_exact, mannwhitneyu

KINDS = ("new_theme", "spike", "sentiment_drop")
WINDOWS = ("batch", "day", "week")
DIGITS = 4
N_EXAMPLES = 3


@dataclass(frozen=True)
class AlertOptions:
    """Thresholds of the rules (settings ``alert_*``)."""

    min_count: int = 10
    fdr: float = 0.01
    min_lift: float = 2.0
    min_drop: float = 0.2
    max_alerts: int = 3
    fold_sub_themes: bool = True


@dataclass(frozen=True)
class Window:
    """Which comments (rows) are in the window and which come before it; ``label`` says it in words."""

    name: str
    inside: np.ndarray
    before: np.ndarray
    label: str
    start: str | None = None  # the first and last day of a date window (ISO)
    end: str | None = None


@dataclass(frozen=True)
class Earlier:
    """An alert of the project's previous job: its node, kind and the node's comments (rows) then."""

    node_id: int
    kind: str
    rows: np.ndarray


@dataclass
class Finding:
    """One alert: its rule, window, node, title, figures and example comments (rows, highest activation first)."""

    kind: str
    window: str
    node_id: int
    level: int
    name: str
    title: str
    figures: dict[str, Any]
    examples: list[int] = field(default_factory=list)
    rows: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # its comments in the window

    @property
    def strength(self) -> tuple[float, float]:
        """Sort key, strongest first: the smallest q, then the most comments."""
        return (self.figures["q_value"], -self.figures["count"])


def alert_windows(in_upload: np.ndarray, dates: pd.Series) -> list[Window]:
    """The windows of a job: ``batch`` (``in_upload``: each comment row is of this job's upload), then ``day`` and
    ``week`` over the dated rows (``dates``, NaT where a comment has none)."""
    in_upload = np.asarray(in_upload, dtype=bool)
    windows = []
    if in_upload.any() and (~in_upload).any():
        windows.append(Window("batch", in_upload, ~in_upload, "this upload"))
    days = pd.to_datetime(dates, utc=True, errors="coerce").dt.tz_localize(None).dt.normalize()
    dated = days.notna().to_numpy()
    if not dated.any():
        return windows
    last = days.max()
    for name, width in (("day", 1), ("week", 7)):
        first = last - pd.Timedelta(days=width - 1)
        inside = dated & (days >= first).fillna(False).to_numpy()
        before = dated & (days < first).fillna(False).to_numpy()
        if not (inside & in_upload).any() or not before.any() or np.array_equal(inside, in_upload):
            continue
        start, end = first.date().isoformat(), last.date().isoformat()
        label = f"the last day ({end})" if width == 1 else f"the last 7 days ({start} – {end})"
        windows.append(Window(name, inside, before, label, start, end))
    return windows


def find_alerts(nodes: pd.DataFrame, links: pd.DataFrame, scores: np.ndarray, windows: list[Window],
                options: AlertOptions = AlertOptions(), already: Iterable[Earlier] = ()) -> list[Finding]:  # fmt: skip
    """The alerts of a job.

    ``nodes``: one row per shown node (``node_id``, ``level``, ``parent`` (its shown parent or None), ``name``,
    ``is_new``); ``links``: its memberships (``node_id``, ``row``: the comment's row, ``activation``,
    ``sentiment``: the comment's sentiment in the node, NaN for the comment's own); ``scores``: each comment row's
    sentiment; ``already``: the alerts of the project's previous job."""
    links = links.assign(sentiment=links["sentiment"].fillna(pd.Series(scores[links["row"].to_numpy()],
                                                                       index=links.index)))  # fmt: skip
    by_node = {int(n): part for n, part in links.groupby("node_id")}
    info = nodes.set_index("node_id")
    findings: list[Finding] = []
    for window in windows:
        rows = [(int(n), by_node.get(int(n), links.iloc[:0])) for n in info.index]
        spikes = [_share_figures(part, window) for _, part in rows]
        q_spike = _bh([f["p_value"] for f in spikes])
        drops = [_sentiment_figures(part, window, options.min_count) for _, part in rows]
        q_drop = _bh([f["p_value"] for f in drops])
        for (node_id, part), spike, q1, drop, q2 in zip(rows, spikes, q_spike, drops, q_drop):
            node = info.loc[node_id]
            fired = []
            if _spike_fires(spike, q1, options):
                fired.append("spike")
                if window.name == "batch" and bool(node["is_new"]):
                    fired.append("new_theme")
            if drop["p_value"] is not None and q2 < options.fdr and drop["count"] >= options.min_count \
                    and drop["drop"] >= options.min_drop:  # fmt: skip
                fired.append("sentiment_drop")
            for kind in fired:
                figures = {**spike, **{k: drop[k] for k in ("sentiment_mean", "baseline_sentiment")}}
                figures["p_value"], figures["q_value"] = (drop["p_value"], q2) if kind == "sentiment_drop" else \
                    (spike["p_value"], q1)  # fmt: skip
                figures = {k: _rounded(k, v) for k, v in figures.items()}
                if window.start:
                    figures.update(window_start=window.start, window_end=window.end)
                findings.append(Finding(kind, window.name, node_id, int(node["level"]), str(node["name"]),
                                        title(kind, str(node["name"]), figures, window.label), figures,
                                        examples(part, window), in_window(part, window)))  # fmt: skip
    return select_findings(findings, nodes, options, already)


def _spike_fires(figures: dict[str, Any], q: float, options: AlertOptions) -> bool:
    lift = figures["lift"]
    return (figures["count"] >= options.min_count and q < options.fdr
            and (lift is None or lift >= options.min_lift))  # fmt: skip


def change(kind: str) -> str:
    """What an alert says changed: a new theme is a spike of a node that had no comments before."""
    return "spike" if kind == "new_theme" else kind


def select_findings(findings: list[Finding], nodes: pd.DataFrame, options: AlertOptions,
                    already: Iterable[Earlier] = ()) -> list[Finding]:  # fmt: skip
    """A node's strongest alert of each kind (across windows); sub-themes' alerts folded into their theme's of the same
    kind (``fold_sub_themes``); a new theme's spike left out (its ``new_theme`` says more); the changes alerted
    ``already`` left out (:func:`repeats`), and so is an alert repeating a stronger one of this job; the strongest
    ``max_alerts``."""
    already = list(already)
    findings = [f for f in findings if not repeats(f, already)]
    best: dict[tuple[int, str], Finding] = {}
    for f in sorted(findings, key=lambda f: (f.strength, WINDOWS.index(f.window))):
        best.setdefault((f.node_id, f.kind), f)
    kept = [f for f in best.values() if not (f.kind == "spike" and (f.node_id, "new_theme") in best)]
    if options.fold_sub_themes:
        parent = dict(zip(nodes["node_id"].astype(int), nodes["parent"]))
        kinds = {(f.node_id, change(f.kind)) for f in kept}
        kept = [f for f in kept
                if not (parent.get(f.node_id) is not None and not pd.isna(parent[f.node_id])
                        and (int(parent[f.node_id]), change(f.kind)) in kinds)]  # fmt: skip
    distinct: list[Finding] = []
    for f in sorted(kept, key=lambda f: f.strength):  # one change, one alert: the strongest of overlapping ones
        if not repeats(f, [Earlier(-1, k.kind, k.rows) for k in distinct]):
            distinct.append(f)
    return distinct[: options.max_alerts]


def _share_figures(part: pd.DataFrame, window: Window) -> dict[str, Any]:
    """The node's comments and share in the window and before it, their lift, and the one-sided Fisher exact p of a
    higher share in the window."""
    rows = part["row"].to_numpy()
    count, base = int(window.inside[rows].sum()), int(window.before[rows].sum())
    n, base_n = int(window.inside.sum()), int(window.before.sum())
    share, base_share = count / max(1, n), base / max(1, base_n)
    p = fisher_exact([[count, n - count], [base, base_n - base]], alternative="greater").pvalue if count else 1.0
    return {"count": count, "n": n, "share": share, "baseline_count": base, "baseline_n": base_n,
            "baseline_share": base_share, "lift": share / base_share if base_share else None,
            "p_value": float(p)}  # fmt: skip


def _sentiment_figures(part: pd.DataFrame, window: Window, min_count: int) -> dict[str, Any]:
    """The mean sentiment of the node's comments in the window and before, and the one-sided Mann–Whitney p of lower
    values in the window (None when either side has fewer than ``min_count`` comments)."""
    rows = part["row"].to_numpy()
    now = part["sentiment"].to_numpy(float)[window.inside[rows]]
    then = part["sentiment"].to_numpy(float)[window.before[rows]]
    mean = float(now.mean()) if len(now) else None
    base = float(then.mean()) if len(then) else None
    p = None
    if len(now) >= min_count and len(then) >= min_count:
        p = float(mannwhitneyu(now, then, alternative="less").pvalue)
    drop = base - mean if mean is not None and base is not None else 0.0
    return {"count": len(now), "sentiment_mean": mean, "baseline_sentiment": base, "drop": drop, "p_value": p}


def _bh(p_values: list[float | None]) -> np.ndarray:
    """Benjamini–Hochberg q-values over the tested nodes (None: not tested, q = 1)."""
    q = np.ones(len(p_values))
    tested = [i for i, p in enumerate(p_values) if p is not None]
    if tested:
        q[tested] = false_discovery_control(np.array([p_values[i] for i in tested], dtype=float), method="bh")
    return q


def repeats(finding: Finding, already: list[Earlier]) -> bool:
    """Whether an earlier alert said the same: the same change of the same node, or of a node holding most of this
    finding's comments."""
    for earlier in already:
        if change(earlier.kind) != change(finding.kind):
            continue
        if earlier.node_id == finding.node_id:
            return True
        if len(finding.rows) and np.isin(finding.rows, earlier.rows).mean() > 0.5:
            return True
    return False


def in_window(part: pd.DataFrame, window: Window) -> np.ndarray:
    """The rows of the node's comments in the window."""
    rows = part["row"].to_numpy()
    return np.sort(rows[window.inside[rows]])


def examples(part: pd.DataFrame, window: Window, n: int = N_EXAMPLES) -> list[int]:
    """The rows of the node's comments in the window with the highest activation."""
    inside = part[window.inside[part["row"].to_numpy()]]
    return inside.sort_values(["activation", "row"], ascending=[False, True])["row"].head(n).astype(int).tolist()


def _rounded(key: str, value: Any) -> Any:
    if value is None or isinstance(value, int) and not isinstance(value, bool):
        return value
    if key in ("p_value", "q_value"):
        return float(f"{value:.3g}")
    return round(float(value), DIGITS)


def percent(share: float) -> str:
    return f"{100 * share:.1f} %"


def title(kind: str, name: str, figures: dict[str, Any], where: str) -> str:
    """The alert as a person reads it, e.g. ``Spike: “Lost luggage” is 6.1 % of this upload vs 1.2 % before
    (×5.1)``."""
    lift = figures["lift"]
    times = f"×{lift:.1f}" if lift is not None and math.isfinite(lift) else "none before"
    if kind == "new_theme":
        return (f"New theme: “{name}” — {figures['count']} comments, {percent(figures['share'])} of {where} "
                f"vs {percent(figures['baseline_share'])} before")  # fmt: skip
    if kind == "spike":
        return (f"Spike: “{name}” is {percent(figures['share'])} of {where} vs "
                f"{percent(figures['baseline_share'])} before ({times})")  # fmt: skip
    return (f"Sentiment drop: “{name}” averages {figures['sentiment_mean']:+.2f} in {where} vs "
            f"{figures['baseline_sentiment']:+.2f} before ({figures['count']} comments)")  # fmt: skip
