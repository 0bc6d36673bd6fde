"""Ingest stage: a CSV file (or a list of records) becomes a clean DataFrame of documents.

Output columns: ``doc_id`` (str), ``text`` (str), ``rating`` (float or NaN), ``date`` (datetime or NaT); every other
column of the input (or those named in ``ColumnMap.keep``) is kept as metadata, one cleaned text cell per document
(:mod:`worker.pipeline.metadata` types them).
Handles UTF-8 (with or without BOM), UTF-16 with BOM, cp1252 and latin-1; delimiters ``,`` ``;`` tab ``|``;
quoted multi-line fields; HTML entities. Empty texts are dropped and counted. Bad input raises
:class:`IngestError` with a one-line message that names the problem.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import html
import io
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from worker.pipeline.metadata import MAX_NAME_CHARS, clean_cells, kept_columns
from worker.pipeline.normalize import model_text

DELIMITERS = (",", ";", "\t", "|")
SNIFF_BYTES = 64 * 1024
MAX_TEXT_CHARS = 10_000  # longer texts are cut (and counted): sentiment scoring is quadratic in a text's length
MAX_ID_CHARS = 200  # documents.doc_id
STREAM_ROWS = 4096  # records per chunk of a streamed check
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_WHITESPACE = re.compile(r"[ \t\u00a0](?:[ \t\u00a0]+|(?<=[\t\u00a0]))")  # a lone space is no match: not copied
_ONE_COLUMN_SEPS = "\x1f\x1e\x1d\x1c"  # separators for a file of one column: the first its text lacks
_CSV_OPTIONS = {"dtype": str, "keep_default_na": False, "na_values": [], "skipinitialspace": True,
                "quoting": csv.QUOTE_MINIMAL, "engine": "c"}  # fmt: skip


class IngestError(ValueError):
    """Input that cannot be read as feedback; the message is shown to the user as is."""

    def __init__(self, message: str, code: str = "bad-input") -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class ColumnMap:
    """Which input columns hold the text and the optional id, rating and date; ``keep``: the other columns to keep
    as metadata (None: all of them)."""

    text: str = "text"
    id: str | None = None
    rating: str | None = None
    date: str | None = None
    keep: tuple[str, ...] | list[str] | None = None

    def optional(self) -> dict[str, str]:
        return {k: v for k, v in (("id", self.id), ("rating", self.rating), ("date", self.date)) if v}

    def mapped(self) -> list[str]:
        return [self.text, *self.optional().values()]


@dataclass
class IngestResult:
    """Documents plus the counts a user sees (rows read, dropped, duplicates, bad values)."""

    documents: pd.DataFrame
    counts: dict[str, int] = field(default_factory=dict)
    encoding: str | None = None
    delimiter: str | None = None
    generated_ids: np.ndarray | None = None  # per document: True where the id is a row number, not from the input
    metadata: pd.DataFrame | None = None  # per document (same rows), its kept metadata cells ("" when empty)
    partial: bool = False  # only counted (``counts["distinct_texts"]``) by a streamed check; no documents


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


def _one_column(sample: str) -> bool:
    """Whether the header has no delimiter: then the file has one column, and a comma is part of the text."""
    header = _first_record(sample)
    return not any(_count_outside_quotes(header, d) for d in DELIMITERS)


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
    sep = delimiter
    if _one_column(text[:SNIFF_BYTES]):
        sep = next((c for c in _ONE_COLUMN_SEPS if c not in text), delimiter)
    with _parse_errors():
        frame = _with_header(pd.read_csv(io.StringIO(text), sep=sep, **_CSV_OPTIONS))
    result = normalise(frame, columns)
    result.encoding, result.delimiter = encoding, delimiter
    return result


@contextlib.contextmanager
def _parse_errors() -> Iterator[None]:
    """pandas' errors for a file without a header or with broken quoting, as :class:`IngestError`."""
    try:
        yield
    except pd.errors.EmptyDataError:
        raise IngestError("the file has no header row", "empty-file") from None
    except (pd.errors.ParserError, csv.Error) as exc:
        raise IngestError(f"the CSV cannot be parsed: {_first_line(exc)}", "malformed-csv") from None


