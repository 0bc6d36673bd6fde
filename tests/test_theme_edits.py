"""Theme edits (rename, hide, merge), impact and trends through the API, and the report tables (CSV, Parquet,
report tokens) — over a project whose job results are stored by the worker's own ``store_results``."""

from __future__ import annotations

import csv
import io

import numpy as np
import pandas as pd
import pytest

from service.storage.jobs import NewJob, create_job
from service.storage.session import session_scope
from tests.api_helpers import assert_problem, make_client, new_key
from worker.pipeline.output import theme_record
from worker.pipeline.sentiment import aggregate, label_scores, score_texts
from worker.pipeline.spans import SpanOptions, Spans, split_spans
from worker.pipeline.themes import Theme
from worker.pipeline.ingest import IngestResult
from worker.runner import (
    project_documents,
    store_documents,
    store_metadata,
    store_results,
    store_sentiment,
)

XSS = '<img src=x onerror="window.__xss=1">'
FORMULA = '=HYPERLINK("http://evil.example","click")'
TOPICS = {  # theme id → (text, rating, share of comments)
    3: ("The delivery was late again", 1.5),
    5: ("Shipping took far too long", 2.0),
    8: ("Great fit and lovely fabric", 4.8),
    11: ("The app crashed at checkout", 2.5),
}


@pytest.fixture
def api(service_env):
    return make_client()


