"""Malformed uploads: each one gets a clear 4xx problem+json naming the problem, or is accepted and read correctly
(bad rows counted and reported). Never a 500, never a hang.

Small uploads (≤ 4 MB) are parsed whole by the API before a job is made; for accepted ones the stored upload is read
back with the worker's own ``read_csv``, or the worker's ingest stage is run on the job and the counts read from
``GET /v1/jobs/{id}``.
"""

from __future__ import annotations

import base64
import codecs
import csv
import gzip
import io
import random
import time
import zipfile
from pathlib import Path

import pytest
from sqlalchemy import select

from service.storage.models import Document, ThemeRow
from service.storage.session import session_scope
from tests.api_helpers import assert_problem, make_client, new_key, stored_counts
from worker.pipeline.csv_cells import is_formula
from worker.pipeline.ingest import MAX_TEXT_CHARS, ColumnMap, read_csv

QUICK = 10.0  # seconds: an upload that takes longer than this counts as a hang


def post_csv(client, headers, data: bytes, name: str = "feedback.csv", text_column: str = "text", **fields):
    started = time.monotonic()
    response = client.post("/v1/jobs", headers=headers, files={"file": (name, data, "text/csv")},
                           data={"text_column": text_column, **fields})  # fmt: skip
    response.elapsed_s = time.monotonic() - started
    return response


def zip_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("feedback.csv", "text\nhello\nworld\n" * 200)
    return buffer.getvalue()


PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01\x00\x00\x00\x01\x00\x08\x06\x00\x00\x00" + bytes(range(256)) * 8

# (name, file bytes, form fields, status, words the detail must contain)
REFUSED = [
    ("no text column", b"Review Text,Rating\nnice,5\nbad,1\n", {}, 422, ["'text' not found", "'Review Text', 'Rating'"]),
    ("wrong text_column", b"text,rating\nnice,5\nbad,1\n", {"text_column": "comment"}, 422, ["'comment' not found", "'text', 'rating'"]),
    ("wrong rating_column", b"text,rating\nnice,5\nbad,1\n", {"rating_column": "stars"}, 422, ["'stars' not found"]),
    ("empty file", b"", {}, 422, ["empty"]),
    ("only blank lines", b"  \r\n\n\t\n", {}, 422, ["empty"]),
    ("only a UTF-8 BOM", codecs.BOM_UTF8, {}, 422, ["no header row"]),
    ("header only", b"text,rating\n", {}, 422, ["no rows"]),
    ("no row has text", b"text,rating\n,5\n  ,4\n", {}, 422, ["no row has text in column 'text'"]),
    ("one row", b"text\nThe parcel came late\n", {}, 422, ["at least 2 different comments", "has 1"]),
    ("every row the same", b"text\nsame\nsame\nsame\n", {}, 422, ["at least 2 different comments", "has 1"]),
    ("unbalanced quotes", b'text,rating\n"it broke after a day,1\nfine,5\n', {}, 422, ["cannot be parsed", "EOF inside string"]),
    ("first row wider than the header", b"text,rating\nsoft, warm,5\nfine,4\n", {}, 422, ["more fields than the header"]),
    ("later row wider than the header", b"text,rating\nfine,4\nsoft, warm,5\n", {}, 422, ["Expected 2 fields in line 3, saw 3"]),
    ("duplicate ids", b"id,text\n7,late\n7,early\n", {"id_column": "id"}, 422, ["duplicate values: '7'"]),
    ("an id over 200 characters", b"id,text\n7,late\n" + b"8" * 201 + b",early\n", {"id_column": "id"}, 422,
     ["longer than 200 characters"]),
    ("random binary named .csv", random.Random(0).randbytes(5000), {}, 415, ["not text"]),
    ("PNG image named .csv", PNG, {}, 415, ["not text"]),
    ("zip file", zip_bytes(), {}, 415, ["not text"]),
    ("gzip file", gzip.compress(b"text\nhello\nworld\n" * 200, mtime=0), {}, 415, ["not text"]),
    ("UTF-16 without BOM", "text\nhello\nworld\n".encode("utf-16-le"), {}, 415, ["UTF-16 without a byte-order mark"]),
    ("control characters", b"text\n" + bytes(range(1, 9)) * 20 + b"\n", {}, 415, ["binary content"]),
    ("text_column with NUL", b"text\na\nb\n", {"text_column": "te\x00xt"}, 422, ["'text_column' contains a NUL"]),
    ("text_column too long", b"text\na\nb\n", {"text_column": "t" * 201}, 422, ["'text_column' is too long"]),
]


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """One service for the refused uploads (nothing they send is ever stored, so they cannot disturb each other)."""
    from service.settings import get_settings
    from service.storage.session import upgrade_database

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FEEDBACK_THEMES_DATA_DIR", str(tmp_path_factory.mktemp("refused") / "data"))
        for name in ("DATABASE_URL", "BROKER_URL", "RESULT_BACKEND", "MAX_UPLOAD_BYTES", "RATE_LIMIT_PER_MINUTE"):
            patch.delenv(f"FEEDBACK_THEMES_{name}", raising=False)
        get_settings.cache_clear()
        upgrade_database()
        yield make_client(), new_key("alice"), get_settings()
    get_settings.cache_clear()


