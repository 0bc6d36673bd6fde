"""Ingest stage: a CSV file (or a list of records) becomes a clean DataFrame of documents.

Output columns: ``doc_id`` (str), ``text`` (str), ``rating`` (float or NaN), ``date`` (datetime or NaT).
Handles UTF-8 (with or without BOM), UTF-16 with BOM, cp1252 and latin-1; delimiters ``,`` ``;`` tab ``|``;
quoted multi-line fields; HTML entities. Empty texts are dropped and counted. Bad input raises
:class:`IngestError` with a one-line message that names the problem.
"""

from __future__ import annotations

import codecs
import csv
import html
import io
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

DELIMITERS = (",", ";", "\t", "|")
SNIFF_BYTES = 64 * 1024
MAX_TEXT_CHARS = 10_000  # longer texts are cut (and counted): sentiment scoring is quadratic in a text's length
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_WHITESPACE = re.compile(r"[ \t\u00a0]+")


class IngestError(ValueError):
    """Input that cannot be read as feedback; the message is shown to the user as is."""

    def __init__(self, message: str, code: str = "bad-input") -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class ColumnMap:
    """Which input columns hold the text and the optional id, rating and date."""

    text: str = "text"
    id: str | None = None
    rating: str | None = None
    date: str | None = None

    def optional(self) -> dict[str, str]:
        return {k: v for k, v in (("id", self.id), ("rating", self.rating), ("date", self.date)) if v}


@dataclass
class IngestResult:
    """Documents plus the counts a user sees (rows read, dropped, duplicates, bad values)."""

    documents: pd.DataFrame
    counts: dict[str, int] = field(default_factory=dict)
    encoding: str | None = None
    delimiter: str | None = None
    generated_ids: np.ndarray | None = None  # per document: True where the id is a row number, not from the input


def detect_encoding(head: bytes) -> str:
    """Pick the encoding from the first bytes: a BOM wins, else UTF-8 if it decodes, else cp1252."""
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    if b"\x00" in head:
        shares = sorted(half.count(0) / max(1, len(half)) for half in (head[0::2], head[1::2]))
        if len(head) >= 8 and shares[1] > 0.8 and shares[0] < 0.1:  # NUL in every other byte: UTF-16 text
            raise IngestError("the file looks like UTF-16 without a byte-order mark (BOM): save it as UTF-8, or as "
                              "UTF-16 with a BOM", "undecodable")  # fmt: skip
        raise IngestError("the file is not text (it contains NUL bytes): upload a CSV file", "undecodable")
    try:
        head.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError as exc:
        if exc.start >= len(head) - 3:  # a multi-byte character cut by the sample boundary
            return "utf-8"
        return "cp1252"


def detect_delimiter(sample: str) -> str:
    """The candidate delimiter that splits the header line into the most fields (``,`` on a tie)."""
    header = _first_record(sample)
    counts = {d: _count_outside_quotes(header, d) for d in DELIMITERS}
    best = max(DELIMITERS, key=lambda d: (counts[d], d == ","))
    return best if counts[best] > 0 else ","


def _first_record(sample: str) -> str:
    """The header record, which may span lines when a quoted field holds a newline."""
    in_quotes = False
    for i, ch in enumerate(sample):
        if ch == '"':
            in_quotes = not in_quotes
        elif ch in "\r\n" and not in_quotes:
            return sample[:i]
    return sample


def _count_outside_quotes(line: str, delimiter: str) -> int:
    count, in_quotes = 0, False
    for ch in line:
        if ch == '"':
            in_quotes = not in_quotes
        elif ch == delimiter and not in_quotes:
            count += 1
    return count