def make_documents(n: int = 240, seed: int = 0) -> tuple[pd.DataFrame, dict[int, np.ndarray]]:
    """Comments over six weeks; themes 3 and 5 overlap (late delivery / slow shipping), 11 only on the last day."""
    rng = np.random.default_rng(seed)
    dates = pd.Timestamp("2026-01-05") + pd.to_timedelta(np.arange(n) * 42 // n, unit="D")
    members = {3: np.flatnonzero(rng.random(n) < 0.25), 8: np.flatnonzero(rng.random(n) < 0.3)}
    members[5] = np.union1d(members[3][::2], np.flatnonzero(rng.random(n) < 0.05))
    members[11] = np.arange(n - 5, n)  # the last day
    texts, ratings = [], []
    for i in range(n):
        parts = [TOPICS[t][0] for t in TOPICS if i in members[t]] or ["It was fine"]
        cart = "\U0001f6d2 " if i % 5 == 0 else ""  # a character beyond the BMP: offsets count code points
        texts.append(f"{cart}{'. '.join(parts)} (#{i})")
        ratings.append(float(np.clip(np.mean([TOPICS[t][1] for t in TOPICS if i in members[t]] or [3.5])
                                     + rng.normal(0, 0.3), 1, 5)))  # fmt: skip
    texts[int(members[8][0])] = XSS + " Great fit"
    texts[int(members[8][1])] = FORMULA
    docs = pd.DataFrame({"doc_id": [f"D{i:04d}" for i in range(n)], "text": texts, "rating": ratings, "date": dates})
    return docs, members


def scored_documents(project_id: str) -> pd.DataFrame:
    """The project's documents, those without sentiment scored (VADER) and stored by the worker's own
    ``store_sentiment``."""
    before = project_documents(project_id)
    after = before.copy()
    todo = after["sentiment_score"].isna()
    if todo.any():
        scores = score_texts(after.loc[todo, "text"].tolist())
        after.loc[todo, "sentiment_score"] = scores.astype(float)
        after.loc[todo, "sentiment_label"] = label_scores(scores)
        store_sentiment(before, after)
    after["sentiment_score"] = after["sentiment_score"].astype(float)
    return after


def theme_spans(spans: Spans, texts: list[str], theme_id: int, rows: np.ndarray) -> np.ndarray:
    """The span rows carrying a theme: each member comment's spans that hold the theme's sentence (all its spans
    when none does, as for the comments replaced by an injection attempt)."""
    out = []
    for row in rows:
        own = np.flatnonzero(spans.doc == row)
        hits = [u for u in own if TOPICS[theme_id][0] in spans.text(texts, u)]
        out += hits or list(own)
    return np.array(out, dtype=np.int64)


CATEGORIES = {1_000_001: ("Delivery problems", (3, 5)), 1_000_002: ("Products and the app", (8, 11))}
SUB_THEME = 2_000_001  # under theme 3: its first half


def run_job(project: str | None, tenant: str = "alice", previous: str | None = None, seed: int = 0) -> tuple[str, str]:
    """A job as the worker stores it: documents (with a metadata column, Channel: app for the last 40 comments, else
    web), sentiment, spans, a theme tree (made up here: two categories over
    the four themes, one sub-theme of theme 3; each theme carried by the spans holding its sentence),
    store_results."""
    docs, members = make_documents(seed=seed)
    with session_scope() as session:
        job, _ = create_job(session, NewJob(job_id=f"job{seed:029d}", tenant_id=tenant_id(tenant), project_id=project,
                                            source="-", source_kind="json", columns={}, idempotency_key=None,
                                            payload_hash="x"))  # fmt: skip
        job.status = "running"
        job_id, project_id = job.id, job.project_id
    store_documents(project_id, job_id, docs)
    channel = pd.DataFrame({"Channel": np.where(np.arange(len(docs)) >= 200, "app", "web")})  # metadata
    store_metadata(project_id, job_id, docs["doc_id"].tolist(), IngestResult(docs, metadata=channel))
    frame = scored_documents(project_id)
    position = {d: i for i, d in enumerate(frame["doc_id"])}
    texts = frame["text"].tolist()
    spans = split_spans(texts, SpanOptions(whole_words=0))  # every comment cut into its sentences
    themes = []
    for theme_id, rows in members.items():
        rows = np.array(sorted(position[f"D{r:04d}"] for r in rows))
        acts = np.linspace(1.0, 0.5, len(rows))
        units = theme_spans(spans, texts, theme_id, rows)
        unit_acts = acts[np.searchsorted(rows, spans.doc[units])]
        parent = next(c for c, (_, children) in CATEGORIES.items() if theme_id in children)
        themes.append(node(frame, theme_id, 2, parent, [SUB_THEME] if theme_id == 3 else [], rows, acts, units,
                           unit_acts, TOPICS[theme_id][0].lower(), cohesion=0.5 + theme_id / 100))  # fmt: skip
    by_id = {t.id: t for t in themes}
    categories = [category(frame, node_id, name, [by_id[t] for t in children])
                  for node_id, (name, children) in CATEGORIES.items()]  # fmt: skip
    late = by_id[3]
    half = late.members[: len(late.members) // 2]
    carried = np.isin(spans.doc[late.spans], half)
    sub = node(frame, SUB_THEME, 3, 3, [], half, late.activations[: len(half)], late.spans[carried],
               late.span_activations[carried], "late delivery, again", cohesion=0.6)  # fmt: skip
    nodes = [*categories, *themes, sub]
    document = tree_document(nodes, frame, spans)
    store_results(job_id, project_id, previous, document, nodes, frame, "-", {"documents": len(frame)}, spans=spans)
    return job_id, project_id


def node(frame: pd.DataFrame, node_id: int, level: int, parent: int | None, children: list[int], rows: np.ndarray,
         acts: np.ndarray, units: np.ndarray, unit_acts: np.ndarray, name: str,
         cohesion: float | None) -> Theme:  # fmt: skip
    """A node of the tree as the analysis makes it."""
    scores, labels = frame["sentiment_score"].to_numpy()[rows], frame["sentiment_label"].to_numpy()[rows]
    return Theme(id=node_id, features=[node_id] if level == 2 else [], members=rows, activations=acts, spans=units,
                 span_activations=unit_acts, label=name, name=name, keywords=name.split()[:5],
                 sentiment=aggregate(scores, labels), rating={"mean": float(frame["rating"].to_numpy()[rows].mean()),
                                                              "count": len(rows)},
                 examples=list(units[:3]), cohesion=cohesion, level=level, parent=parent,
                 children=children)  # fmt: skip


def category(frame: pd.DataFrame, node_id: int, name: str, themes: list[Theme]) -> Theme:
    """A category over ``themes``: their comments (each with its highest activation) and spans."""
    best: dict[int, float] = {}
    for t in themes:
        for row, act in zip(t.members.tolist(), t.activations.tolist()):
            best[row] = max(best.get(row, 0.0), act)
    rows = np.array(sorted(best), dtype=np.int64)
    units = np.unique(np.concatenate([t.spans for t in themes]))
    cat = node(frame, node_id, 1, None, [t.id for t in themes], rows, np.array([best[r] for r in rows]), units,
               np.ones(len(units)), name, cohesion=0.4)  # fmt: skip
    cat.features = sorted(f for t in themes for f in t.features)
    return cat


def tree_document(nodes: list[Theme], frame: pd.DataFrame, spans: Spans) -> dict:
    """The themes.json object (schema version 2) of the nodes: categories, themes and sub-themes, largest first."""
    levels = {1: "categories", 2: "themes", 3: "sub_themes"}
    document: dict = {name: [] for name in levels.values()}
    for t in nodes:
        record = {**theme_record(t, frame, len(frame), spans), "level": t.level, "parent": t.parent,
                  "children": list(t.children), "name": t.name, "label": t.name}  # fmt: skip
        document[levels[t.level]].append(record)
    for records in document.values():
        records.sort(key=lambda r: (-r["size"], r["id"]))
    document["metadata"] = {"model": "test", "schema_version": 2, "n_documents": len(frame),
                            **{f"n_{name}": len(document[name]) for name in levels.values()}}  # fmt: skip
    return document


def tenant_id(name: str) -> str:
    from sqlalchemy import select

    from service.storage.models import Tenant

    with session_scope() as session:
        return session.scalar(select(Tenant.id).where(Tenant.name == name))


@pytest.fixture
def project(api):
    headers = new_key("alice")
    _, project_id = run_job(None)
    return api, headers, project_id


def themes_of(client, headers, project_id, **params) -> dict[int, dict]:
    page = client.get(f"/v1/projects/{project_id}/themes", headers=headers, params={"limit": 500, **params})
    assert page.status_code == 200, page.text
    return {t["id"]: t for t in page.json()["themes"]}


def report(client, headers, project_id, name, **params) -> list[dict]:
    response = client.get(f"/v1/projects/{project_id}/reports/{name}.csv", headers=headers, params=params)
    assert response.status_code == 200, response.text
    return list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))