@pytest.mark.parametrize(("name", "data", "fields", "status", "words"), REFUSED, ids=[r[0] for r in REFUSED])
def test_refused_uploads(shared, name, data, fields, status, words):
    client, alice, settings = shared
    fields = dict(fields)
    response = post_csv(client, alice, data, text_column=fields.pop("text_column", "text"), **fields)
    assert_problem(response, status, *words)
    assert response.elapsed_s < QUICK
    assert stored_counts() == (0, 0, 0)  # no job, no project, nothing stored
    assert not list(settings.uploads_dir.glob("*"))


def test_refused_requests(client, alice, service_env):
    """Malformed requests around the file: wrong media type, bad multipart, JSON of the wrong shape, bad headers."""
    jobs = "/v1/jobs"
    form = {"text_column": "text"}
    ok_file = {"file": ("f.csv", b"text\na\nb\n")}
    cases = [
        (client.post(jobs, headers={**alice, "content-type": "text/plain"}, content=b"text\na\n"), 415, ["text/plain"]),
        (client.post(jobs, headers={**alice, "content-type": "application/xml"}, content=b"<a/>"), 415, ["application/xml"]),
        (client.post(jobs, headers={**alice, "content-type": "multipart/form-data; boundary=xyz"},
                     content=b"--xyz\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nno end"), 422,
         ["no file field 'file'"]),
        (client.post(jobs, headers={**alice, "content-type": "multipart/form-data"}, content=b"no boundary"), 400,
         ["multipart"]),
        (client.post(jobs, headers=alice, files=[("file", ("a.csv", b"text\na\n")), ("file", ("b.csv", b"text\nb\n"))],
                     data=form), 400, ["multipart"]),
        (client.post(jobs, headers=alice, data=form, files={"other": ("a.csv", b"text\na\n")}), 422, ["'file'"]),
        (client.post(jobs, headers=alice, files=ok_file), 422, ["text_column"]),
        (client.post(jobs, headers=alice, files=ok_file, data={**form, "project": "nope"}), 404, ["no project 'nope'"]),
        (client.post(jobs, headers=alice, files=ok_file, data={**form, "project": "p\x00"}), 422, ["NUL"]),
        (client.post(jobs, headers=alice, json=[{"text": "a"}, {"text": "b"}]), 422, ["body: Input should be an object"]),
        (client.post(jobs, headers=alice, json={"rows": [{"text": "a"}]}), 422, ["body.items: Field required"]),
        (client.post(jobs, headers=alice, json={"items": "a"}), 422, ["body.items: Input should be a valid array"]),
        (client.post(jobs, headers=alice, json={"items": []}), 422, ["body.items"]),
        (client.post(jobs, headers=alice, json={"items": [{"text": 5}, {"text": "b"}]}), 422, ["body.items.0.text"]),
        (client.post(jobs, headers=alice, json={"items": [{"txt": "a"}]}), 422, ["body.items.0"]),
        (client.post(jobs, headers=alice, json={"items": [{"text": "a", "rating": "five"}]}), 422,
         ["body.items.0.rating"]),
        (client.post(jobs, headers=alice, json={"items": [{"text": "a"}, {"text": "b"}], "project": "p" * 40}), 422,
         ["body.project"]),
        (client.post(jobs, headers=alice, json={"items": [{"text": "a"}, {"text": "b"}], "project": "p\x00"}), 422,
         ["body.project", "NUL"]),
        (client.post(jobs, headers=alice, json={"items": [{"text": "same"}, {"text": "same"}]}), 422,
         ["at least 2 different comments"]),
        (client.post(jobs, headers=alice, json={"items": [{"text": " "}, {"text": "&nbsp;"}]}), 422, ["no row has text"]),
        (client.post(jobs, headers={**alice, "content-type": "application/json"}, content=b'{"items": [{"text": "a"'),
         422, ["Invalid JSON"]),
        (client.post(jobs, headers={**alice, "content-type": "application/json"}, content=b"\xff\xfe{}"), 422,
         ["Invalid JSON"]),
        (client.post(jobs, headers={**alice, "Idempotency-Key": "k" * 201}, json={"items": [{"text": "a"}]}), 422,
         ["Idempotency-Key"]),
        (client.get("/v1/jobs/%00", headers=alice), 400, ["NUL"]),
        (client.get("/v1/projects/a%00b/themes", headers=alice), 400, ["NUL"]),
        (client.get("/v1/projects?cursor=%00", headers=alice), 400, ["NUL"]),
        (client.get("/v1/projects?cursor=!!", headers=alice), 400, ["cursor"]),
        (client.get("/v1/projects?limit=100000", headers=alice), 422, ["limit"]),
    ]
    for response, status, words in cases:
        assert_problem(response, status, *words)
    assert stored_counts() == (0, 0, 0)
    assert not list(service_env.uploads_dir.glob("*"))


