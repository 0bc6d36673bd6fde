"""Trends stage: each theme's share of comments per period, and which themes are emerging.

The period is chosen from the span of the comments' dates: ``day`` up to 45 days, ``week`` (starting Monday) up to
a year, else ``month``. A theme's share in a period is its member comments dated in that period over all comments
dated in that period. A theme is ``emerging`` when it is new — named in ``new_ids`` (first seen in this update of a
project), or, over time, with members in the latest period and none before — or when its share in the latest period
is at least ``z`` standard deviations above the mean of its earlier periods (and at least ``min_lift`` above it, so
that a flat history does not make any wobble "emerging").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

DIGITS = 4
PERIOD_FREQ = {"day": "D", "week": "W-MON", "month": "MS"}


@dataclass(frozen=True)
class TrendOptions:
    z: float = 2.0
    min_lift: float = 0.02
    min_history: int = 2  # earlier periods needed for the z-score rule
    min_latest_members: int = 2


@dataclass
class ThemeTrend:
    theme_id: int
    counts: list[int]
    shares: list[float]
    emerging: bool
    reason: str | None = None  # "new" | "spike" | None


@dataclass
class Trends:
    period: str | None  # day | week | month; None without dates
    periods: list[str] = field(default_factory=list)  # ISO dates of each period's start
    totals: list[int] = field(default_factory=list)  # dated comments per period
    themes: dict[int, ThemeTrend] = field(default_factory=dict)


def choose_period(dates: pd.Series) -> str:
    span = (dates.max() - dates.min()).days
    return "day" if span <= 45 else "week" if span <= 366 else "month"


def period_starts(dates: pd.Series, period: str) -> pd.Series:
    days = dates.dt.tz_localize(None).dt.normalize() if dates.dt.tz is not None else dates.dt.normalize()
    if period == "day":
        return days
    if period == "week":
        return days - pd.to_timedelta(days.dt.weekday, unit="D")
    return days - pd.to_timedelta(days.dt.day - 1, unit="D")


def theme_trends(
    dates: Iterable,
    members: Mapping[int, np.ndarray],
    new_ids: Iterable[int] = (),
    options: TrendOptions = TrendOptions(),
) -> Trends:
    """Trends of themes given each comment's date (None/NaT allowed) and each theme's member row positions."""
    new_ids = set(new_ids)
    stamps = pd.Series(pd.to_datetime(pd.Series(list(dates), dtype=object), errors="coerce", utc=True))
    dated = stamps.notna().to_numpy()
    if not dated.any():
        return Trends(None, themes={t: ThemeTrend(t, [], [], t in new_ids, "new" if t in new_ids else None)
                                    for t in members})  # fmt: skip
    period = choose_period(stamps[dated])
    starts = period_starts(stamps[dated], period)
    first, last = starts.min(), starts.max()
    index = pd.date_range(first, last, freq=PERIOD_FREQ[period])
    slot_of = {ts: i for i, ts in enumerate(index)}
    slot = np.full(len(stamps), -1)
    slot[dated] = [slot_of[ts] for ts in starts]
    totals = np.bincount(slot[dated], minlength=len(index))
    out = Trends(period, [ts.strftime("%Y-%m-%d") for ts in index], totals.tolist())
    for theme_id, rows in members.items():
        rows = np.asarray(rows, dtype=np.int64)
        in_slot = slot[rows]
        counts = np.bincount(in_slot[in_slot >= 0], minlength=len(index))
        shares = counts / np.maximum(totals, 1)
        emerging, reason = _emerging(counts, shares, totals, theme_id in new_ids, options)
        out.themes[theme_id] = ThemeTrend(theme_id, counts.tolist(), [round(float(s), DIGITS) for s in shares],
                                          emerging, reason)  # fmt: skip
    return out


def _emerging(counts: np.ndarray, shares: np.ndarray, totals: np.ndarray, is_new: bool,
              options: TrendOptions) -> tuple[bool, str | None]:  # fmt: skip
    if is_new:
        return True, "new"
    observed = np.flatnonzero(totals > 0)  # periods without any comment say nothing about a theme
    if len(observed) < 2 or counts[observed[-1]] < options.min_latest_members:
        return False, None
    history, latest = shares[observed[:-1]], shares[observed[-1]]
    if counts[observed[:-1]].sum() == 0:
        return True, "new"
    if len(history) < options.min_history:
        return False, None
    mean, std = float(history.mean()), float(history.std(ddof=1))
    if latest >= mean + options.z * std and latest >= mean + options.min_lift:
        return True, "spike"
    return False, None
