"""Spans in the stored results, over PostgreSQL: the ``span_themes`` report (CSV, Parquet, ``reporting.span_themes``),
``span_count`` in the themes report and the theme records, the spans of each comment in a theme's comment list, merged
themes, and results stored before spans were kept. The job is stored by the worker's own ``store_results``
(``tests/test_theme_edits.run_job``: each theme is carried by the spans that hold its sentence)."""

from __future__ import annotations

import csv
import io

import psycopg
import pytest

from tests.test_reporting import postgres  # noqa: F401 - the fixture
from tests.test_service_e2e import POSTGRES_ADMIN
from tests.test_theme_edits import TOPICS, run_job
from worker.pipeline.output import REPORT_COLUMNS, SPAN_THEMES_COLUMNS

pytestmark = pytest.mark.services
MERGED_TOPICS = {3: (TOPICS[3][0], TOPICS[5][0])}  # after merging 5 into 3


@pytest.fixture
def project(postgres):  # noqa: F811 - the fixture imported above
    from tests.api_helpers import make_client, new_key

    headers = new_key("alice")
    job_id, project_id = run_job(None)
    admin = psycopg.connect(POSTGRES_ADMIN.rsplit("/", 1)[0] + "/" + postgres["name"], autocommit=True)
    yield make_client(), headers, project_id, job_id, admin
    admin.close()