def test_over_the_size_limit(service_env, monkeypatch, alice):
    """Declared (Content-Length) and streamed (chunked, no length) bodies over the limit: 413, nothing stored."""
    from service.settings import get_settings

    monkeypatch.setenv("FEEDBACK_THEMES_MAX_UPLOAD_BYTES", str(64 * 1024))
    get_settings.cache_clear()
    client = make_client()
    data = b"text\n" + b"a comment that goes on\n" * 5000
    assert_problem(post_csv(client, alice, data), 413, "larger than the limit")

    def chunks():
        for _ in range(100):
            yield b"x" * 4096

    streamed = client.post("/v1/jobs", headers={**alice, "content-type": "application/json"}, content=chunks())
    assert_problem(streamed, 413, "larger than the limit")
    assert stored_counts() == (0, 0, 0)
    assert not list(service_env.uploads_dir.glob("*"))


# ---------------------------------------------------------------- accepted, and read correctly


def accepted(response) -> dict:
    assert response.status_code == 202, response.text
    assert response.elapsed_s < QUICK
    return response.json()


def stored_upload(settings, job: dict) -> Path:
    return settings.uploads_dir / f"{job['id']}.csv"


def run_ingest(client, headers, job: dict) -> dict:
    """Run the worker's ingest stage on the job (as the worker would) and return the job as the API shows it."""
    from worker.runner import ingest

    ingest(job["id"])
    state = client.get(f"/v1/jobs/{job['id']}", headers=headers).json()
    assert state["status"] == "running" and state["stage"] == "ingest" and state["progress"] == pytest.approx(0.1)
    return state


def test_undecodable_bytes_fall_back_to_a_single_byte_encoding(client, alice, service_env):
    data = b"text\ncaf\xe9 cr\xe8me br\xfbl\xe9e\nna\xefve \x81\x8d question\n"  # not UTF-8; \x81 not cp1252
    job = accepted(post_csv(client, alice, data))
    result = read_csv(stored_upload(service_env, job), ColumnMap())
    assert result.encoding == "latin-1"
    assert result.documents["text"].tolist() == ["café crème brûlée", "naïve \x81\x8d question"]


def test_utf16_with_bom(client, alice, service_env):
    data = "text;rating\nÜbergröße passt nicht;2\n很好;5\n".encode("utf-16")
    job = accepted(post_csv(client, alice, data, rating_column="rating"))
    result = read_csv(stored_upload(service_env, job), ColumnMap(rating="rating"))
    assert (result.encoding, result.delimiter) == ("utf-16", ";")
    assert result.documents["text"].tolist() == ["Übergröße passt nicht", "很好"]
    assert result.documents["rating"].tolist() == [2.0, 5.0]


def test_a_10_mb_field_is_cut_and_counted(client, alice, service_env):
    """Over 4 MB: only the header is checked by the API; the worker cuts the field to MAX_TEXT_CHARS and counts it
    (sentiment scoring is quadratic in a text's length: a 10 MB comment would hold a worker for days)."""
    words = ("late parcel soft fabric refund great " * 300_000)[: 10 * 1024 * 1024]
    data = ("text,rating\nshort one,4\n\"" + words + "\",2\nanother short one,5\n").encode()
    job = accepted(post_csv(client, alice, data, rating_column="rating"))
    started = time.monotonic()
    state = run_ingest(client, alice, job)
    assert time.monotonic() - started < 30
    assert state["counts"]["documents"] == 3 and state["counts"]["truncated_texts"] == 1
    with session_scope() as session:
        lengths = sorted(len(t) for t in session.scalars(select(Document.text).where(Document.job_id == job["id"])))
    assert lengths[-1] == MAX_TEXT_CHARS - 1 or lengths[-1] == MAX_TEXT_CHARS  # cut at a space: rstrip may drop one
    assert lengths[:2] == [9, 17]


