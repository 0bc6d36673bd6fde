"""Ingest stage: encodings, delimiters, quoting, column mapping, cleaning, counts and clear errors."""

from __future__ import annotations

import codecs

import numpy as np
import pytest

from worker.pipeline.ingest import (
    ColumnMap,
    IngestError,
    detect_delimiter,
    from_records,
    read_csv,
)

TEXT = ColumnMap(text="review")


def test_reads_the_sample(sample_csv):
    result = read_csv(sample_csv, ColumnMap(text="text", id="id", rating="rating", date="date"))
    docs = result.documents
    assert result.counts["rows_read"] == len(docs) == result.counts["documents"] > 150
    assert list(docs.columns) == ["doc_id", "text", "rating", "date"]
    assert docs["doc_id"].iloc[0] == "R0001"
    assert docs["rating"].between(1, 5).all()
    assert docs["date"].notna().all()


def test_utf8_bom_semicolon():
    raw = codecs.BOM_UTF8 + "review;stars\nCafé crème était trop cher;2\nsehr gut;5\n".encode("utf-8")
    result = read_csv(raw, ColumnMap(text="review", rating="stars"))
    assert (result.delimiter, result.encoding) == (";", "utf-8")
    assert result.documents["text"].tolist() == ["Café crème était trop cher", "sehr gut"]
    assert list(result.documents["rating"]) == [2.0, 5.0]


@pytest.mark.parametrize("bom", [b"", codecs.BOM_UTF8])
def test_cp1252_semicolon(bom):
    raw = bom + "review;stars\n“Smart quotes” – and a € sign;4\nnaïve;3\n".encode("cp1252")
    result = read_csv(raw, ColumnMap(text="review", rating="stars"))
    assert (result.delimiter, result.encoding) == (";", "cp1252")
    assert result.documents["text"].tolist() == ["“Smart quotes” – and a € sign", "naïve"]


def test_utf16_with_bom():
    raw = "review\tscore\nGreat fit\t5\n".encode("utf-16")
    result = read_csv(raw, ColumnMap(text="review"))
    assert result.delimiter == "\t"
    assert result.documents["text"].tolist() == ["Great fit"]


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_delimiters(delimiter):
    raw = f"id{delimiter}review\n1{delimiter}one\n2{delimiter}two, three\n".replace("two, three", '"two, three"')
    result = read_csv(raw.encode(), ColumnMap(text="review", id="id"))
    assert result.documents["text"].tolist() == ["one", "two, three"]


def test_quoted_multiline_html_entities_and_empties():
    raw = b'review,rating\n"line one\nline two",4\n"",3\n"  ",2\nFish &amp; chips &lt;3,5\n'
    result = read_csv(raw, ColumnMap(text="review", rating="rating"))
    assert result.documents["text"].tolist() == ["line one\nline two", "Fish & chips <3"]
    assert result.counts["empty_dropped"] == 2
    assert result.documents["rating"].tolist() == [4.0, 5.0]


def test_duplicates_are_counted_not_dropped():
    result = read_csv(b"review\nsame\nsame\nother\n", TEXT)
    assert result.counts["documents"] == 3 and result.counts["duplicate_texts"] == 1


def test_bad_ratings_and_dates_are_counted():
    raw = b"review,r,d\na,5,2026-01-02\nb,five,03/04/2026\nc,4.5,not a date\nd,,\n"
    result = read_csv(raw, ColumnMap(text="review", rating="r", date="d"))
    assert result.counts["invalid_ratings"] == 1
    assert result.counts["invalid_dates"] == 1
    assert np.isnan(result.documents["rating"].iloc[1])


def test_missing_column_lists_columns_found():
    with pytest.raises(IngestError) as err:
        read_csv(b"Review Text,Rating\nnice,5\n", ColumnMap(text="comment"))
    message = str(err.value)
    assert "'comment' not found" in message and "'Review Text', 'Rating'" in message
    assert "\n" not in message and err.value.code == "missing-column"


@pytest.mark.parametrize(
    ("raw", "code", "words"),
    [
        (b"", "empty-file", "empty"),
        (b"   \n\n", "empty-file", "empty"),
        (b"review\n", "no-rows", "no rows"),
        (b"review\n\n\n", "no-rows", "no rows"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", "undecodable", "not text"),
        (b"PK\x03\x04\x14\x00\x00\x00\x08\x00", "undecodable", "not text"),
    ],
)
def test_bad_files(raw, code, words):
    with pytest.raises(IngestError) as err:
        read_csv(raw, TEXT)
    assert err.value.code == code and words in str(err.value)


def test_only_empty_texts():
    with pytest.raises(IngestError, match="no row has text"):
        read_csv(b"review,x\n,1\n  ,2\n", TEXT)


def test_duplicate_ids_rejected():
    with pytest.raises(IngestError, match="duplicate values: '7'"):
        read_csv(b"id,review\n7,a\n7,b\n", ColumnMap(text="review", id="id"))


def test_from_records():
    result = from_records([{"text": "Great &amp; fast", "rating": 5, "id": "a"}, {"text": "slow", "id": "b"}])
    docs = result.documents
    assert docs["text"].tolist() == ["Great & fast", "slow"]
    assert docs["doc_id"].tolist() == ["a", "b"] and not result.generated_ids.any()
    assert docs["rating"].iloc[0] == 5.0 and np.isnan(docs["rating"].iloc[1])
    with pytest.raises(IngestError, match="no items"):
        from_records([])
    mixed = from_records([{"text": "x", "id": "a"}, {"text": "y"}, {"text": "z", "id": None}])
    assert mixed.documents["doc_id"].tolist() == ["a", "2", "3"]
    assert mixed.generated_ids.tolist() == [False, True, True]


def test_detect_delimiter_ignores_quoted():
    assert detect_delimiter('"a;b;c",d\n1,2') == ","
    assert detect_delimiter("only") == ","