def read_csv(source: str | os.PathLike[str] | bytes, columns: ColumnMap) -> IngestResult:
    """Read a CSV file (path or bytes) into documents. Raises :class:`IngestError` on bad input."""
    raw = Path(source).read_bytes() if not isinstance(source, bytes) else source
    if not raw.strip():
        raise IngestError("the file is empty", "empty-file")
    encoding = detect_encoding(raw[:SNIFF_BYTES])
    text, encoding = _decode(raw, encoding)
    del raw
    if _CONTROL.search(text[:SNIFF_BYTES]) and len(_CONTROL.findall(text[:SNIFF_BYTES])) > 8:
        raise IngestError("the file is not readable text (binary content): upload a CSV file", "undecodable")
    text = text.replace("\x00", "")  # a stray NUL past the first bytes: no database stores it in text
    delimiter = detect_delimiter(text[:SNIFF_BYTES])
    sep, header = delimiter, _first_record(text[:SNIFF_BYTES])
    if not any(_count_outside_quotes(header, d) for d in DELIMITERS):  # one column: a comma is part of the text
        sep = next((c for c in "\x1f\x1e\x1d\x1c" if c not in text), delimiter)
    try:
        frame = pd.read_csv(
            io.StringIO(text),
            sep=sep,
            dtype=str,
            keep_default_na=False,
            na_values=[],
            skipinitialspace=True,
            quoting=csv.QUOTE_MINIMAL,
            engine="c",
        )
    except pd.errors.EmptyDataError:
        raise IngestError("the file has no header row", "empty-file") from None
    except (pd.errors.ParserError, csv.Error) as exc:
        raise IngestError(f"the CSV cannot be parsed: {_first_line(exc)}", "malformed-csv") from None
    if not isinstance(frame.index, pd.RangeIndex):  # pandas took extra leading fields as an index: data would shift
        raise IngestError("the CSV cannot be parsed: the first data row has more fields than the header (quote "
                          "fields that contain the delimiter)", "malformed-csv")  # fmt: skip
    frame.columns = [str(c).strip() for c in frame.columns]
    result = normalise(frame, columns)
    result.encoding, result.delimiter = encoding, delimiter
    return result


def _decode(raw: bytes, encoding: str) -> tuple[str, str]:
    """Decode with the detected encoding, else cp1252, else latin-1 (a UTF-8 BOM is dropped either way)."""
    if encoding == "utf-8-sig":
        raw = raw[len(codecs.BOM_UTF8) :]
        encoding = "utf-8"
    for candidate in dict.fromkeys((encoding, "cp1252", "latin-1")):
        try:
            return raw.decode(candidate), candidate
        except UnicodeDecodeError:
            continue
    raise IngestError("the file could not be decoded as UTF-8, UTF-16 or Windows-1252 text", "undecodable")


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def from_records(records: Iterable[Mapping[str, object]], columns: ColumnMap | None = None) -> IngestResult:
    """Documents from a list of dicts (e.g. a JSON batch ``{"text", "rating", "date", "id"}``)."""
    columns = columns or ColumnMap(text="text", id="id", rating="rating", date="date")
    rows = list(records)
    if not rows:
        raise IngestError("no items were given", "empty-file")
    frame = pd.DataFrame.from_records(rows)
    for name in columns.optional().values():
        if name not in frame.columns:
            frame[name] = None
    frame = frame.astype(object).where(frame.notna(), "")
    frame = frame.map(lambda v: "" if v is None else str(v).replace("\x00", ""))
    return normalise(frame, columns)