def _with_header(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with stripped column names; :class:`IngestError` where pandas took extra leading fields of the first
    data row as an index (the data would shift)."""
    if not isinstance(frame.index, pd.RangeIndex):
        raise IngestError("the CSV cannot be parsed: the first data row has more fields than the header (quote "
                          "fields that contain the delimiter)", "malformed-csv")  # fmt: skip
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


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
    rows = [_flat_metadata(row, columns) for row in rows]
    frame = pd.DataFrame.from_records(rows)
    for name in columns.optional().values():
        if name not in frame.columns:
            frame[name] = None
    frame = frame.astype(object).where(frame.notna(), "")
    frame = frame.map(lambda v: "" if v is None else str(v).replace("\x00", ""))
    return normalise(frame, columns)


def _flat_metadata(row: Mapping[str, object], columns: ColumnMap) -> Mapping[str, object]:
    """A record whose ``metadata`` object (column → value) is spread into its own columns."""
    metadata = row.get("metadata")
    if not metadata:
        return {k: v for k, v in row.items() if k != "metadata"}
    clash = sorted(set(metadata) & {"metadata", *columns.mapped()})
    if clash:
        raise IngestError(f"metadata names {clash[0]!r}, which is a field of the item itself: rename it", "bad-metadata")
    cells = {str(k): "" if v is None else str(v) for k, v in metadata.items()}  # as a CSV would hold them
    return {**{k: v for k, v in row.items() if k != "metadata"}, **cells}


def normalise(frame: pd.DataFrame, columns: ColumnMap) -> IngestResult:
    """Map columns, clean texts, drop empties, parse ratings and dates, and count what happened."""
    _require_columns(list(frame.columns), columns)
    rows_read = len(frame)
    if rows_read == 0:
        raise IngestError("the file has a header but no rows", "no-rows")
    text, too_long = _clean_texts(frame[columns.text])
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
    too_long_ids = given[given.str.len() > MAX_ID_CHARS]
    if not too_long_ids.empty:
        raise IngestError(f"id column {columns.id!r} has values longer than {MAX_ID_CHARS} characters: "
                          f"{too_long_ids.iloc[0][:40]!r}…", "id-too-long")  # fmt: skip
    docs["rating"], counts["invalid_ratings"] = _parse_ratings(frame[columns.rating][keep] if columns.rating else None)
    docs["date"], counts["invalid_dates"] = _parse_dates(frame[columns.date][keep] if columns.date else None)
    if docs.empty:
        raise IngestError(f"no row has text in column {columns.text!r}", "no-rows")
    counts["documents"] = len(docs)
    counts["duplicate_texts"] = int(docs["text"].duplicated().sum())
    metadata = metadata_cells(frame[keep], columns)
    counts["metadata_columns"] = metadata.shape[1]
    return IngestResult(documents=docs.reset_index(drop=True), counts=counts, generated_ids=generated[keep].to_numpy(),
                        metadata=metadata)  # fmt: skip


def metadata_cells(frame: pd.DataFrame, columns: ColumnMap) -> pd.DataFrame:
    """The kept metadata columns of the documents' rows, cleaned (names cut to ``MAX_NAME_CHARS``; a column whose
    cut name repeats an earlier one is left out)."""
    names = kept_columns(list(frame.columns), columns.mapped(), columns.keep)
    out: dict[str, pd.Series] = {}
    for name in names:
        short = str(name)[:MAX_NAME_CHARS].strip()
        if short and short not in out:
            out[short] = clean_cells(frame[name].map(clean_text)).reset_index(drop=True)
    return pd.DataFrame(out, index=pd.RangeIndex(len(frame)))


def _require_columns(header: list[str], columns: ColumnMap) -> None:
    missing = [c for c in (*columns.mapped(), *(columns.keep or ())) if c not in header]
    if missing:
        found = ", ".join(repr(c) for c in header) or "none"
        raise IngestError(f"column {missing[0]!r} not found; columns found: {found}", "missing-column")


def _clean_texts(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """The values cleaned (:func:`clean_text`) and cut to ``MAX_TEXT_CHARS``; and which of them were cut."""
    text = values.map(clean_text)
    too_long = text.str.len() > MAX_TEXT_CHARS
    if too_long.any():
        text = text.where(~too_long, text.str.slice(0, MAX_TEXT_CHARS).str.rstrip())
    return text, too_long


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
    path: str | os.PathLike[str], columns: ColumnMap, full_check_bytes: int = 4 * 1024 * 1024, minimum: int = 2
) -> IngestResult:
    """Validation of a stored upload before a job is queued; raises :class:`IngestError`.

    Small files are read whole (every error is found now; their result is returned). Larger ones are checked for
    readable text and a header with the named columns, then read in chunks of ``STREAM_ROWS`` records (by pandas,
    with ``read_csv``'s options) until ``minimum`` different texts are seen: the result is ``partial``, with only
    ``counts["distinct_texts"]``. The worker reads the rest.
    """
    if os.path.getsize(path) <= full_check_bytes:
        return read_csv(path, columns)
    with open(path, "rb") as fh:
        head = fh.read(SNIFF_BYTES)
    detected = detect_encoding(head)
    if detected.startswith("utf-8"):  # valid UTF-8 but for a character that the sample's end may cut
        text, encoding = head.decode(detected, errors="ignore"), "utf-8"
    else:
        text, encoding = _decode(head, detected)
    if len(_CONTROL.findall(text)) > 8:
        raise IngestError("the file is not readable text (binary content): upload a CSV file", "undecodable")
    delimiter = detect_delimiter(text)
    one_column = _one_column(text)
    sep = _ONE_COLUMN_SEPS[0] if one_column else delimiter
    stream = detected if detected == "utf-8-sig" else encoding
    mapped = sep if one_column else ""
    with _parse_errors(), _CleanText(path, stream, mapped) as fh:
        first = _with_header(pd.read_csv(fh, sep=sep, nrows=1, **_CSV_OPTIONS))
    _require_columns(list(first.columns), columns)
    if first.empty:
        raise IngestError("the file has a header but no rows", "no-rows")
    usecols = [list(first.columns).index(columns.text)]
    texts: set[str] = set()
    with (
        _parse_errors(),
        _CleanText(path, stream, mapped) as fh,
        pd.read_csv(fh, sep=sep, usecols=usecols, index_col=False, chunksize=STREAM_ROWS, **_CSV_OPTIONS) as reader,
    ):
        for chunk in reader:
            cleaned, _ = _clean_texts(chunk.iloc[:, 0].drop_duplicates())
            texts.update(cleaned[cleaned != ""])
            if len(texts) >= minimum:
                break
    if not texts:
        raise IngestError(f"no row has text in column {columns.text!r}", "no-rows")
    empty = pd.DataFrame(columns=["doc_id", "text", "rating", "date"])
    return IngestResult(empty, {"distinct_texts": len(texts)}, encoding=encoding, delimiter=delimiter, partial=True)


class _CleanText(io.TextIOWrapper):
    """A file's text as ``read_csv`` parses it: undecodable bytes replaced, NULs dropped, and each ``sep`` (the
    separator of a one-column file, which ``read_csv`` picks from those its text lacks) made DEL: a plain character
    that :func:`clean_text` makes a space, as it makes a ``sep`` that ``read_csv`` kept."""

    def __init__(self, path: str | os.PathLike[str], encoding: str, sep: str = "") -> None:
        super().__init__(open(path, "rb"), encoding=encoding, errors="replace", newline="")
        self.sep = sep

    def read(self, size: int | None = -1) -> str:
        text = super().read(size)
        while "\x00" in text:
            text = text.replace("\x00", "") or super().read(size)  # not "" for NULs only: that would end the file
        return text.replace(self.sep, "\x7f") if self.sep else text


def count_distinct_texts(result: IngestResult) -> int:
    """The different non-empty texts of a result (of a partial one: those seen before its check stopped)."""
    if "distinct_texts" in result.counts:
        return result.counts["distinct_texts"]
    return result.counts["documents"] - result.counts["duplicate_texts"]


def require_distinct_texts(result: IngestResult, minimum: int = 2) -> None:
    """Raise :class:`IngestError` (``too-few-comments``) unless the result has ``minimum`` different texts, also
    once handles, links and masks are taken out (:func:`worker.pipeline.normalize.model_text`) when the result holds
    its documents."""
    found = count_distinct_texts(result)
    if found < minimum:
        raise IngestError(f"at least {minimum} different comments are needed to find themes in; this upload has "
                          f"{found}", "too-few-comments")  # fmt: skip
    if not result.partial and "text" in result.documents:
        meaningful = {model_text(t) for t in result.documents["text"].tolist()} - {""}
        if len(meaningful) < minimum:
            raise IngestError(f"at least {minimum} different comments are needed to find themes in; this upload has "
                              f"{len(meaningful)} once handles, links and masks are taken out",
                              "too-few-comments")  # fmt: skip