def test_impact_and_trends_are_stored_and_served(project):
    client, headers, project_id = project
    themes = themes_of(client, headers, project_id)
    assert set(themes) == {3, 5, 8, 11}
    assert themes[3]["impact"]["high"] < 0 < themes[8]["impact"]["low"], (themes[3]["impact"], themes[8]["impact"])
    assert all(t["impact"]["low"] <= t["impact"]["coef"] <= t["impact"]["high"] for t in themes.values())
    assert themes[11]["emerging"] and themes[11]["emerging_reason"] == "new"
    assert not themes[8]["emerging"] and themes[8]["hidden"] is False and themes[8]["merged"] == []
    trends = client.get(f"/v1/projects/{project_id}/trends", headers=headers).json()
    assert trends["period"] == "day" and len(trends["periods"]) == 42 and sum(trends["totals"]) == 240
    by_id = {t["theme_id"]: t for t in trends["themes"]}
    assert sum(by_id[8]["counts"]) == themes[8]["size"] and len(by_id[8]["shares"]) == 42
    stats = client.get(f"/v1/projects/{project_id}/stats", headers=headers).json()
    assert stats["documents"] == 240 == sum(stats["sentiment"].values()) == sum(stats["sentiment_histogram"]["counts"])
    impact = report(client, headers, project_id, "theme_impact")
    assert {int(r["theme_id"]) for r in impact} == {3, 5, 8, 11} and float(impact[0]["low"]) <= float(impact[0]["coef"])
    trend_rows = report(client, headers, project_id, "theme_trends")
    assert len(trend_rows) == 4 * 42 and trend_rows[0]["period"] == "day" and trend_rows[0]["emerging"] in ("true", "false")