def test_mixed_delimiters_follow_the_header(client, alice, service_env):
    data = b"text;rating\nsoft and warm;5\ntoo small, sadly,2\nfine|4\nok;3\n"
    job = accepted(post_csv(client, alice, data, rating_column="rating"))
    result = read_csv(stored_upload(service_env, job), ColumnMap(rating="rating"))
    assert result.delimiter == ";"
    docs = result.documents
    assert docs["text"].tolist() == ["soft and warm", "too small, sadly,2", "fine|4", "ok"]
    assert docs["rating"].tolist()[0::3] == [5.0, 3.0] and docs["rating"].isna().sum() == 2


def test_one_column_with_unquoted_commas(client, alice, service_env):
    """A file with only a text column: commas are part of the comment (they used to shift into a phantom index)."""
    data = b"text\nhello, world\nbye\nlate, and broken, and cold\n"
    job = accepted(post_csv(client, alice, data))
    docs = read_csv(stored_upload(service_env, job), ColumnMap()).documents
    assert docs["text"].tolist() == ["hello, world", "bye", "late, and broken, and cold"]


def test_ratings_that_are_not_numbers_are_counted(client, alice):
    data = b"text,rating\na,five\nb,4\nc,\nd,\"3,5\"\ne,n/a\nf,4.5\n"
    job = accepted(post_csv(client, alice, data, rating_column="rating"))
    state = run_ingest(client, alice, job)
    assert state["counts"]["invalid_ratings"] == 2 and state["counts"]["documents"] == 6
    with session_scope() as session:
        ratings = dict(session.query(Document.text, Document.rating).filter(Document.job_id == job["id"]).all())
    assert ratings == {"a": None, "b": 4.0, "c": None, "d": 3.5, "e": None, "f": 4.5}


def test_dates_in_several_formats(client, alice):
    data = (b"text,date\na,2024-01-02\nb,02/03/2024\nc,March 3 2024\nd,2024-01-02T10:00:00+02:00\ne,not a date\n"
            b"f,1700000000\ng,\n")  # fmt: skip
    job = accepted(post_csv(client, alice, data, date_column="date"))
    state = run_ingest(client, alice, job)
    assert state["counts"]["invalid_dates"] == 2
    with session_scope() as session:
        dates = dict(session.query(Document.text, Document.date).filter(Document.job_id == job["id"]).all())
    shown = {k: v.strftime("%Y-%m-%d %H:%M") if v else None for k, v in dates.items()}
    assert shown == {"a": "2024-01-02 00:00", "b": "2024-02-03 00:00", "c": "2024-03-03 00:00",
                     "d": "2024-01-02 08:00", "e": None, "f": None, "g": None}  # fmt: skip


@pytest.mark.slow
def test_a_million_rows_of_one_character(client, alice, service_env):
    """2 MB: parsed whole by the API, quickly. All one letter: refused (nothing to find themes in); a-z: accepted."""
    same = b"text\n" + b"a\n" * 1_000_000
    refused = post_csv(client, alice, same)
    assert_problem(refused, 422, "at least 2 different comments", "has 1")
    assert refused.elapsed_s < 30
    letters = b"text\n" + b"".join(bytes([97 + i % 26]) + b"\n" for i in range(1_000_000))
    response = post_csv(client, alice, letters)
    assert response.status_code == 202 and response.elapsed_s < 30, response.text
    result = read_csv(stored_upload(service_env, response.json()), ColumnMap())
    assert result.counts["rows_read"] == result.counts["documents"] == 1_000_000
    assert result.counts["duplicate_texts"] == 1_000_000 - 26


FORMULAS = ["=HYPERLINK(\"http://evil.example\",\"click\")", "+1+1", "-2+3", "@SUM(A1:A9)", "\t=1", "=cmd|' /C calc'!A0"]