def normalise(frame: pd.DataFrame, columns: ColumnMap) -> IngestResult:
    """Map columns, clean texts, drop empties, parse ratings and dates, and count what happened."""
    missing = [c for c in (columns.text, *columns.optional().values()) if c not in frame.columns]
    if missing:
        found = ", ".join(repr(c) for c in frame.columns) or "none"
        raise IngestError(f"column {missing[0]!r} not found; columns found: {found}", "missing-column")
    rows_read = len(frame)
    if rows_read == 0:
        raise IngestError("the file has a header but no rows", "no-rows")
    text = frame[columns.text].map(clean_text)
    too_long = text.str.len() > MAX_TEXT_CHARS
    if too_long.any():
        text = text.where(~too_long, text.str.slice(0, MAX_TEXT_CHARS).str.rstrip())
    row_numbers = pd.Series([str(i + 1) for i in range(rows_read)], index=frame.index)
    doc_id = frame[columns.id].astype(str).str.strip() if columns.id else row_numbers
    generated = doc_id == ""
    doc_id = doc_id.where(~generated, row_numbers)
    if not columns.id:
        generated[:] = True
    keep = text.str.len() > 0
    docs = pd.DataFrame({"doc_id": doc_id[keep].to_numpy(), "text": text[keep].to_numpy()})
    counts = {"rows_read": rows_read, "empty_dropped": int((~keep).sum()), "truncated_texts": int(too_long[keep].sum())}
    given = docs["doc_id"][~generated[keep].to_numpy()]
    dup = given[given.duplicated(keep=False)]
    if not dup.empty:
        examples = ", ".join(repr(v) for v in dup.unique()[:3])
        raise IngestError(f"id column {columns.id!r} has duplicate values: {examples}", "duplicate-id")
    docs["rating"], counts["invalid_ratings"] = _parse_ratings(frame[columns.rating][keep] if columns.rating else None)
    docs["date"], counts["invalid_dates"] = _parse_dates(frame[columns.date][keep] if columns.date else None)
    if docs.empty:
        raise IngestError(f"no row has text in column {columns.text!r}", "no-rows")
    counts["documents"] = len(docs)
    counts["duplicate_texts"] = int(docs["text"].duplicated().sum())
    return IngestResult(documents=docs.reset_index(drop=True), counts=counts, generated_ids=generated[keep].to_numpy())


def clean_text(value: object) -> str:
    """Unescape HTML entities, drop control characters, collapse runs of spaces, strip."""
    text = html.unescape(str(value)) if value is not None else ""
    text = _CONTROL.sub(" ", text)
    text = _WHITESPACE.sub(" ", text)
    return text.strip()


def _parse_ratings(values: pd.Series | None) -> tuple[pd.Series | float, int]:
    if values is None:
        return float("nan"), 0
    cleaned = values.astype(str).str.strip().str.replace(",", ".", regex=False)
    numbers = pd.to_numeric(cleaned, errors="coerce")
    invalid = int((numbers.isna() & (cleaned != "")).sum())
    return numbers.astype(float).to_numpy(), invalid


def _parse_dates(values: pd.Series | None) -> tuple[pd.Series | object, int]:
    if values is None:
        return pd.NaT, 0
    cleaned = values.astype(str).str.strip()
    dates = pd.to_datetime(cleaned.replace("", None), errors="coerce", format="mixed", utc=True)
    invalid = int((dates.isna() & (cleaned != "")).sum())
    return dates.to_numpy(), invalid


def check_upload(
    path: str | os.PathLike[str], columns: ColumnMap, full_check_bytes: int = 4 * 1024 * 1024
) -> IngestResult | None:
    """Cheap validation of a stored upload before a job is queued; raises :class:`IngestError`.

    Small files are read whole (every error is found now; their result is returned); larger ones by their first
    bytes: readable text and a header with the named columns (None is returned). The worker reads the rest.
    """
    size = os.path.getsize(path)
    if size <= full_check_bytes:
        return read_csv(path, columns)
    with open(path, "rb") as fh:
        head = fh.read(SNIFF_BYTES)
    encoding = detect_encoding(head)
    text, _ = _decode(head[: len(head) - 4] if encoding.startswith("utf-8") else head, encoding)
    if len(_CONTROL.findall(text)) > 8:
        raise IngestError("the file is not readable text (binary content): upload a CSV file", "undecodable")
    delimiter = detect_delimiter(text)
    records = csv.reader(io.StringIO(text), delimiter=delimiter)
    header = [c.strip() for c in next(records, [])]
    missing = [c for c in (columns.text, *columns.optional().values()) if c not in header]
    if missing:
        found = ", ".join(repr(c) for c in header) or "none"
        raise IngestError(f"column {missing[0]!r} not found; columns found: {found}", "missing-column")