def test_rename_and_hide(project):
    client, headers, project_id = project
    before = themes_of(client, headers, project_id)
    renamed = client.patch(f"/v1/projects/{project_id}/themes/8", headers=headers, json={"label": "Fit & fabric"})
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["label"] == "Fit & fabric" and renamed.json()["original_label"] == before[8]["label"]
    after = themes_of(client, headers, project_id)
    assert after[8]["label"] == "Fit & fabric"
    assert {t: after[t]["label"] for t in (3, 5, 11)} == {t: before[t]["label"] for t in (3, 5, 11)}
    rows = {int(r["theme_id"]): r for r in report(client, headers, project_id, "themes")}
    assert rows[8]["label"] == "Fit & fabric" and rows[8]["original_label"] == before[8]["label"]

    hidden = client.patch(f"/v1/projects/{project_id}/themes/11", headers=headers, json={"hidden": True})
    assert hidden.status_code == 200 and hidden.json()["hidden"] is True
    assert set(themes_of(client, headers, project_id)) == {3, 5, 8}
    assert themes_of(client, headers, project_id, include_hidden=True)[11]["hidden"] is True
    assert "11" not in {r["theme_id"] for r in report(client, headers, project_id, "themes")}
    assert "11" not in {r["theme_id"] for r in report(client, headers, project_id, "document_themes")}
    edits = client.get(f"/v1/projects/{project_id}/edits", headers=headers).json()
    assert [(e["theme_id"], e["label"], e["hidden"]) for e in edits] == [(8, "Fit & fabric", False), (11, None, True)]

    client.patch(f"/v1/projects/{project_id}/themes/11", headers=headers, json={"hidden": False})
    reset = client.patch(f"/v1/projects/{project_id}/themes/8", headers=headers, json={"label": ""}).json()
    assert reset["label"] == before[8]["label"] and "original_label" not in reset
    assert set(themes_of(client, headers, project_id)) == {3, 5, 8, 11}
    assert_problem(client.patch(f"/v1/projects/{project_id}/themes/99", headers=headers, json={"label": "x"}), 404)
    assert_problem(client.patch(f"/v1/projects/{project_id}/themes/8", headers=headers, json={"colour": "x"}), 422)


def member_ids(client, headers, project_id, theme_id) -> list[str]:
    page = client.get(f"/v1/projects/{project_id}/themes/{theme_id}", headers=headers, params={"limit": 500}).json()
    return [m["doc_id"] for m in page["members"]]


def test_merge_folds_a_theme_in_and_keeps_other_ids(project):
    client, headers, project_id = project
    before = themes_of(client, headers, project_id)
    union = set(member_ids(client, headers, project_id, 3)) | set(member_ids(client, headers, project_id, 5))
    merged = client.post(f"/v1/projects/{project_id}/themes/3/merge", headers=headers, json={"themes": [5]})
    assert merged.status_code == 200, merged.text
    theme = merged.json()
    assert theme["id"] == 3 and theme["merged"] == [5] and theme["size"] == len(union) > before[3]["size"]
    assert theme["features"] == [3, 5] and theme["share"] == round(len(union) / 240, 4)
    members = member_ids(client, headers, project_id, 3)
    assert len(members) == len(set(members)) and set(members) == union
    after = themes_of(client, headers, project_id)
    assert set(after) == {3, 8, 11}
    assert {t: after[t]["size"] for t in (8, 11)} == {t: before[t]["size"] for t in (8, 11)}
    body = assert_problem(client.get(f"/v1/projects/{project_id}/themes/5", headers=headers), 404, "merged into theme 3")
    assert body["type"].endswith("theme-merged")
    links = report(client, headers, project_id, "document_themes")
    assert {r["theme_id"] for r in links} == {"3", "8", "11"}
    assert {r["doc_id"] for r in links if r["theme_id"] == "3"} == union
    rows = {int(r["theme_id"]): r for r in report(client, headers, project_id, "themes")}
    assert rows[3]["merged_theme_ids"] == "5" and int(rows[3]["size"]) == len(union)
    assert {r["theme_id"] for r in report(client, headers, project_id, "theme_impact")} == {"3", "8", "11"}

    assert_problem(client.post(f"/v1/projects/{project_id}/themes/3/merge", headers=headers, json={"themes": [3]}), 422)
    assert_problem(client.post(f"/v1/projects/{project_id}/themes/5/merge", headers=headers, json={"themes": [8]}), 409)
    assert_problem(client.post(f"/v1/projects/{project_id}/themes/3/merge", headers=headers, json={"themes": [77]}), 404)
    assert_problem(client.post(f"/v1/projects/{project_id}/themes/8/unmerge", headers=headers), 409)

    restored = client.post(f"/v1/projects/{project_id}/themes/5/unmerge", headers=headers)
    assert restored.status_code == 200 and restored.json()["id"] == 5
    again = themes_of(client, headers, project_id)
    assert {t: again[t]["size"] for t in again} == {t: before[t]["size"] for t in before}


def test_edits_are_kept_for_the_project_across_jobs(project):
    client, headers, project_id = project
    client.patch(f"/v1/projects/{project_id}/themes/8", headers=headers, json={"label": "Fit"})
    client.post(f"/v1/projects/{project_id}/themes/3/merge", headers=headers, json={"themes": [5]})
    first = client.get(f"/v1/projects/{project_id}", headers=headers).json()["current_job_id"]
    second, _ = run_job(project_id, previous=first, seed=1)
    assert client.get(f"/v1/projects/{project_id}", headers=headers).json()["current_job_id"] == second
    themes = themes_of(client, headers, project_id)
    assert set(themes) == {3, 8, 11} and themes[8]["label"] == "Fit" and themes[3]["merged"] == [5]
    assert not any(t["emerging_reason"] == "new" and t["id"] != 11 for t in themes.values())