def csv_report(client, headers, project_id, name) -> tuple[list[str], list[dict]]:
    response = client.get(f"/v1/projects/{project_id}/reports/{name}.csv", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["x-report-schema-version"] == "4"
    reader = csv.DictReader(io.StringIO(response.text))
    return list(reader.fieldnames or []), list(reader)


def document_texts(client, headers, project_id) -> dict[str, str]:
    """doc_id → text, from the Parquet documents report (the CSV one neutralises formula cells)."""
    import pyarrow.parquet as pq

    response = client.get(f"/v1/projects/{project_id}/reports/documents.parquet", headers=headers)
    table = pq.read_table(io.BytesIO(response.content)).to_pydict()
    return dict(zip(table["doc_id"], table["text"]))


def carries(theme_id: int, span_text: str) -> bool:
    """The span holds the sentence of the theme (or of a theme merged into it)."""
    return any(topic in span_text for topic in MERGED_TOPICS.get(theme_id, (TOPICS[theme_id][0],)))


def test_span_themes_report_csv_parquet_and_reporting_schema(project):
    import pyarrow.parquet as pq

    client, headers, project_id, _, admin = project
    texts = document_texts(client, headers, project_id)
    header, rows = csv_report(client, headers, project_id, "span_themes")
    assert header == SPAN_THEMES_COLUMNS and rows
    spans = [(r["doc_id"], int(r["span_index"]), int(r["span_start"]), int(r["span_end"]), int(r["theme_id"]),
              float(r["activation"])) for r in rows]  # fmt: skip
    assert {s[4] for s in spans} == set(TOPICS)
    for doc_id, _, start, end, theme_id, _ in spans:
        text = texts[doc_id]
        assert 0 <= start < end <= len(text) and text[start:end].strip() == text[start:end]
        assert carries(theme_id, text[start:end]) or theme_id == 8, (theme_id, text, start, end)
    assert sum(carries(8, texts[s[0]][s[2] : s[3]]) for s in spans if s[4] == 8) >= sum(s[4] == 8 for s in spans) - 2
    # offsets count code points: after "🛒 " (one code point, two UTF-16 units) the second span starts where Python
    # says; every span's index follows its offsets within its comment
    later = [s for s in spans if texts[s[0]].startswith("\U0001f6d2") and s[1] > 0]
    assert later and all(texts[s[0]][s[2] - 2 : s[2]] == ". " for s in later)
    starts: dict[str, dict[int, int]] = {}
    for doc_id, index, start, *_ in spans:
        assert starts.setdefault(doc_id, {}).setdefault(index, start) == start
    assert all(sorted(s, key=s.get) == sorted(s) for s in starts.values())
    assert [(s[4], -s[5]) for s in spans] == sorted((s[4], -s[5]) for s in spans)  # by theme, highest first

    themes = {int(r["theme_id"]): r for r in csv_report(client, headers, project_id, "themes")[1]}
    assert {t: int(r["span_count"]) for t, r in themes.items()} == {t: sum(s[4] == t for s in spans) for t in TOPICS}
    assert csv_report(client, headers, project_id, "themes")[0][-3:] == ["span_count", "name", "parent_id"]

    response = client.get(f"/v1/projects/{project_id}/reports/span_themes.parquet", headers=headers)
    assert response.status_code == 200 and response.headers["x-report-schema-version"] == "4"
    table = pq.read_table(io.BytesIO(response.content))
    assert table.column_names == SPAN_THEMES_COLUMNS
    assert [str(f.type) for f in table.schema] == ["string", "int64", "int64", "int64", "int64", "double"]
    assert table.schema.metadata[b"feedback_themes.schema_version"] == b"4"
    assert list(zip(*table.to_pydict().values())) == spans

    published = admin.execute('SELECT doc_id, span_index, span_start, span_end, theme_id, activation FROM '
                              "reporting.span_themes WHERE project_id = %s", (project_id,)).fetchall()  # fmt: skip
    assert sorted(published) == sorted(spans)


def test_theme_comments_carry_their_spans_and_merges_fold_them_in(project):
    from sqlalchemy import select

    from service.storage.models import Document, SpanTheme
    from service.storage.session import session_scope

    client, headers, project_id, job_id, admin = project

    def detail(theme_id: int) -> dict:
        response = client.get(f"/v1/projects/{project_id}/themes/{theme_id}", headers=headers, params={"limit": 500})
        assert response.status_code == 200, response.text
        return response.json()

    def check(theme_id: int) -> dict:
        page = detail(theme_id)
        theme, members = page["theme"], page["members"]
        assert members and all(m["spans"] for m in members)
        for m in members:
            assert [s["index"] for s in m["spans"]] == sorted({s["index"] for s in m["spans"]})
            assert max(s["activation"] for s in m["spans"]) == pytest.approx(m["activation"], abs=1e-4)
            for s in m["spans"]:
                assert 0 <= s["start"] < s["end"] <= len(m["text"])
                assert carries(theme_id, m["text"][s["start"] : s["end"]]) or theme_id == 8
        assert theme["span_count"] == sum(len(m["spans"]) for m in members)
        for example in theme["examples"]:
            span = example["span"]
            assert example["text"][span["start"] : span["end"]] == span["text"] and set(span) == {"index", "start",
                                                                                               "end", "text"}
        return page

    for theme_id in TOPICS:
        check(theme_id)
    before = {t: detail(t)["theme"]["span_count"] for t in (3, 5)}
    _, rows = csv_report(client, headers, project_id, "span_themes")
    shared = next(r for r in rows if r["theme_id"] == "3")  # made to carry theme 5 too (weaker): one span once merged
    with session_scope() as session:
        document = session.scalar(select(Document.id).where(Document.project_id == project_id,
                                                            Document.doc_id == shared["doc_id"]))  # fmt: skip
        session.add(SpanTheme(job_id=job_id, theme_id=5, document_id=document, span_index=int(shared["span_index"]),
                              span_start=int(shared["span_start"]), span_end=int(shared["span_end"]), activation=0.01))  # fmt: skip
    union = {(r["doc_id"], r["span_index"]) for r in rows if r["theme_id"] in ("3", "5")}

    merged = client.post(f"/v1/projects/{project_id}/themes/3/merge", headers=headers, json={"themes": [5]})
    assert merged.status_code == 200, merged.text
    page = check(3)
    both = [m for m in page["members"] if len(m["spans"]) > 1]
    assert both and all({carries(3, m["text"][s["start"] : s["end"]]) for s in m["spans"]} == {True} for m in both)
    assert page["theme"]["span_count"] == len(union) > before[3]  # a span carrying both would count once
    _, rows = csv_report(client, headers, project_id, "span_themes")
    merged_rows = [(r["doc_id"], r["span_index"]) for r in rows if r["theme_id"] == "3"]
    assert len(merged_rows) == len(set(merged_rows)) and set(merged_rows) == union
    again = next(r for r in rows if (r["doc_id"], r["span_index"]) == (shared["doc_id"], shared["span_index"]))
    assert again["activation"] == shared["activation"]  # the span's highest activation
    assert "5" not in {r["theme_id"] for r in rows}
    themes = {r["theme_id"]: r for r in csv_report(client, headers, project_id, "themes")[1]}
    assert int(themes["3"]["span_count"]) == page["theme"]["span_count"]
    published = admin.execute("SELECT count(*) FROM reporting.span_themes WHERE project_id = %s AND theme_id = 3",
                              (project_id,)).fetchone()[0]  # fmt: skip
    assert published == page["theme"]["span_count"]  # a merge republishes span_themes

    assert client.post(f"/v1/projects/{project_id}/themes/5/unmerge", headers=headers).status_code == 200
    assert {t: detail(t)["theme"]["span_count"] for t in (3, 5)} == before


def test_results_stored_before_spans_were_kept(project):
    """A job stored before migration 0007: no span rows, records without ``span_count`` or the examples' ``span``."""
    from sqlalchemy import delete, select

    from service.storage.models import SpanTheme, ThemeRow
    from service.storage.session import session_scope

    client, headers, project_id, job_id, admin = project
    with session_scope() as session:
        session.execute(delete(SpanTheme).where(SpanTheme.job_id == job_id))
        for row in session.scalars(select(ThemeRow).where(ThemeRow.job_id == job_id)):
            record = {k: v for k, v in row.record.items() if k != "span_count"}
            record["examples"] = [{k: v for k, v in e.items() if k != "span"} for e in record["examples"]]
            row.record = record
    page = client.get(f"/v1/projects/{project_id}/themes/8", headers=headers).json()
    assert page["members"] and all(m["spans"] == [] for m in page["members"])
    assert "span_count" not in page["theme"] and all("span" not in e for e in page["theme"]["examples"])
    themes = client.get(f"/v1/projects/{project_id}/themes", headers=headers).json()["themes"]
    assert themes and all("span_count" not in t for t in themes)
    rows = {int(r["theme_id"]): r for r in csv_report(client, headers, project_id, "themes")[1]}
    assert all(int(r["span_count"]) == int(r["size"]) for r in rows.values())  # one span per comment
    assert csv_report(client, headers, project_id, "span_themes") == (SPAN_THEMES_COLUMNS, [])
    parquet = client.get(f"/v1/projects/{project_id}/reports/span_themes.parquet", headers=headers)
    assert parquet.status_code == 200 and len(parquet.content) > 0
    renamed = client.patch(f"/v1/projects/{project_id}/themes/8", headers=headers, json={"label": "Fit"})
    assert renamed.status_code == 200  # republishes: the themes' span_count falls back to their size
    published = dict(admin.execute("SELECT theme_id, span_count FROM reporting.themes WHERE project_id = %s",
                                   (project_id,)).fetchall())  # fmt: skip
    assert published == {t: int(r["size"]) for t, r in rows.items()}
    assert admin.execute("SELECT count(*) FROM reporting.span_themes WHERE project_id = %s",
                         (project_id,)).fetchone()[0] == 0  # fmt: skip
    assert set(REPORT_COLUMNS) >= {"span_themes"}
