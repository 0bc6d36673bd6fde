"""A node's share per value of a metadata column (``/themes/{id}/segments``), checked against counts by hand over a
project whose job results are stored by the worker's own ``store_results`` (tests/test_theme_edits.run_job) and
whose metadata is stored by the worker's ``store_metadata``."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import update

from service.storage.models import ProjectColumn
from service.storage.session import session_scope
from tests.api_helpers import assert_problem, make_client, new_key
from tests.test_segments import N, metadata_frame, sentiment_of
from worker.pipeline.ingest import IngestResult

ROWS = np.arange(N)
AGES = 20 + ROWS % 50
DELIVERY, SUB = 1_000_001, 2_000_001


@pytest.fixture
def project(service_env):
    """The tree of tests/test_theme_edits (themes 3, 5, 8, 11; categories 1000001, 1000002; sub-theme 2000001) with
    the metadata of tests/test_segments, an order number per comment (240 distinct numbers) and a free-text note."""
    from tests.test_theme_edits import make_documents, run_job
    from worker.runner import store_metadata

    headers = new_key("alice")
    job_id, project_id = run_job(None)
    cells = metadata_frame().assign(Order=[str(1000 + i) for i in ROWS], Note=[f"note {i}" for i in ROWS])
    store_metadata(project_id, job_id, [f"D{i:04d}" for i in ROWS], IngestResult(pd.DataFrame(), metadata=cells))
    with session_scope() as session:  # a column of over 1000 distinct values is typed text: this one stands for it
        session.execute(update(ProjectColumn).where(ProjectColumn.project_id == project_id, ProjectColumn.name ==
                                                    "Note").values(type="text", segment=False))  # fmt: skip
    _, members = make_documents()
    return make_client(), headers, project_id, members


def segments(client, headers, project_id: str, node: int, **params):  # type: ignore[no-untyped-def]
    response = client.get(f"/v1/projects/{project_id}/themes/{node}/segments", headers=headers, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def by_hand(project_id: str, chosen: np.ndarray, members: np.ndarray) -> dict:
    """The figures of a node with ``members`` (comment rows) over the ``chosen`` comments (a mask)."""
    hits = np.intersect1d(np.flatnonzero(chosen), members)
    return {"n_documents": int(chosen.sum()), "count": len(hits), "share": round(len(hits) / max(1, chosen.sum()), 4),
            "sentiment_mean": sentiment_of(project_id, hits) if len(hits) else None}  # fmt: skip


def assert_figures(got: dict, want: dict) -> None:
    assert {k: got[k] for k in ("n_documents", "count", "share")} == {k: want[k] for k in ("n_documents", "count",
                                                                                           "share")}  # fmt: skip
    if want["sentiment_mean"] is None:
        assert got["sentiment_mean"] is None
    else:
        assert got["sentiment_mean"] == pytest.approx(want["sentiment_mean"], abs=1e-3)


def test_a_themes_share_per_category_value_counted_by_hand(project):
    client, headers, project_id, members = project
    body = segments(client, headers, project_id, 3, column="Channel")
    assert body["column"] == {"name": "Channel", "type": "category"} and body["segment"] is None
    name = client.get(f"/v1/projects/{project_id}/nodes/3", headers=headers).json()["name"]
    assert body["theme"] == {"id": 3, "level": 2, "name": name}
    assert [v["value"] for v in body["values"]] == ["web", "app"]  # most frequent first
    assert set(body["values"][0]) == {"value", "n_documents", "count", "share", "sentiment_mean"}
    assert_figures(body["values"][0], by_hand(project_id, ROWS < 200, members[3]))
    assert_figures(body["values"][1], by_hand(project_id, ROWS >= 200, members[3]))
    assert_figures(body["overall"], by_hand(project_id, ROWS >= 0, members[3]))
    assert body["others"] is None  # no other value
    crash = segments(client, headers, project_id, 11, column="Channel", values=1)
    assert [v["value"] for v in crash["values"]] == ["web"]
    assert crash["values"][0]["count"] == 0 and crash["values"][0]["sentiment_mean"] is None
    assert_figures(crash["others"], by_hand(project_id, ROWS >= 200, members[11]))  # the app: every crash
    assert crash["others"]["share"] == round(5 / 40, 4)


def test_numbers_values_and_comments_without_a_value(project):
    client, headers, project_id, members = project
    ages = segments(client, headers, project_id, 8, column="Age", values=3)
    assert ages["column"] == {"name": "Age", "type": "number"}
    # ages 20..59 hold five comments each, 60..69 four: the three most frequent, ties in value order
    assert [v["value"] for v in ages["values"]] == ["20", "21", "22"]
    for entry in ages["values"]:
        assert_figures(entry, by_hand(project_id, AGES == int(entry["value"]), members[8]))
    assert_figures(ages["others"], by_hand(project_id, AGES > 22, members[8]))
    region = segments(client, headers, project_id, 8, column="Region")
    assert [v["value"] for v in region["values"]] == ["north"]
    assert_figures(region["values"][0], by_hand(project_id, ROWS % 2 == 1, members[8]))
    assert_figures(region["overall"], by_hand(project_id, ROWS >= 0, members[8]))  # unvalued comments count here
    assert region["others"] is None  # comments without a value are not another value


def test_nodes_of_every_level_and_a_merged_node(project):
    client, headers, project_id, members = project
    delivery = np.union1d(members[3], members[5])
    category = segments(client, headers, project_id, DELIVERY, column="Channel")
    assert category["theme"]["level"] == 1
    assert_figures(category["values"][0], by_hand(project_id, ROWS < 200, delivery))
    sub = segments(client, headers, project_id, SUB, column="Channel")
    assert sub["theme"]["level"] == 3 and sub["overall"]["count"] == len(members[3]) // 2
    merged = client.post(f"/v1/projects/{project_id}/themes/3/merge", headers=headers, json={"themes": [5]})
    assert merged.status_code == 200, merged.text
    body = segments(client, headers, project_id, 3, column="Channel")
    assert_figures(body["values"][0], by_hand(project_id, ROWS < 200, delivery))  # each comment once
    assert_figures(body["overall"], by_hand(project_id, ROWS >= 0, delivery))
    gone = client.get(f"/v1/projects/{project_id}/themes/5/segments", headers=headers, params={"column": "Channel"})
    assert assert_problem(gone, 404, "merged into theme 3")["type"].endswith("theme-merged")


def test_the_segment_filter(project):
    client, headers, project_id, members = project
    body = segments(client, headers, project_id, 3, column="Channel", segment="Age<30")
    assert body["segment"] == {"conditions": ["Age<30"], "from": None, "to": None}
    young = AGES < 30
    assert_figures(body["overall"], by_hand(project_id, young, members[3]))
    assert [v["value"] for v in body["values"]] == ["web", "app"]
    assert_figures(body["values"][0], by_hand(project_id, young & (ROWS < 200), members[3]))
    assert_figures(body["values"][1], by_hand(project_id, young & (ROWS >= 200), members[3]))
    app = segments(client, headers, project_id, 3, column="Channel", segment="Channel=app")
    assert [v["value"] for v in app["values"]] == ["app"] and app["others"] is None
    assert app["overall"]["n_documents"] == 40


def test_columns_that_cannot_be_counted_per_value_are_422s(project):
    client, headers, project_id, _ = project
    path = f"/v1/projects/{project_id}/themes/3/segments"
    cases = {"Country": ["no metadata column 'Country'", "'Channel'", "'Age'"], "Visited": ["holds dates"],
             "Note": ["free text"], "Order": ["240 distinct numbers", "at most 200"]}  # fmt: skip
    for column, words in cases.items():
        body = assert_problem(client.get(path, headers=headers, params={"column": column}), 422, *words)
        assert body["type"].endswith("bad-segment")
    assert_problem(client.get(path, headers=headers, params={"column": "Channel", "segment": "Country=FR"}), 422,
                   "Country")  # fmt: skip
    columns = client.get(f"/v1/projects/{project_id}/columns", headers=headers).json()["columns"]
    first = next(c["name"] for c in columns if c["type"] == "category")  # no column: the first that counts
    assert client.get(path, headers=headers).json() == client.get(path, headers=headers, params={"column": first}).json()
    assert client.get(path, headers=headers, params={"column": "Channel", "values": 0}).status_code == 422


def test_unknown_nodes_and_other_tenants_are_404s(project):
    client, headers, project_id, _ = project
    missing = client.get(f"/v1/projects/{project_id}/themes/999/segments", headers=headers, params={"column": "Age"})
    assert assert_problem(missing, 404)["type"].endswith("theme-not-found")
    bob = new_key("bob")
    other = client.get(f"/v1/projects/{project_id}/themes/3/segments", headers=bob, params={"column": "Age"})
    assert_problem(other, 404)
