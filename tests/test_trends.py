"""Trends: shares per period (day/week/month from the date span) and the emerging flag."""

from __future__ import annotations

import numpy as np
import pandas as pd

from worker.pipeline.trends import choose_period, theme_trends


def days(start: str, n: int, per_day: int) -> list[pd.Timestamp]:
    return [d for d in pd.date_range(start, periods=n, freq="D") for _ in range(per_day)]


def test_period_follows_the_span():
    assert choose_period(pd.Series(pd.to_datetime(["2026-01-01", "2026-01-30"]))) == "day"
    assert choose_period(pd.Series(pd.to_datetime(["2026-01-01", "2026-06-30"]))) == "week"
    assert choose_period(pd.Series(pd.to_datetime(["2024-01-01", "2026-06-30"]))) == "month"


def test_weekly_shares_and_a_spike_is_emerging():
    dates = days("2026-01-05", 10 * 7, 10)  # ten weeks from a Monday, 70 comments a week
    week = np.arange(len(dates)) // 70
    rng = np.random.default_rng(0)
    steady = np.flatnonzero(rng.random(len(dates)) < 0.2)
    spiking = np.flatnonzero((rng.random(len(dates)) < 0.05) | ((week == 9) & (rng.random(len(dates)) < 0.3)))
    fading = np.flatnonzero((week < 5) & (rng.random(len(dates)) < 0.2))
    trends = theme_trends(dates, {1: steady, 2: spiking, 3: fading})
    assert trends.period == "week" and len(trends.periods) == 10 and trends.periods[0] == "2026-01-05"
    assert trends.totals == [70] * 10
    assert sum(trends.themes[1].counts) == len(steady)
    assert trends.themes[1].shares[0] == round(trends.themes[1].counts[0] / 70, 4)
    assert [t.emerging for t in trends.themes.values()] == [False, True, False]
    assert trends.themes[2].reason == "spike"


def test_new_themes_are_emerging():
    dates = days("2026-01-01", 20, 5)
    late = np.arange(95, 100)  # only on the last day
    trends = theme_trends(dates, {7: late, 8: np.arange(0, 100, 4)}, new_ids={8})
    assert trends.period == "day"
    assert trends.themes[7].emerging and trends.themes[7].reason == "new"
    assert trends.themes[8].emerging and trends.themes[8].reason == "new"


def test_flat_history_needs_a_real_lift():
    dates = days("2026-01-01", 10, 20)
    members = np.concatenate([np.arange(d * 20, d * 20 + 4) for d in range(9)] + [np.arange(180, 185)])
    trends = theme_trends(dates, {1: members})
    assert trends.themes[1].shares[:9] == [0.2] * 9 and trends.themes[1].shares[9] == 0.25
    assert trends.themes[1].emerging  # 0.25 ≥ 0.2 + 2·0 and ≥ 0.2 + 0.02
    assert theme_trends(dates, {1: np.arange(0, 200, 5)}).themes[1].emerging is False


def test_without_dates_there_are_no_periods():
    trends = theme_trends([None, pd.NaT, None], {1: np.array([0, 1])}, new_ids={1})
    assert trends.period is None and trends.periods == []
    assert trends.themes[1].emerging and trends.themes[1].counts == []