def test_tenants_and_report_tokens(project):
    client, headers, project_id = project
    bob = new_key("bob")
    for method, path, body in (("PATCH", "themes/8", {"label": "x"}), ("POST", "themes/3/merge", {"themes": [5]}),
                               ("POST", "themes/5/unmerge", None), ("GET", "trends", None), ("GET", "stats", None),
                               ("GET", "edits", None), ("POST", "report-token", None),
                               ("GET", "reports/themes.csv", None), ("GET", "reports/themes.parquet", None)):  # fmt: skip
        assert_problem(client.request(method, f"/v1/projects/{project_id}/{path}", headers=bob, json=body), 404)
    assert themes_of(client, headers, project_id)[8]["label"] != "x"

    created = client.post(f"/v1/projects/{project_id}/report-token", headers=headers)
    assert created.status_code == 201, created.text
    token = created.json()["token"]
    assert created.json()["prefix"] == token[:10] and created.json()["expires_at"]
    url = created.json()["urls"]["themes.csv"]
    assert url.endswith(f"/v1/projects/{project_id}/reports/themes.csv?token={token}")
    plain = client.get(url.split("testserver", 1)[1])
    assert plain.status_code == 200 and "theme_id,label" in plain.text
    assert client.get(f"/v1/projects/{project_id}/reports/documents.parquet", params={"token": token}).status_code == 200
    assert_problem(client.get(f"/v1/projects/{project_id}/reports/themes.csv", params={"token": "ftr_nope"}), 401)
    assert_problem(client.get(f"/v1/projects/{project_id}/reports/themes.csv"), 401)
    _, other = run_job(None, tenant="bob", seed=2)
    assert_problem(client.get(f"/v1/projects/{other}/reports/themes.csv", params={"token": token}), 404)
    assert_problem(client.get(f"/v1/projects/{project_id}/themes", params={"token": token}), 401)  # reports only
    assert client.delete(f"/v1/projects/{project_id}/report-token", headers=headers).status_code == 204
    assert_problem(client.get(f"/v1/projects/{project_id}/reports/themes.csv", params={"token": token}), 401)


def test_report_formats(project):
    import pyarrow.parquet as pq

    from tests.test_alerts import add_alert
    from worker.pipeline.output import REPORT_COLUMNS

    client, headers, project_id = project
    add_alert(project_id)  # a project's first job has no alerts: one made up, so that every report has a row
    for name, spec in REPORT_COLUMNS.items():
        response = client.get(f"/v1/projects/{project_id}/reports/{name}.parquet", headers=headers)
        assert response.status_code == 200, response.text
        assert response.headers["x-report-schema-version"] == "4"
        table = pq.read_table(io.BytesIO(response.content))
        assert table.column_names == [c for c, _ in spec] and table.num_rows > 0
        assert report(client, headers, project_id, name)[0].keys() == set(table.column_names)
    documents = pq.read_table(io.BytesIO(client.get(f"/v1/projects/{project_id}/reports/documents.parquet",
                                                    headers=headers).content)).to_pandas()  # fmt: skip
    assert len(documents) == 240 and str(documents["date"].dtype).startswith("datetime64") and XSS in set(
        documents["text"].str.slice(0, len(XSS)))

    excel = client.get(f"/v1/projects/{project_id}/reports/documents.csv", headers=headers, params={"bom": 1})
    assert excel.content.startswith("\ufeff".encode()) and excel.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(excel.content.decode("utf-8-sig"))))
    texts = {r["text"] for r in rows}
    assert "'" + FORMULA in texts and FORMULA not in texts and rows[0]["date"] == "2026-01-05T00:00:00Z"
    themes = report(client, headers, project_id, "themes")
    assert {r["emerging"] for r in themes} <= {"true", "false"}
    assert not client.get(f"/v1/projects/{project_id}/reports/documents.csv", headers=headers).content.startswith(b"\xef")
    assert_problem(client.get(f"/v1/projects/{project_id}/reports/nothing.csv", headers=headers), 422)