def test_formula_cells_are_stored_as_text_and_exported_neutralised(client, alice):
    rows = "".join(f"F{i},\"{f.replace(chr(34), chr(34) * 2)}\"\n" for i, f in enumerate(FORMULAS))
    data = ("id,text\n" + rows + "ok,a plain comment\n").encode()
    job = accepted(post_csv(client, alice, data, id_column="id"))
    run_ingest(client, alice, job)
    with session_scope() as session:
        stored = dict(session.query(Document.doc_id, Document.text).filter(Document.job_id == job["id"]).all())
    assert stored[f"F{FORMULAS.index('+1+1')}"] == "+1+1"  # kept as written (only the tab is a control character)

    report = client.get(f"/v1/projects/{job['project_id']}/reports/documents.csv", headers=alice)
    assert report.status_code == 200 and report.headers["content-type"].startswith("text/csv")
    exported = {row["doc_id"]: row["text"] for row in csv.DictReader(io.StringIO(report.text))}
    for doc_id, text in stored.items():
        assert exported[doc_id] == ("'" + text if is_formula(text) else text), (doc_id, exported[doc_id])
    assert sum(v.startswith("'") for v in exported.values()) == sum(is_formula(f) for f in FORMULAS) >= 4

    # themes.csv: a theme whose label a spreadsheet would run is neutralised too
    with session_scope() as session:
        from service.storage.models import Job, Project

        session.get(Job, job["id"]).status = "succeeded"
        session.get(Project, job["project_id"]).current_job_id = job["id"]
        record = {"id": 3, "label": "=HYPERLINK(\"http://evil.example\")", "keywords": ["@risk", "-1"], "size": 2,
                  "share": 0.3, "sentiment": {"mean": 0.1, "negative": 0, "neutral": 1, "positive": 0},
                  "rating": None, "examples": [], "features": [3], "first_seen_job": job["id"], "is_new": True}  # fmt: skip
        session.add(ThemeRow(job_id=job["id"], theme_id=3, project_id=job["project_id"], label=record["label"],
                             size=2, sentiment_mean=0.1, first_seen_job=job["id"], record=record))  # fmt: skip
    themes = client.get(f"/v1/projects/{job['project_id']}/reports/themes.csv", headers=alice)
    assert themes.status_code == 200, themes.text
    cells = [cell for row in csv.reader(io.StringIO(themes.text)) for cell in row]
    assert "'" + record["label"] in cells
    assert not [cell for cell in cells if is_formula(cell)], cells


def test_html_and_script_in_comments_stay_text(client, alice):
    data = (b"text\n<script>alert('x')</script> the parcel was late\n&lt;b&gt;bold&lt;/b&gt; &amp; brash\n"
            b"<img src=x onerror=alert(1)>\n")  # fmt: skip
    job = accepted(post_csv(client, alice, data))
    state = run_ingest(client, alice, job)
    assert state["counts"]["documents"] == 3
    with session_scope() as session:
        texts = session.scalars(select(Document.text).where(Document.job_id == job["id"]).order_by(Document.id)).all()
    assert texts == ["<script>alert('x')</script> the parcel was late", "<b>bold</b> & brash", "<img src=x onerror=alert(1)>"]
    report = client.get(f"/v1/projects/{job['project_id']}/reports/documents.csv", headers=alice)
    assert report.headers["content-type"].startswith("text/csv") and "<script>alert('x')</script>" in report.text
    for path in (f"/v1/jobs/{job['id']}", f"/v1/projects/{job['project_id']}"):
        assert client.get(path, headers=alice).headers["content-type"] == "application/json"


def test_cr_only_and_crlf_line_endings(client, alice, service_env):
    for data in (b"text,rating\rlate,1\rsoft,5\r", b"text,rating\r\nlate,1\r\nsoft,5\r\n"):
        job = accepted(post_csv(client, alice, data, rating_column="rating"))
        docs = read_csv(stored_upload(service_env, job), ColumnMap(rating="rating")).documents
        assert docs["text"].tolist() == ["late", "soft"] and docs["rating"].tolist() == [1.0, 5.0]


def test_a_single_row_is_accepted_into_an_existing_project(client, alice):
    """An update may be one comment: the project already has the others."""
    first = accepted(post_csv(client, alice, b"text\nlate\nsoft\n"))
    one = accepted(post_csv(client, alice, b"text\nThe parcel came late\n", project=first["project_id"]))
    assert one["project_id"] == first["project_id"]
    json_one = client.post("/v1/jobs", headers=alice, json={"project": first["project_id"], "items": [{"text": "x"}]})
    assert json_one.status_code == 202, json_one.text


def test_stray_nul_bytes_past_the_first_bytes_are_dropped(client, alice, service_env):
    """A NUL past the sniffed head (PostgreSQL refuses it in text): dropped from texts and ids alike."""
    data = b"id,text\n" + b"".join(b"r%d,comment number %d\n" % (i, i) for i in range(5000)) + b"x\x00y,nul\x00 inside\n"
    job = accepted(post_csv(client, alice, data, id_column="id"))
    docs = read_csv(stored_upload(service_env, job), ColumnMap(id="id")).documents
    assert docs["doc_id"].iloc[-1] == "xy" and docs["text"].iloc[-1] == "nul inside"
    items = [{"text": "a\x00b", "id": "i\x00d"}, {"text": "c"}]
    response = client.post("/v1/jobs", headers=alice, json={"items": items})
    assert response.status_code == 202, response.text
    from worker.pipeline.ingest import from_records

    records = from_records(items).documents
    assert records["doc_id"].tolist()[0] == "id" and records["text"].tolist()[0] == "ab"


