"""Metadata stage: the columns of an upload that are not its text, rating, date or id (product, store, channel,
country, plan, agent …), kept per comment and typed.

A column's type is read from its non-empty cells: ``number`` when nearly all read as numbers, else ``date`` when
nearly all read as dates, else ``category`` when it has at most ``max_category_values`` distinct values, else
``text`` (free text: kept, but not offered as a segment). The same rule types one upload's columns
(:func:`describe_columns`) and a project's, over all its comments (:func:`column_type` on stored counts).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

TYPES = ("category", "number", "date", "text")
MAX_NAME_CHARS = 200  # project_columns.name
MAX_VALUE_CHARS = 500  # document_attributes.value
_HAS_DIGIT = r"\d"


@dataclass(frozen=True)
class MetadataOptions:
    """How columns are typed: ``parse_share`` of the filled cells must read as numbers (dates) for the column to be
    a number (date) column; more than ``max_category_values`` distinct values make a text column."""

    max_category_values: int = 1000
    parse_share: float = 0.98


def kept_columns(header: Sequence[str], mapped: Sequence[str], keep: Sequence[str] | None) -> list[str]:
    """The metadata columns to keep, in the file's order: ``keep`` (None: every column not in ``mapped``)."""
    others = [c for c in header if c not in set(mapped)]
    if keep is None:
        return others
    wanted = set(keep)
    return [c for c in others if c in wanted]


def clean_cells(values: pd.Series) -> pd.Series:
    """Cells as stored: text without surrounding space, at most ``MAX_VALUE_CHARS`` characters, "" when empty."""
    text = values.fillna("").astype(str).str.strip()
    return text.str.slice(0, MAX_VALUE_CHARS)


def parse_numbers(cells: pd.Series) -> pd.Series:
    """Each cell as a number (float; NaN where it is not one, or is empty)."""
    return pd.to_numeric(cells.where(cells != ""), errors="coerce").astype(float)


def parse_dates(cells: pd.Series, numbers: pd.Series | None = None) -> pd.Series:
    """Each cell as a UTC timestamp (NaT where it is not one). A cell that reads as a number is never a date (a year
    or a count is a number), nor is one without a digit."""
    numbers = parse_numbers(cells) if numbers is None else numbers
    candidates = cells.where((cells != "") & numbers.isna() & cells.str.contains(_HAS_DIGIT, regex=True))
    if candidates.isna().all():
        return pd.Series(pd.NaT, index=cells.index, dtype="datetime64[ns, UTC]")
    return pd.to_datetime(candidates, errors="coerce", format="mixed", utc=True)


def column_type(filled: int, distinct: int, numbers: int, dates: int,
                options: MetadataOptions = MetadataOptions()) -> str:  # fmt: skip
    """The type of a column from counts over its filled cells: how many there are, how many distinct values, how
    many read as numbers and as dates."""
    if filled == 0:
        return "category"
    if numbers >= options.parse_share * filled:
        return "number"
    if dates >= options.parse_share * filled:
        return "date"
    return "category" if distinct <= options.max_category_values else "text"


def describe_columns(frame: pd.DataFrame, options: MetadataOptions = MetadataOptions()) -> list[dict[str, Any]]:
    """Each column of a frame of cleaned cells (:func:`clean_cells`): name, type, distinct values and filled cells."""
    out = []
    for name in frame.columns:
        cells = frame[name]
        filled = cells != ""
        numbers = parse_numbers(cells)
        dates = parse_dates(cells, numbers)
        n_filled, distinct = int(filled.sum()), int(cells[filled].nunique())
        kind = column_type(n_filled, distinct, int(numbers.notna().sum()), int(dates.notna().sum()), options)
        out.append({"name": name, "type": kind, "distinct_values": distinct, "filled": n_filled})
    return out


def attribute_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The filled cells of a frame of cleaned cells as long rows: ``row`` (position in the frame), ``name``,
    ``value`` (text), ``number`` (float or NaN) and ``date`` (UTC timestamp or NaT)."""
    parts = []
    for name in frame.columns:
        cells = frame[name].reset_index(drop=True)
        filled = np.flatnonzero((cells != "").to_numpy())
        if not len(filled):
            continue
        kept = cells.iloc[filled].reset_index(drop=True)
        numbers = parse_numbers(kept)
        parts.append(pd.DataFrame({"row": filled, "name": name, "value": kept, "number": numbers,
                                   "date": parse_dates(kept, numbers)}))  # fmt: skip
    if not parts:
        return pd.DataFrame({"row": pd.Series(dtype=int), "name": pd.Series(dtype=str),
                             "value": pd.Series(dtype=str), "number": pd.Series(dtype=float),
                             "date": pd.Series(dtype="datetime64[ns, UTC]")})  # fmt: skip
    return pd.concat(parts, ignore_index=True)
