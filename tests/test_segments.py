"""Metadata columns (kept, typed, listed; uploads whose columns differ) and segment filters on every view of themes,
the tree, stats and trends, and the comparison of two segments — over a project whose job results are stored by the
worker's own ``store_results`` (tests/test_theme_edits.run_job) with metadata stored by the worker's
``store_metadata``."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from service.storage.compare import adjusted, two_proportion_p
from tests.api_helpers import assert_problem, make_client, new_key, upload
from worker.pipeline.ingest import ColumnMap, IngestError, IngestResult, from_records, read_csv
from worker.pipeline.metadata import MetadataOptions, attribute_rows, describe_columns

N = 240  # comments of tests/test_theme_edits.make_documents


def metadata_frame() -> pd.DataFrame:
    """Per comment i: channel app for the last 40 comments (theme 11, "the app crashed", is the last 5), web
    before; age 20 + i % 50; a visit date in February; a region for every other comment."""
    rows = np.arange(N)
    return pd.DataFrame({
        "Channel": np.where(rows >= 200, "app", "web"),
        "Age": [str(20 + i % 50) for i in rows],
        "Visited": [f"2026-02-{1 + i % 28:02d}" for i in rows],
        "Region": ["north" if i % 2 else "" for i in rows],
    })  # fmt: skip


@pytest.fixture
def segmented(service_env):
    """A stored tree (themes 3, 5, 8, 11 under categories 1000001 and 1000002) with metadata per comment."""
    from tests.test_theme_edits import make_documents, run_job
    from worker.runner import store_metadata

    headers = new_key("alice")
    job_id, project_id = run_job(None)
    cells = metadata_frame()
    store_metadata(project_id, job_id, [f"D{i:04d}" for i in range(N)], IngestResult(pd.DataFrame(), metadata=cells))
    _, members = make_documents()
    return make_client(), headers, project_id, job_id, members


def get(client, headers, path: str, **params):  # type: ignore[no-untyped-def]
    response = client.get(path, headers=headers, params=params)
    assert response.status_code == 200, (path, response.text)
    return response.json()


def sentiment_of(project_id: str, rows: np.ndarray) -> float:
    from tests.test_theme_edits import scored_documents

    frame = scored_documents(project_id).set_index("doc_id")
    return float(frame.loc[[f"D{r:04d}" for r in rows], "sentiment_score"].mean())


# ---------------------------------------------------------------- typing and ingest


def test_columns_are_typed_by_their_cells():
    frame = pd.DataFrame({"n": ["1", "2.5", "", "-3"], "d": ["2026-01-02", "3 Feb 2026", "2026-03-04T10:00Z", ""],
                          "c": ["a", "b", "a", "a"], "t": ["x1", "x2", "x3", "x4"], "year": ["2024", "2025", "", ""]})  # fmt: skip
    described = {c["name"]: c for c in describe_columns(frame, MetadataOptions(max_category_values=3))}
    assert {n: c["type"] for n, c in described.items()} == {"n": "number", "d": "date", "c": "category",
                                                           "t": "text", "year": "number"}  # fmt: skip
    assert described["n"]["filled"] == 3 and described["c"]["distinct_values"] == 2
    long = attribute_rows(frame)
    assert len(long) == 3 + 3 + 4 + 4 + 2  # empty cells are not rows
    d = long[long["name"] == "d"]
    assert d["date"].notna().all() and d["number"].isna().all()
    assert long[long["name"] == "year"]["date"].isna().all()  # a year is a number, never a date


def test_ingest_keeps_every_other_column_or_those_named(tmp_path):
    path = tmp_path / "f.csv"
    path.write_text("id,text,Store,Plan\n1,great,Paris,pro\n2,slow,  Lyon ,\n3,,Nice,free\n", encoding="utf-8")
    result = read_csv(path, ColumnMap(text="text", id="id"))
    assert result.metadata.to_dict("list") == {"Store": ["Paris", "Lyon"], "Plan": ["pro", ""]}  # row 3 had no text
    assert result.counts["metadata_columns"] == 2
    assert list(read_csv(path, ColumnMap(text="text", id="id", keep=["Plan"])).metadata.columns) == ["Plan"]
    assert read_csv(path, ColumnMap(text="text", id="id", keep=[])).metadata.shape == (2, 0)
    with pytest.raises(IngestError, match="column 'Country' not found; columns found: 'id', 'text', 'Store'"):
        read_csv(path, ColumnMap(text="text", keep=["Country"]))


def test_json_items_carry_metadata():
    result = from_records([{"text": "late again", "metadata": {"channel": "app", "version": 3}},
                           {"text": "fine", "metadata": None}])  # fmt: skip
    assert result.metadata.to_dict("list") == {"channel": ["app", ""], "version": ["3", ""]}
    with pytest.raises(IngestError, match="metadata names 'rating'"):
        from_records([{"text": "x", "metadata": {"rating": 3}}])


def test_uploads_with_differing_columns_keep_everything(client, alice):
    """Two uploads to one project, the second with a new column and without one of the first's: the project types
    every column over all comments; the job lists its own."""
    from worker.runner import ingest

    first = upload(client, alice, b"text,Store,Age\ngreat shoes,Paris,31\nslow delivery,Lyon,45\nrude staff,Paris,x\n")
    assert first.status_code == 202, first.text
    ingest(first.json()["id"])
    project_id = first.json()["project_id"]
    second = upload(client, alice, b"text,Store,Channel\nlovely,Nice,app\nbroken zip,Paris,web\n",
                    project=project_id, keep_columns="Store, Channel")  # fmt: skip
    assert second.status_code == 202, second.text
    ingest(second.json()["id"])
    job = get(client, alice, f"/v1/jobs/{second.json()['id']}")
    assert [(c["name"], c["type"]) for c in job["metadata_columns"]] == [("Store", "category"), ("Channel", "category")]
    project = get(client, alice, f"/v1/projects/{project_id}")
    columns = {c["name"]: c for c in project["columns"]}
    assert list(columns) == ["Store", "Age", "Channel"]  # first appearance order
    assert columns["Store"]["filled"] == 5 and columns["Store"]["distinct_values"] == 3
    assert columns["Age"]["filled"] == 3 and columns["Age"]["type"] == "category"  # "x" is not a number
    assert columns["Channel"]["filled"] == 2
    listed = get(client, alice, f"/v1/projects/{project_id}/columns")["columns"]
    store = next(c for c in listed if c["name"] == "Store")
    assert store["values"][0] == {"value": "Paris", "count": 3}
    missing = upload(client, alice, b"text,Store\na,b\nc,d\n", project=project_id, keep_columns="Country")
    assert_problem(missing, 422, "Country")


# ---------------------------------------------------------------- filtered views


def test_theme_list_and_job_themes_under_a_segment(segmented):
    client, headers, project_id, job_id, members = segmented
    app_rows = np.arange(200, N)
    page = get(client, headers, f"/v1/projects/{project_id}/themes", segment="Channel=app", limit=500)
    assert page["metadata"]["segment"] == {"conditions": ["Channel=app"], "from": None, "to": None, "n_documents": 40}
    themes = {t["id"]: t for t in page["themes"]}
    for theme_id, rows in members.items():
        inside = np.intersect1d(rows, app_rows)
        if not len(inside):
            assert theme_id not in themes
            continue
        assert themes[theme_id]["size"] == len(inside)
        assert themes[theme_id]["share"] == round(len(inside) / 40, 4)
        assert themes[theme_id]["sentiment"]["mean"] == pytest.approx(sentiment_of(project_id, inside), abs=1e-3)
        assert all(int(e["doc_id"][1:]) >= 200 for e in themes[theme_id]["examples"])
        assert themes[theme_id]["impact"] is None
    sizes = [t["size"] for t in page["themes"]]
    assert sizes == sorted(sizes, reverse=True)
    same = get(client, headers, f"/v1/jobs/{job_id}/themes", segment="Channel=app", limit=500)
    assert {t["id"]: t["size"] for t in same["themes"]} == {t: v["size"] for t, v in themes.items()}
    whole = get(client, headers, f"/v1/projects/{project_id}/themes", limit=500)
    assert "segment" not in whole["metadata"] and {t["id"] for t in whole["themes"]} == set(members)


def test_numbers_dates_and_several_conditions(segmented):
    client, headers, project_id, _, members = segmented
    ages = 20 + np.arange(N) % 50
    days = 1 + np.arange(N) % 28
    cases = {
        ("Age>=60",): ages >= 60,
        ("Age>=30", "Age<40"): (ages >= 30) & (ages < 40),
        ("Age=25",): ages == 25,
        ("Visited<=2026-02-03",): days <= 3,
        ("Visited=2026-02-10",): days == 10,
        ("Channel=app", "Channel=web"): np.ones(N, bool),  # one column: OR
        ("Channel=app", "Age>=60"): (np.arange(N) >= 200) & (ages >= 60),  # two columns: AND
        ("Channel!=web",): np.arange(N) >= 200,
        ("Region!=north",): np.arange(N) % 2 == 0,  # comments without a value are kept by !=
    }
    for conditions, mask in cases.items():
        page = get(client, headers, f"/v1/projects/{project_id}/themes", segment=list(conditions), limit=500)
        assert page["metadata"]["segment"]["n_documents"] == int(mask.sum()), conditions
        got = {t["id"]: t["size"] for t in page["themes"]}
        want = {t: int(mask[rows].sum()) for t, rows in members.items() if mask[rows].any()}
        assert got == want, conditions


def test_date_range_of_the_comments_own_dates(segmented):
    from tests.test_theme_edits import make_documents

    client, headers, project_id, _, members = segmented
    docs, _ = make_documents()
    dates = pd.to_datetime(docs["date"])
    mask = ((dates >= "2026-01-10") & (dates < "2026-01-21")).to_numpy()  # to=2026-01-20: the whole day
    page = get(client, headers, f"/v1/projects/{project_id}/themes", limit=500, **{"from": "2026-01-10",
                                                                                  "to": "2026-01-20"})  # fmt: skip
    assert page["metadata"]["segment"]["n_documents"] == int(mask.sum())
    assert {t["id"]: t["size"] for t in page["themes"]} == {t: int(mask[r].sum()) for t, r in members.items()
                                                            if mask[r].any()}  # fmt: skip


def test_tree_nodes_children_members_stats_and_trends_under_a_segment(segmented):
    client, headers, project_id, _, members = segmented
    web = np.arange(200)
    params = {"segment": "Channel=web"}
    tree = get(client, headers, f"/v1/projects/{project_id}/tree", **params)
    assert tree["metadata"]["segment"]["n_documents"] == 200
    flat = {}

    def walk(nodes):  # type: ignore[no-untyped-def]
        for n in nodes:
            flat[n["id"]] = n
            walk(n["children"])

    walk(tree["categories"])
    assert 11 not in flat  # the app crash: only in the app channel
    assert flat[3]["size"] == len(np.intersect1d(members[3], web))
    delivery = np.union1d(members[3], members[5])
    assert flat[1_000_001]["size"] == len(np.intersect1d(delivery, web))
    node = get(client, headers, f"/v1/projects/{project_id}/nodes/11", **params)
    assert node["size"] == 0 and node["segment"]["n_documents"] == 200  # asked for by id: shown, empty
    children = get(client, headers, f"/v1/projects/{project_id}/nodes/1000002/children", **params)
    assert [c["id"] for c in children["children"]] == [8]
    detail = get(client, headers, f"/v1/projects/{project_id}/themes/8", limit=500, **params)
    assert detail["theme"]["size"] == len(np.intersect1d(members[8], web))
    assert len(detail["members"]) == detail["theme"]["size"]
    assert all(int(m["doc_id"][1:]) < 200 for m in detail["members"])
    stats = get(client, headers, f"/v1/projects/{project_id}/stats", segment="Channel=app")
    assert stats["documents"] == 40 and stats["segment"]["conditions"] == ["Channel=app"]
    assert get(client, headers, f"/v1/projects/{project_id}/stats")["documents"] == N
    trends = get(client, headers, f"/v1/projects/{project_id}/trends", segment="Channel=app")
    assert sum(trends["totals"]) == 40
    crash = next(t for t in trends["themes"] if t["theme_id"] == 11)
    assert sum(crash["counts"]) == 5
    whole = get(client, headers, f"/v1/projects/{project_id}/trends")
    assert sum(whole["totals"]) == N


def test_stats_give_the_period_of_the_comments_dates(segmented, client, alice):
    from tests.test_theme_edits import make_documents
    from worker.runner import ingest

    api, headers, project_id, _, _ = segmented
    dates = pd.to_datetime(make_documents()[0]["date"])
    whole = get(api, headers, f"/v1/projects/{project_id}/stats")["period"]
    assert whole == {"first": "2026-01-05T00:00:00Z", "last": dates.max().strftime("%Y-%m-%dT%H:%M:%SZ"), "dated": N}
    app = get(api, headers, f"/v1/projects/{project_id}/stats", segment="Channel=app")["period"]
    assert app == {"first": dates[200].strftime("%Y-%m-%dT%H:%M:%SZ"), "last": whole["last"], "dated": 40}
    assert get(api, headers, f"/v1/projects/{project_id}/stats", **{"from": "2030-01-01"})["period"] is None
    undated = upload(client, alice, b"text\ngreat shoes\nslow delivery\n")
    ingest(undated.json()["id"])
    stats = get(client, alice, f"/v1/projects/{undated.json()['project_id']}/stats")
    assert stats["documents"] == 2 and stats["period"] is None


def test_bad_segments_are_clear_422s(segmented):
    client, headers, project_id, _, _ = segmented
    path = f"/v1/projects/{project_id}/themes"
    cases = {"Country=FR": "no metadata column 'Country'", "Channel>app": "is a category",
             "Age>=old": "'old' is not one", "Visited>=someday": "is not a date", "no operator": "column=value"}  # fmt: skip
    for condition, words in cases.items():
        assert_problem(client.get(path, headers=headers, params={"segment": condition}), 422, words)
    assert_problem(client.get(path, headers=headers, params={"from": "yesterday-ish"}), 422, "not a date")
    for route in ("tree", "stats", "trends", "nodes/3", "compare"):
        response = client.get(f"/v1/projects/{project_id}/{route}", headers=headers,
                              params={"segment": "Country=FR", "a": "Country=FR"})  # fmt: skip
        assert_problem(response, 422, "Country")


# ---------------------------------------------------------------- compare


def test_two_proportion_p_is_the_z_test():
    count_a, n_a, count_b, n_b = 30, 200, 12, 180
    pooled = (count_a + count_b) / (n_a + n_b)
    z = (count_a / n_a - count_b / n_b) / math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    assert two_proportion_p(count_a, n_a, count_b, n_b) == pytest.approx(math.erfc(abs(z) / math.sqrt(2)), rel=1e-9)
    assert two_proportion_p(0, 10, 0, 20) == 1.0
    # Benjamini–Hochberg by hand: q_(i) = min over j >= i of p_(j) * m / j
    assert adjusted([0.01, 0.04, 0.03, 0.5]) == pytest.approx([0.04, 0.04 * 4 / 3, 0.04 * 4 / 3, 0.5])


def test_compare_a_segment_with_the_rest_and_two_segments(segmented):
    client, headers, project_id, _, members = segmented
    result = get(client, headers, f"/v1/projects/{project_id}/compare", a="Channel=app")
    assert result["a"]["n_documents"] == 40 and result["b"]["n_documents"] == 200 and result["b"]["rest"]
    rows = {r["id"]: r for r in result["themes"]}
    crash = rows[11]
    assert (crash["a"]["count"], crash["b"]["count"]) == (5, 0)
    assert crash["difference"] == round(5 / 40, 4) and crash["significant"]
    assert crash["p_value"] == pytest.approx(two_proportion_p(5, 40, 0, 200))
    ps = [r["p_value"] for r in result["themes"]]
    assert [r["q_value"] for r in result["themes"]] == pytest.approx(adjusted(ps))
    assert result["themes"][0]["id"] == 11  # the one significant difference comes first
    for theme_id in (3, 5, 8):  # spread over every comment: no significant difference
        app = np.intersect1d(members[theme_id], np.arange(200, N))
        assert rows[theme_id]["a"]["count"] == len(app) and not rows[theme_id]["significant"]
    two = get(client, headers, f"/v1/projects/{project_id}/compare", a="Age>=60", b="Age<30", level=1)
    assert two["level"] == 1 and not two["b"]["rest"] and {r["id"] for r in two["themes"]} == {1_000_001, 1_000_002}
    periods = get(client, headers, f"/v1/projects/{project_id}/compare", a_from="2026-02-01", b_to="2026-01-31")
    assert periods["a"]["n_documents"] + periods["b"]["n_documents"] == N
    assert_problem(client.get(f"/v1/projects/{project_id}/compare", headers=headers), 422, "segment a")


def test_a_merged_theme_counts_each_comment_once_under_a_segment(segmented):
    client, headers, project_id, _, members = segmented
    merged = client.post(f"/v1/projects/{project_id}/themes/3/merge", headers=headers, json={"themes": [5]})
    assert merged.status_code == 200, merged.text
    web = np.arange(200)
    page = get(client, headers, f"/v1/projects/{project_id}/themes", segment="Channel=web", limit=500)
    themes = {t["id"]: t for t in page["themes"]}
    assert 5 not in themes
    union = np.intersect1d(np.union1d(members[3], members[5]), web)
    assert themes[3]["size"] == len(union)
    assert themes[3]["sentiment"]["mean"] == pytest.approx(sentiment_of(project_id, union), abs=1e-3)
    rows = {r["id"]: r for r in get(client, headers, f"/v1/projects/{project_id}/compare", a="Channel=web")["themes"]}
    assert rows[3]["a"]["count"] == len(union) and 5 not in rows