def test_other_tenant_key_cannot_upload_into_a_project(client, alice):
    job = accepted(post_csv(client, alice, b"text\nlate\nsoft\n"))
    bob = new_key("bob")
    assert_problem(post_csv(client, bob, b"text\nlate\nsoft\n", project=job["project_id"]), 404, "no project")


# ---------------------------------------------------------------- out-of-range numbers, long names, large files

POSTGRES_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
BIG_IDS = [2**31, 2**63]  # over PostgreSQL's integer; over SQLite's
THEME = {"label": "late parcels", "keywords": ["late"], "size": 2, "share": 0.5, "rating": None, "examples": [],
         "sentiment": {"mean": 0.0, "negative": 0, "neutral": 1, "positive": 0}, "features": [1], "is_new": True}  # fmt: skip


@pytest.fixture(params=["sqlite", "postgresql"])
def any_database(request, tmp_path, monkeypatch):
    """An in-process client and a key, on SQLite and on a fresh PostgreSQL database (when one is reachable)."""
    from service.settings import get_settings
    from service.storage.session import upgrade_database
    from tests.service_harness import reachable

    url = None
    if request.param == "postgresql":
        if not reachable(5432):
            pytest.skip("needs PostgreSQL on 127.0.0.1:5432 (not reachable)")
        url = create_postgres_database(request)
    monkeypatch.setenv("FEEDBACK_THEMES_DATA_DIR", str(tmp_path / "data"))
    for name in ("DATABASE_URL", "BROKER_URL", "RESULT_BACKEND", "MAX_UPLOAD_BYTES", "RATE_LIMIT_PER_MINUTE"):
        monkeypatch.delenv(f"FEEDBACK_THEMES_{name}", raising=False)
    if url:
        monkeypatch.setenv("FEEDBACK_THEMES_DATABASE_URL", url)
    get_settings.cache_clear()
    upgrade_database()
    yield make_client(), new_key("alice")
    get_settings.cache_clear()


def create_postgres_database(request) -> str:
    """A new database, dropped when the test ends."""
    import uuid

    import psycopg

    name = f"ft_bad_{uuid.uuid4().hex[:12]}"
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        from service.storage.session import engine_for

        engine_for(url).dispose()
        with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    request.addfinalizer(drop)
    return url


def finished_project(client, headers) -> dict:
    """A project whose job is marked succeeded with two stored themes (ids 1 and 2), as the worker leaves it."""
    from service.storage.models import Job, Project

    job = client.post("/v1/jobs", headers=headers, json={"items": [{"text": "late parcel"}, {"text": "soft wool"}]})
    assert job.status_code == 202, job.text
    job = job.json()
    with session_scope() as session:
        session.get(Job, job["id"]).status = "succeeded"
        session.get(Project, job["project_id"]).current_job_id = job["id"]
        for theme_id in (1, 2):
            record = {**THEME, "id": theme_id, "first_seen_job": job["id"]}
            session.add(ThemeRow(job_id=job["id"], theme_id=theme_id, project_id=job["project_id"], label="late",
                                 size=2, sentiment_mean=0.0, first_seen_job=job["id"], record=record))  # fmt: skip
    return job


def encoded_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(str(offset).encode()).decode().rstrip("=")


def test_cursors_out_of_range_are_invalid(any_database):
    """On every paginated list: an offset the API never gives out (negative, or past any list) is a 400 problem."""
    client, alice = any_database
    job = finished_project(client, alice)
    project, job_id = f"/v1/projects/{job['project_id']}", f"/v1/jobs/{job['id']}"
    routes = ["/v1/projects", f"{project}/themes", f"{project}/themes/1", f"{job_id}/themes"]
    for route in routes:
        assert client.get(route, headers=alice, params={"cursor": encoded_cursor(0)}).status_code == 200, route
        for offset in (2**63, 2**31, -1):
            response = client.get(route, headers=alice, params={"cursor": encoded_cursor(offset)})
            assert assert_problem(response, 400, "cursor")["type"].endswith("invalid-cursor"), route


def test_theme_ids_out_of_range_are_422(any_database):
    """Theme ids past a 32-bit integer, in the path or the merge body: a 422 validation problem, never a 500."""
    client, alice = any_database
    job = finished_project(client, alice)
    themes = f"/v1/projects/{job['project_id']}/themes"
    for big in BIG_IDS:
        requests = [client.get(f"{themes}/{big}", headers=alice),
                    client.patch(f"{themes}/{big}", headers=alice, json={"label": "x"}),
                    client.post(f"{themes}/{big}/merge", headers=alice, json={"themes": [1]}),
                    client.post(f"{themes}/{big}/unmerge", headers=alice),
                    client.post(f"{themes}/1/merge", headers=alice, json={"themes": [2, big]}),
                    client.get(f"{themes}/-1", headers=alice)]  # fmt: skip
        for response in requests:
            assert assert_problem(response, 422)["type"].endswith("validation-error")
    assert client.get(f"{themes}/{2**31 - 1}", headers=alice).status_code == 404  # in range: looked up, not there
    assert client.post(f"{themes}/1/merge", headers=alice, json={"themes": [2]}).status_code == 200


def test_a_long_file_name_is_cut_for_the_project_name(any_database):
    client, alice = any_database
    name = "quarterly survey " * 15 + ".csv"  # 259 characters
    job = accepted(post_csv(client, alice, b"text\nlate\nsoft\n", name=name))
    project = client.get(f"/v1/projects/{job['project_id']}", headers=alice).json()
    assert len(project["name"]) == 200 and project["name"].startswith("quarterly survey") and name.endswith(".csv")


def test_the_project_name_keeps_short_names_and_drops_control_characters():
    from service.api.uploads import project_name

    assert project_name("reviews.csv") == "reviews.csv" and project_name(None) is None
    assert project_name("a\x00b\tc.csv") == "a b c.csv"
    assert project_name("x" * 300) == "x" * 199 + "…"
    assert project_name("y" * 300 + ".csv") == "y" * 195 + "….csv"


BIG = 4 * 1024 * 1024  # the size past which the API streams a file instead of parsing it whole


def test_a_large_file_with_one_distinct_comment_is_refused(client, alice, service_env):
    """Over 4 MB: the API streams the file for two different comments before it makes a job."""
    data = b"text,rating\n" + b"the parcel came late,1\n" * (BIG // 22 + 1000)
    assert len(data) > BIG
    response = post_csv(client, alice, data, rating_column="rating")
    assert_problem(response, 422, "at least 2 different comments", "has 1")
    assert response.json()["type"].endswith("too-few-comments") and response.elapsed_s < QUICK
    assert stored_counts() == (0, 0, 0) and not list(service_env.uploads_dir.glob("*"))


def test_a_large_file_of_one_giant_field_is_refused(client, alice, service_env):
    """One header line, then a single quoted field longer than csv's field limit: a 422 problem, not a crash."""
    data = b'text\n"' + b'it is soft, warm and ""very"" late\n' * (BIG // 30 + 1000) + b'"\n'
    response = post_csv(client, alice, data)
    assert_problem(response, 422, "at least 2 different comments", "has 1")
    assert response.elapsed_s < QUICK and stored_counts() == (0, 0, 0)


def test_large_files_that_cannot_be_read_are_refused(shared):
    client, alice, settings = shared
    open_quote = b"text\nfine\n\"" + b"x" * BIG
    assert_problem(post_csv(client, alice, open_quote), 422, "EOF inside string")
    no_text = b"text,rating\n" + b",5\n" * (BIG // 3)
    assert_problem(post_csv(client, alice, no_text), 422, "no row has text in column 'text'")
    assert stored_counts() == (0, 0, 0) and not list(settings.uploads_dir.glob("*"))


def test_large_files_are_accepted_once_two_comments_differ(client, alice):
    """The stream stops at the second different comment; one comment is enough for an existing project."""
    data = b"text\nlate\nsoft\n" + b"x" * BIG + b"\n"
    first = accepted(post_csv(client, alice, data))
    same = b"text\n" + b"late\n" * (BIG // 5 + 10)
    accepted(post_csv(client, alice, same, project=first["project_id"]))


def test_the_streamed_check_holds_a_giant_field_once(tmp_path):
    """A 24 MB single field: pandas holds it whole, once; the check's peak stays a small multiple of its size."""
    import tracemalloc

    from worker.pipeline.ingest import check_upload

    size = 24 * 1024 * 1024
    path = tmp_path / "giant.csv"
    path.write_bytes(b'text\n"' + b"soft wool " * (size // 10) + b'"\n')
    tracemalloc.start()
    try:
        result = check_upload(path, ColumnMap())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert result.partial and result.counts == {"distinct_texts": 1}
    assert peak < 4 * size, peak


def test_the_streamed_check_holds_a_chunk_of_records_at_once(tmp_path):
    """24 MB of one comment: read in chunks of records, a few MB at most are held at once."""
    import tracemalloc

    from worker.pipeline.ingest import check_upload

    path = tmp_path / "same.csv"
    path.write_bytes(b"text,rating\n" + b"the parcel came late,1\n" * (24 * 1024 * 1024 // 23))
    tracemalloc.start()
    try:
        result = check_upload(path, ColumnMap())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert result.partial and result.counts == {"distinct_texts": 1}
    assert peak < 8 * 1024 * 1024, peak


def test_a_large_file_whose_first_row_is_wider_than_the_header(tmp_path):
    """Streamed, as read whole: extra leading fields would shift the data (pandas would take them as an index)."""
    from worker.pipeline.ingest import IngestError, check_upload

    path = tmp_path / "wide.csv"
    path.write_bytes(b"text,rating\nsoft, warm,5\n" + b"fine,4\n" * (BIG // 7 + 10))
    with pytest.raises(IngestError) as err:
        check_upload(path, ColumnMap())
    assert err.value.code == "malformed-csv" and "more fields than the header" in str(err.value)


STREAMED = [
    (codecs.BOM_UTF8 + "review;stars\nCafé crème;2\nsehr gut;5\nsehr gut;5\n".encode(), "review", 2),
    ("review\tscore\nGreat fit\t5\nbad\t1\n".encode("utf-16"), "review", 2),
    ("review;stars\n“Smart quotes” – €;4\nnaïve;3\n".encode("cp1252"), "review", 2),
    (b"text\nhello, world\nbye\n", "text", 2),
    (b"a|text\n1|&amp;\n2| &amp; \n3|\n", "text", 1),
    (b"text,x\r\n\"multi\r\nline\",1\r\n\"multi\r\nline\",2\r\n", "text", 1),
    (b"text\n" + b"x\n" * 40_000 + b"ab\x00cd\nabcd\n" + b"\x00" * 3_000_000 + b"\nab cd\n", "text", 3),
    (b"text\na\x1fb\na b\n\"a\x1f\"\n", "text", 2),
]


@pytest.mark.parametrize(("raw", "column", "distinct"), STREAMED)
def test_the_streamed_check_detects_like_read_csv(tmp_path, raw, column, distinct):
    """Encodings, delimiters, one column, entities, quoted line ends: streamed, the same different texts."""
    from worker.pipeline.ingest import check_upload, count_distinct_texts

    path = tmp_path / "upload.csv"
    path.write_bytes(raw)
    full = read_csv(path, ColumnMap(text=column))
    streamed = check_upload(path, ColumnMap(text=column), full_check_bytes=0, minimum=10)
    assert count_distinct_texts(full) == count_distinct_texts(streamed) == distinct
    assert (streamed.encoding, streamed.delimiter) == (full.encoding, full.delimiter)


def random_csv(rng: random.Random) -> tuple[str, int]:
    """A small CSV of quoted, multi-line, spaced and blank fields; and the index of the column to read."""
    def field() -> str:
        body = "".join(rng.choice(["a", "b", " ", "c d", ",", "\n", '"']) for _ in range(rng.randint(0, 5)))
        if rng.random() < 0.5:
            return rng.choice(["", " "]) + '"' + body.replace('"', '""') + '"' + rng.choice(["", "z"])
        return "".join(ch for ch in body if ch not in ',\n"')

    width = rng.randint(1, 4)
    rows = [",".join(f"c{j}" for j in range(width))]
    rows += [",".join(field() for _ in range(width)) for _ in range(rng.randint(1, 6))]
    return rng.choice(["\n", "\r\n"]).join(rows) + "\n", rng.randrange(width)


def test_the_streamed_check_finds_the_texts_read_csv_finds(tmp_path, monkeypatch):
    """check_upload (in chunks of two records) against read_csv (whole) on random CSVs: the same different texts."""
    from worker.pipeline import ingest

    monkeypatch.setattr(ingest, "STREAM_ROWS", 2)
    rng = random.Random(3)
    path = tmp_path / "upload.csv"
    compared = 0
    for _ in range(600):
        text, column = random_csv(rng)
        path.write_bytes(text.encode())
        try:
            expected = ingest.count_distinct_texts(read_csv(path, ColumnMap(text=f"c{column}")))
        except ingest.IngestError:
            continue
        streamed = ingest.check_upload(path, ColumnMap(text=f"c{column}"), full_check_bytes=0, minimum=100)
        assert ingest.count_distinct_texts(streamed) == expected, (text, column)
        compared += 1
    assert compared > 300


def test_require_distinct_texts():
    """The worker's check of an ingested upload: too few different comments is an IngestError it can report."""
    from worker.pipeline.ingest import IngestError, count_distinct_texts, require_distinct_texts

    same = read_csv(b"text\nsame\n same \nsame\n", ColumnMap())
    assert count_distinct_texts(same) == 1
    with pytest.raises(IngestError) as err:
        require_distinct_texts(same)
    assert err.value.code == "too-few-comments" and "at least 2 different comments" in str(err.value)
    assert "has 1" in str(err.value)
    require_distinct_texts(read_csv(b"text\nsame\nother\n", ColumnMap()))
    require_distinct_texts(same, minimum=1)
