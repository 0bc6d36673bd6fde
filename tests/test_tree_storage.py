"""The theme tree in storage: migration 0008 (a database at 0007 with theme groups stored, on SQLite and on
PostgreSQL, upgraded, downgraded and upgraded again), and the tree through the API: ``/tree``, ``/nodes``, edits of
every level, a category's comments, impact and trends per level, and the ``theme_tree`` and ``document_nodes``
reports."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa

from tests.service_harness import reachable
from tests.test_service_e2e import POSTGRES_ADMIN

CATEGORY = 1_000_000
T0 = datetime(2026, 11, 1, tzinfo=timezone.utc)


def test_storage_numbers_levels_as_the_tree_stage_does():
    from service.storage import models
    from worker.pipeline import tree

    assert (models.LEVEL_CATEGORY, models.LEVEL_THEME, models.LEVEL_SUB_THEME) == (
        tree.LEVEL_CATEGORY, tree.LEVEL_THEME, tree.LEVEL_SUB_THEME)  # fmt: skip
    assert CATEGORY == tree.CATEGORY_ID_BASE and tree.level_of_id(CATEGORY + 1) == models.LEVEL_CATEGORY


# ---------------------------------------------------------------- migration 0008


def alembic_config(url: str):  # type: ignore[no-untyped-def]
    from alembic.config import Config

    from service.storage.session import MIGRATIONS

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url)
    return config


def theme_record(theme_id: int, size: int, label: str, first_seen: str) -> dict[str, Any]:
    """A theme as revision 0007 stored it (no node fields)."""
    return {"id": theme_id, "label": label, "keywords": [label, "x"], "size": size, "share": round(size / 10, 4),
            "span_count": size, "sentiment": {"mean": 0.1, "negative": 0.2, "neutral": 0.3, "positive": 0.5},
            "rating": {"mean": 3.0, "count": size}, "cohesion": 0.5,
            "examples": [{"doc_id": f"d{theme_id}", "text": "t", "activation": theme_id / 100}],
            "features": [theme_id], "first_seen_job": first_seen, "is_new": False}  # fmt: skip


def group_record(group_id: int, level: int, themes: list[int], label: str, kind: str | None) -> dict[str, Any]:
    record = {**theme_record(group_id, 3, label, "-"), "level": level, "themes": themes, "cohesion": 0.4}
    record.pop("first_seen_job"), record.pop("is_new")
    return record if kind is None else {**record, "kind": kind}


# job → {theme: [(document, activation)]}; spans of job j2: theme → [(document, span index)]
MEMBERS = {
    "j1": {7: [(0, 0.9), (1, 0.5)], 8: [(1, 0.7)], 12: [(9, 0.3)]},
    "j2": {7: [(0, 0.9), (1, 0.5)], 8: [(1, 0.7), (2, 0.4)], 9: [(3, 0.6)], 10: [(4, 0.2), (5, 0.3)],
           11: [(5, 0.8), (6, 0.1)]},
    "j3": {1: [(7, 0.5)], 2: [(8, 0.5)]},
}  # fmt: skip
SPANS = {7: [(0, 0), (1, 0)], 8: [(1, 0), (1, 1)]}
GROUPS = {
    "j1": [group_record(1, 2, [7, 8], "Shipping", "union")],
    "j2": [group_record(1, 2, [7, 8], "Late parcels", "union"), group_record(2, 4, [7, 8, 9], "Delivery", "union"),
           group_record(3, 4, [10, 11], "App", None),  # stored before 0005: no kind (a union)
           group_record(4, 2, [9, 10], "Broader", "broader"), group_record(5, 1, [7], "Sub", "sub_theme")],
    "j3": [],
}  # fmt: skip
FIRST_SEEN = {("j2", 7): "j1", ("j2", 8): "j1"}


def old_rows(engine: sa.Engine) -> None:
    """Two projects' jobs as revision 0007 stores them: documents, themes, memberships, spans and theme groups."""
    meta = sa.MetaData()
    meta.reflect(engine)
    t = meta.tables
    with engine.begin() as conn:
        conn.execute(sa.insert(t["tenants"]), [{"id": "tenant-1", "name": "one", "created_at": T0}])
        conn.execute(sa.insert(t["projects"]), [{"id": p, "tenant_id": "tenant-1", "created_at": T0} for p in "pq"])
        conn.execute(sa.insert(t["jobs"]), [
            {"id": j, "tenant_id": "tenant-1", "project_id": "q" if j == "j3" else "p", "status": "succeeded",
             "progress": 1.0, "counts": {}, "source": "-", "source_kind": "json", "columns": {}, "n_chunks": 1,
             "created_at": T0 + timedelta(days=i), "result": {"n_documents": 10} if j != "j1" else None}
            for i, j in enumerate(("j1", "j2", "j3"))])  # fmt: skip
        docs = [{"id": 100 + i, "project_id": "q" if i in (7, 8) else "p", "job_id": "j1", "doc_id": f"d{i}",
                 "text": f"comment {i}", "rating": float(1 + i % 5), "sentiment_score": i / 10 - 0.4,
                 "sentiment_label": ("negative", "neutral", "positive")[i % 3]} for i in range(10)]  # fmt: skip
        conn.execute(sa.insert(t["documents"]), docs)
        for job, themes in MEMBERS.items():
            project = "q" if job == "j3" else "p"
            conn.execute(sa.insert(t["themes"]), [
                {"job_id": job, "theme_id": theme, "project_id": project, "label": f"theme {theme}",
                 "size": len(links), "sentiment_mean": 0.1, "first_seen_job": FIRST_SEEN.get((job, theme), job),
                 "record": theme_record(theme, len(links), f"theme {theme}", FIRST_SEEN.get((job, theme), job))}
                for theme, links in themes.items()])  # fmt: skip
            conn.execute(sa.insert(t["document_themes"]), [
                {"job_id": job, "theme_id": theme, "document_id": 100 + d, "activation": a}
                for theme, links in themes.items() for d, a in links])  # fmt: skip
            if GROUPS[job]:
                groups = [{"job_id": job, "group_id": g["id"], "size": g["size"], "record": g} for g in GROUPS[job]]
                conn.execute(sa.insert(t["theme_groups"]), groups)
        conn.execute(sa.insert(t["span_themes"]), [
            {"job_id": "j2", "theme_id": theme, "document_id": 100 + d, "span_index": i, "span_start": 0,
             "span_end": 5, "activation": 0.5} for theme, spans in SPANS.items() for d, i in spans])  # fmt: skip
        conn.execute(sa.insert(t["theme_edits"]), [{"project_id": "p", "theme_id": 8, "label": "Renamed",
                                                    "hidden": False, "updated_at": T0}])  # fmt: skip


def stored(engine: sa.Engine) -> tuple[dict, dict]:
    """Nodes per (job, id): (level, parent_id, record); memberships per (job, node): {document: activation}."""
    with engine.connect() as conn:
        meta = sa.MetaData()
        meta.reflect(conn, only=("themes", "document_themes"))
        themes, links = meta.tables["themes"], meta.tables["document_themes"]
        nodes = {(r.job_id, r.theme_id): (r.level, r.parent_id, r.record) for r in conn.execute(sa.select(themes))}
        members: dict[tuple[str, int], dict[int, float]] = {}
        for r in conn.execute(sa.select(links)):
            members.setdefault((r.job_id, r.theme_id), {})[r.document_id - 100] = r.activation
    return nodes, members


def check_tree(engine: sa.Engine) -> None:
    """Every theme has one parent category of its job; a category's children are exactly the themes under it and
    its members the union of theirs (highest activation); the coarsest unions became categories, the rest went
    under "Other themes"."""
    nodes, members = stored(engine)
    names = {}
    for (job, node), (level, parent, record) in nodes.items():
        assert record["level"] == level and record["parent"] == parent and record["id"] == node
        if level == 2:
            assert nodes[(job, parent)][0] == 1 and record["children"] == [] and record["name"] == record["label"]
            continue
        assert level == 1 and parent is None and node > CATEGORY
        children = record["children"]
        assert sorted(children) == sorted(t for (j, t), v in nodes.items() if j == job and v[1] == node)
        union: dict[int, float] = {}
        for child in children:
            for document, activation in members[(job, child)].items():
                union[document] = max(union.get(document, 0), activation)
        assert members[(job, node)] == union
        assert record["size"] == len(union) and record["share"] == round(len(union) / 10, 4)
        assert record["label"] == record["name"] and record["features"] == sorted(children)
        names[(job, node)] = (record["name"], children)
    assert set(members) <= set(nodes)
    assert names == {
        ("j1", CATEGORY + 1): ("Shipping", [7, 8]), ("j1", CATEGORY + 2): ("Other themes", [12]),
        ("j2", CATEGORY + 1): ("Delivery", [7, 8, 9]), ("j2", CATEGORY + 2): ("App", [10, 11]),
        ("j3", CATEGORY + 1): ("Other themes", [1, 2]),
    }  # fmt: skip
    delivery, app = nodes[("j2", CATEGORY + 1)][2], nodes[("j2", CATEGORY + 2)][2]
    assert delivery["span_count"] == 3 and app["span_count"] == 3  # distinct spans of its themes; none: the group's
    assert delivery["first_seen_job"] == "j1" and app["first_seen_job"] == "j2" and not delivery["is_new"]
    assert delivery["keywords"] == ["Delivery", "x"] and delivery["cohesion"] == 0.4
    assert nodes[("j1", CATEGORY + 2)][2]["keywords"] == ["theme 12", "x"]  # "Other themes": its themes' keywords
    # App's comments: 4, 5 and 6 (scores 0.0, 0.1, 0.2; neutral, positive, negative; ratings 5, 1, 2)
    assert app["sentiment"] == {"mean": 0.1, "negative": 0.3333, "neutral": 0.3333, "positive": 0.3333}
    assert app["rating"] == {"mean": round((5 + 1 + 2) / 3, 4), "count": 3}


def check_downgraded(engine: sa.Engine) -> None:
    """At 0007 again: the categories of two themes or more are union groups; no node but themes is left."""
    with engine.connect() as conn:
        assert {r[0] for r in conn.execute(sa.text("SELECT DISTINCT theme_id FROM document_themes"))} <= {
            1, 2, 7, 8, 9, 10, 11, 12}  # fmt: skip
        columns = {c["name"] for c in sa.inspect(conn).get_columns("themes")}
        assert "level" not in columns and "parent_id" not in columns
        groups = {(r.job_id, r.group_id): r.record for r in conn.execute(sa.text("SELECT * FROM theme_groups"))}
    records = {k: v if isinstance(v, dict) else __import__("json").loads(v) for k, v in groups.items()}
    assert {k: (r["label"], r["kind"], sorted(r["themes"])) for k, r in records.items()} == {
        ("j1", 1): ("Shipping", "union", [7, 8]), ("j2", 1): ("Delivery", "union", [7, 8, 9]),
        ("j2", 2): ("App", "union", [10, 11]), ("j3", 1): ("Other themes", "union", [1, 2])}  # fmt: skip


def migrate(url: str, engine: sa.Engine, between=lambda: None) -> None:  # type: ignore[no-untyped-def]
    from alembic import command

    config = alembic_config(url)
    command.upgrade(config, "0007")
    between()
    old_rows(engine)
    command.upgrade(config, "0008")
    check_tree(engine)
    with engine.begin() as conn:  # a row written without a level is a theme
        conn.execute(sa.text("INSERT INTO themes (job_id, theme_id, project_id, label, size, sentiment_mean, "
                             "first_seen_job, record) VALUES ('j3', 5, 'q', 'x', 0, 0, 'j3', '{}')"))  # fmt: skip
        assert conn.execute(sa.text("SELECT level, parent_id FROM themes WHERE theme_id = 5")).one() == (2, None)
        conn.execute(sa.text("DELETE FROM themes WHERE theme_id = 5"))
        assert sa.inspect(conn).has_table("theme_groups") is False
    command.downgrade(config, "0007")
    check_downgraded(engine)
    command.upgrade(config, "0008")
    check_tree(engine)


def test_migration_0008_on_sqlite(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = sa.create_engine(url)
    migrate(url, engine)
    engine.dispose()


def test_migration_0008_on_postgresql():
    """As on SQLite, and the reporting schema: ``theme_groups`` dropped, ``theme_tree`` and ``document_nodes`` made
    with row-level security and readable by a role granted before, ``name`` and ``parent_id`` appended to
    ``themes``, version 3 (and back to version 2 on the downgrade)."""
    if not reachable(5432):
        pytest.skip("needs PostgreSQL on 127.0.0.1:5432 (not reachable)")
    import psycopg

    from tests.test_reporting import last_column, readable
    from worker.pipeline.output import REPORT_COLUMNS

    name, role = f"ft_{uuid.uuid4().hex[:12]}", f"bi_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
        conn.execute(f'CREATE ROLE "{role}" NOLOGIN')
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    dsn = POSTGRES_ADMIN.rsplit("/", 1)[0] + "/" + name
    engine = sa.create_engine(url)

    def grant_role() -> None:  # as `reporting grant` leaves a role
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("INSERT INTO reporting.role_tenants VALUES (%s, 'tenant-1')", (role,))
            conn.execute(f'GRANT USAGE ON SCHEMA reporting TO "{role}"')
            for table in ("role_tenants", "themes", "theme_groups", "span_themes"):
                conn.execute(f'GRANT SELECT ON reporting.{table} TO "{role}"')

    def columns(conn, table: str) -> list[str]:  # type: ignore[no-untyped-def]
        query = ("SELECT column_name FROM information_schema.columns WHERE table_schema = 'reporting' AND "
                 "table_name = %s ORDER BY ordinal_position")  # fmt: skip
        return [r[0] for r in conn.execute(query, (table,))]

    try:
        migrate(url, engine, grant_role)
        with psycopg.connect(dsn, autocommit=True) as conn:
            assert conn.execute("SELECT to_regclass('reporting.theme_groups')").fetchone()[0] is None
            for table in ("theme_tree", "document_nodes"):
                assert readable(conn, role, f"reporting.{table}")
                assert columns(conn, table) == ["tenant_id", "project_id", *(c for c, _ in REPORT_COLUMNS[table])]
            assert columns(conn, "themes")[-2:] == ["name", "parent_id"]
            assert columns(conn, "themes") == ["tenant_id", "project_id", *(c for c, _ in REPORT_COLUMNS["themes"])]
            for table in ("projects", "themes", "span_themes", "theme_tree", "document_nodes"):
                comment = conn.execute(f"SELECT obj_description('reporting.{table}'::regclass)").fetchone()[0]
                assert "version 3" in comment, (table, comment)
            for tenant in ("tenant-1", "tenant-2"):
                conn.execute("INSERT INTO reporting.document_nodes VALUES (%s, 'p', 'd', 1000001, 1, 0.5)", (tenant,))
            conn.execute(f'SET ROLE "{role}"')  # the policy: the role's tenant's rows only
            assert conn.execute("SELECT tenant_id FROM reporting.document_nodes").fetchall() == [("tenant-1",)]
            conn.execute("RESET ROLE")
        from alembic import command

        command.downgrade(alembic_config(url), "0007")
        with psycopg.connect(dsn, autocommit=True) as conn:
            assert conn.execute("SELECT to_regclass('reporting.theme_tree'), to_regclass('reporting.document_nodes')"
                                ).fetchone() == (None, None)  # fmt: skip
            assert readable(conn, role, "reporting.theme_groups") and last_column(conn, "theme_groups") == "span_count"
            assert last_column(conn, "themes") == "span_count"
            assert "version 2" in conn.execute("SELECT obj_description('reporting.themes'::regclass)").fetchone()[0]
        command.upgrade(alembic_config(url), "head")
        with psycopg.connect(dsn, autocommit=True) as conn:
            assert "version 4" in conn.execute("SELECT obj_description('reporting.themes'::regclass)").fetchone()[0]
            for table in ("document_attributes", "alerts"):  # 0009
                assert readable(conn, role, f"reporting.{table}")
                assert columns(conn, table) == ["tenant_id", "project_id", *(c for c, _ in REPORT_COLUMNS[table])]
    finally:
        engine.dispose()
        with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'DROP ROLE IF EXISTS "{role}"')


# ---------------------------------------------------------------- the tree through the API (SQLite)


@pytest.fixture
def tree(service_env):
    """A project whose job stored a tree (tests/test_theme_edits.run_job): categories 1000001 (themes 3, 5) and
    1000002 (themes 8, 11), sub-theme 2000001 under theme 3."""
    from tests.api_helpers import make_client, new_key
    from tests.test_theme_edits import run_job

    headers = new_key("alice")
    job_id, project_id = run_job(None)
    return make_client(), headers, project_id, job_id


DELIVERY, PRODUCTS, SUB = 1_000_001, 1_000_002, 2_000_001


def get(client, headers, path: str, **params) -> Any:  # type: ignore[no-untyped-def]
    response = client.get(path, headers=headers, params=params)
    assert response.status_code == 200, (path, response.text)
    return response.json()


def members_of(client, headers, project_id: str, node: int) -> dict[str, dict]:  # type: ignore[no-untyped-def]
    page = get(client, headers, f"/v1/projects/{project_id}/themes/{node}", limit=500)
    return {m["doc_id"]: m for m in page["members"]}


def flat(nodes: list[dict]) -> dict[int, dict]:
    out = {}
    for n in nodes:
        out[n["id"]] = n
        out.update(flat(n["children"]))
    return out


def test_tree_nodes_and_children(tree):
    client, headers, project_id, job_id = tree
    page = get(client, headers, f"/v1/projects/{project_id}/tree")
    assert page["metadata"]["job_id"] == job_id and page["metadata"]["n_categories"] == 2
    categories = page["categories"]
    assert [c["id"] for c in categories] == sorted((DELIVERY, PRODUCTS), key=lambda c: -next(
        x["size"] for x in categories if x["id"] == c))  # fmt: skip
    nodes = flat(categories)
    assert set(nodes) == {DELIVERY, PRODUCTS, 3, 5, 8, 11, SUB}
    assert {n: [c["id"] for c in nodes[n]["children"]] for n in (DELIVERY, 3, SUB)} == {
        DELIVERY: sorted((3, 5), key=lambda t: -nodes[t]["size"]), 3: [SUB], SUB: []}  # fmt: skip
    assert set(nodes[3]) == {"id", "level", "name", "keywords", "size", "share", "sentiment_mean", "rating_mean",
                             "impact", "emerging", "children"}  # fmt: skip
    impact = get(client, headers, f"/v1/projects/{project_id}/nodes/3")["impact"]
    assert nodes[3]["impact"] == impact["coef"] and isinstance(impact["coef"], float)  # the tree sorts by it
    assert [nodes[n]["level"] for n in (DELIVERY, 3, SUB)] == [1, 2, 3]
    assert nodes[DELIVERY]["name"] == "Delivery problems"
    assert len(nodes[DELIVERY]["keywords"]) <= 5
    assert get(client, headers, f"/v1/jobs/{job_id}/tree") == page

    record = get(client, headers, f"/v1/projects/{project_id}/nodes/{DELIVERY}")
    assert record["level"] == 1 and record["parent"] is None and sorted(record["children"]) == [3, 5]
    assert record["name"] == record["label"] == "Delivery problems" and record["features"] == [3, 5]
    assert record["size"] == nodes[DELIVERY]["size"] and record["examples"] and record["impact"] is not None
    assert get(client, headers, f"/v1/projects/{project_id}/nodes/{SUB}")["parent"] == 3
    assert get(client, headers, f"/v1/jobs/{job_id}/nodes/3")["children"] == [SUB]
    children = get(client, headers, f"/v1/projects/{project_id}/nodes/{DELIVERY}/children")
    assert children["node_id"] == DELIVERY and {c["id"] for c in children["children"]} == {3, 5}
    assert [c["size"] for c in children["children"]] == sorted((c["size"] for c in children["children"]), reverse=True)
    assert [c["id"] for c in get(client, headers, f"/v1/jobs/{job_id}/nodes/3/children")["children"]] == [SUB]
    assert get(client, headers, f"/v1/projects/{project_id}/nodes/{SUB}/children")["children"] == []

    # the theme endpoints list themes only, but read any node
    themes = get(client, headers, f"/v1/projects/{project_id}/themes", limit=500)
    assert {t["id"] for t in themes["themes"]} == {3, 5, 8, 11} and all(t["level"] == 2 for t in themes["themes"])
    assert get(client, headers, f"/v1/jobs/{job_id}/themes")["metadata"]["n_themes"] == 4
    assert get(client, headers, f"/v1/projects/{project_id}")["n_themes"] == 4
    assert get(client, headers, f"/v1/projects/{project_id}/themes/{SUB}")["theme"]["level"] == 3
    from tests.api_helpers import assert_problem

    for path in (f"/v1/projects/{project_id}/nodes/77", f"/v1/jobs/{job_id}/nodes/77/children"):
        assert_problem(client.get(path, headers=headers), 404)


def test_groups_are_gone(tree):
    from tests.api_helpers import assert_problem, new_key

    client, headers, project_id, job_id = tree
    for path in (f"/v1/projects/{project_id}/groups", f"/v1/jobs/{job_id}/groups"):
        body = assert_problem(client.get(path, headers=headers), 410, "theme tree", "/tree")
        assert body["type"].endswith("groups-replaced-by-tree")
        assert_problem(client.get(path, headers=new_key("bob")), 404)  # another tenant's: not found
    paths = client.get("/openapi.json").json()["paths"]
    assert not any(p.endswith("/groups") for p in paths)
    assert {"/v1/projects/{project_id}/tree", "/v1/projects/{project_id}/nodes/{node_id}",
            "/v1/projects/{project_id}/nodes/{node_id}/children", "/v1/jobs/{job_id}/tree",
            "/v1/jobs/{job_id}/nodes/{node_id}", "/v1/jobs/{job_id}/nodes/{node_id}/children"} <= set(paths)


def test_a_category_lists_its_themes_comments_with_their_spans(tree):
    client, headers, project_id, _ = tree
    spans = report(client, headers, project_id, "span_themes")
    theme_spans = {(r["doc_id"], int(r["span_index"])) for r in spans if r["theme_id"] in ("3", "5")}
    late, slow = (members_of(client, headers, project_id, t) for t in (3, 5))
    delivery = members_of(client, headers, project_id, DELIVERY)
    assert set(delivery) == set(late) | set(slow)
    for doc_id, member in delivery.items():
        assert member["activation"] == max(m[doc_id]["activation"] for m in (late, slow) if doc_id in m)
        assert member["spans"] and {(doc_id, s["index"]) for s in member["spans"]} == {
            s for s in theme_spans if s[0] == doc_id}  # fmt: skip
    page = get(client, headers, f"/v1/projects/{project_id}/themes/{DELIVERY}", limit=2)
    assert len(page["members"]) == 2 and page["next_cursor"]
    sub = members_of(client, headers, project_id, SUB)
    assert sub and set(sub) < set(late)
    assert all({s["index"] for s in m["spans"]} <= {s["index"] for s in late[d]["spans"]} for d, m in sub.items())


def test_edits_of_every_level(tree):
    from tests.api_helpers import assert_problem

    client, headers, project_id, _ = tree
    base = f"/v1/projects/{project_id}"
    renamed = client.patch(f"{base}/themes/{DELIVERY}", headers=headers, json={"name": "Shipping"})
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["name"] == renamed.json()["label"] == "Shipping"
    assert renamed.json()["original_name"] == "Delivery problems"
    assert flat(get(client, headers, f"{base}/tree")["categories"])[DELIVERY]["name"] == "Shipping"
    names = {r["node_id"]: r["name"] for r in report(client, headers, project_id, "theme_tree")}
    assert names[str(DELIVERY)] == "Shipping"
    edits = get(client, headers, f"{base}/edits")
    assert [(e["theme_id"], e["name"]) for e in edits] == [(DELIVERY, "Shipping")]
    assert_problem(client.patch(f"{base}/themes/{DELIVERY}", headers=headers, json={"name": "a", "label": "b"}), 422)
    client.patch(f"{base}/themes/{SUB}", headers=headers, json={"label": "Late twice"})
    assert get(client, headers, f"{base}/nodes/{SUB}")["name"] == "Late twice"

    # hiding a category hides its themes (and their sub-themes) everywhere but include_hidden
    assert client.patch(f"{base}/themes/{PRODUCTS}", headers=headers, json={"hidden": True}).status_code == 200
    assert set(flat(get(client, headers, f"{base}/tree")["categories"])) == {DELIVERY, 3, 5, SUB}
    shown = flat(get(client, headers, f"{base}/tree", include_hidden=True)["categories"])
    assert shown[PRODUCTS]["hidden"] is True and shown[8]["hidden"] is False and set(shown) >= {8, 11}
    assert {t["id"] for t in get(client, headers, f"{base}/themes")["themes"]} == {3, 5}
    for name, column in (("themes", "theme_id"), ("document_themes", "theme_id"), ("theme_tree", "node_id"),
                         ("document_nodes", "node_id"), ("span_themes", "theme_id"), ("theme_trends", "theme_id")):
        assert {r[column] for r in report(client, headers, project_id, name)} <= {str(n) for n in (DELIVERY, 3, 5, SUB)}
    assert [c["id"] for c in get(client, headers, f"{base}/nodes/{PRODUCTS}/children", include_hidden=True)["children"]]
    assert client.patch(f"{base}/themes/{PRODUCTS}", headers=headers, json={"hidden": False}).status_code == 200

    # merges within a level; across levels a 422 problem
    for target, sources in ((DELIVERY, [8]), (3, [SUB]), (SUB, [3, 5]), (PRODUCTS, [DELIVERY, 5])):
        body = assert_problem(client.post(f"{base}/themes/{target}/merge", headers=headers, json={"themes": sources}),
                              422, "level")  # fmt: skip
        assert body["type"].endswith("merge-across-levels")
    union = set(members_of(client, headers, project_id, DELIVERY)) | set(members_of(client, headers, project_id,
                                                                                    PRODUCTS))  # fmt: skip
    merged = client.post(f"{base}/themes/{DELIVERY}/merge", headers=headers, json={"themes": [PRODUCTS]})
    assert merged.status_code == 200, merged.text
    assert merged.json()["merged"] == [PRODUCTS] and merged.json()["size"] == len(union)
    assert sorted(merged.json()["children"]) == [3, 5, 8, 11]
    categories = get(client, headers, f"{base}/tree")["categories"]
    assert [c["id"] for c in categories] == [DELIVERY] and len(categories[0]["children"]) == 4
    assert set(members_of(client, headers, project_id, DELIVERY)) == union
    rows = {int(r["node_id"]): r for r in report(client, headers, project_id, "theme_tree")}
    assert PRODUCTS not in rows and rows[DELIVERY]["merged_theme_ids"] == str(PRODUCTS)
    assert int(rows[DELIVERY]["size"]) == len(union) and rows[8]["parent_id"] == str(DELIVERY)
    parents = {int(r["theme_id"]): r["parent_id"] for r in report(client, headers, project_id, "themes")}
    assert parents[11] == str(DELIVERY)
    nodes = report(client, headers, project_id, "document_nodes")
    assert {r["doc_id"] for r in nodes if r["node_id"] == str(DELIVERY)} == union
    assert_problem(client.get(f"{base}/nodes/{PRODUCTS}", headers=headers), 404, "merged into")
    assert client.post(f"{base}/themes/{PRODUCTS}/unmerge", headers=headers).status_code == 200
    assert len(get(client, headers, f"{base}/tree")["categories"]) == 2

    # a theme merged into a theme of another category is shown once: as that theme, under that one's category
    assert client.post(f"{base}/themes/3/merge", headers=headers, json={"themes": [8]}).status_code == 200
    categories = {c["id"]: [t["id"] for t in c["children"]] for c in get(client, headers, f"{base}/tree")["categories"]}
    assert sorted(categories[DELIVERY]) == [3, 5] and categories[PRODUCTS] == [11]
    assert client.post(f"{base}/themes/8/unmerge", headers=headers).status_code == 200


def report(client, headers, project_id: str, name: str) -> list[dict]:  # type: ignore[no-untyped-def]
    import csv
    import io

    response = client.get(f"/v1/projects/{project_id}/reports/{name}.csv", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["x-report-schema-version"] == "4"
    return list(csv.DictReader(io.StringIO(response.text)))


def test_tree_reports(tree):
    import io

    import pyarrow.parquet as pq

    from worker.pipeline.output import REPORT_COLUMNS

    client, headers, project_id, _ = tree
    rows = report(client, headers, project_id, "theme_tree")
    assert list(rows[0]) == [c for c, _ in REPORT_COLUMNS["theme_tree"]]
    order = [int(r["node_id"]) for r in rows]
    first = order[0]
    assert first in (DELIVERY, PRODUCTS) and set(order) == {DELIVERY, PRODUCTS, 3, 5, 8, 11, SUB}
    assert order.index(3) + 1 == order.index(SUB)  # depth first: a theme, then its sub-themes
    by_id = {int(r["node_id"]): r for r in rows}
    assert [(by_id[n]["level"], by_id[n]["parent_id"]) for n in (DELIVERY, 8, SUB)] == [("1", ""), ("2", str(PRODUCTS)),
                                                                                        ("3", "3")]  # fmt: skip
    assert by_id[DELIVERY]["name"] == "Delivery problems" and by_id[DELIVERY]["impact_coef"]
    links = report(client, headers, project_id, "document_nodes")
    assert list(links[0]) == ["doc_id", "node_id", "level", "activation"]
    for node in (DELIVERY, 3, SUB):
        docs = {r["doc_id"] for r in links if r["node_id"] == str(node)}
        assert docs == set(members_of(client, headers, project_id, node)) and len(docs) == int(by_id[node]["size"])
        assert {r["level"] for r in links if r["node_id"] == str(node)} == {by_id[node]["level"]}
    assert [r["level"] for r in links] == sorted(r["level"] for r in links)
    assert {r["theme_id"] for r in report(client, headers, project_id, "document_themes")} == {"3", "5", "8", "11"}
    themes = report(client, headers, project_id, "themes")
    assert list(themes[0])[-2:] == ["name", "parent_id"]
    assert {r["theme_id"]: r["parent_id"] for r in themes} == {"3": str(DELIVERY), "5": str(DELIVERY),
                                                               "8": str(PRODUCTS), "11": str(PRODUCTS)}
    assert {r["theme_id"] for r in report(client, headers, project_id, "theme_impact")} == {"3", "5", "8", "11"}
    for name in ("theme_tree", "document_nodes"):
        response = client.get(f"/v1/projects/{project_id}/reports/{name}.parquet", headers=headers)
        table = pq.read_table(io.BytesIO(response.content))
        assert table.column_names == [c for c, _ in REPORT_COLUMNS[name]] and table.num_rows == len(
            rows if name == "theme_tree" else links)  # fmt: skip
        assert table.schema.metadata[b"feedback_themes.schema_version"] == b"4"


def test_impact_per_level_and_trends_for_every_node(tree):
    """Impact is fitted per level (a category never with its own themes); every node has trends."""
    import numpy as np
    import scipy.sparse as sp
    from sqlalchemy import select

    from service.storage.derived import job_documents
    from service.storage.models import DocumentTheme, Job, ThemeRow
    from service.storage.session import session_scope
    from worker.pipeline.impact import ImpactOptions, theme_impact

    client, headers, project_id, job_id = tree
    with session_scope() as session:
        docs = job_documents(session, session.get(Job, job_id))
        row_of = {d.id: i for i, d in enumerate(docs)}
        ratings = np.array([d.rating for d in docs], dtype=float)
        levels = dict(session.execute(select(ThemeRow.theme_id, ThemeRow.level).where(ThemeRow.job_id == job_id)).all())
        links = session.execute(select(DocumentTheme.theme_id, DocumentTheme.document_id, DocumentTheme.activation)
                                .where(DocumentTheme.job_id == job_id)).all()  # fmt: skip
    for level in (1, 2, 3):
        nodes = sorted(n for n, lv in levels.items() if lv == level)
        column = {n: i for i, n in enumerate(nodes)}
        part = [(row_of[d], column[t], a) for t, d, a in links if t in column]
        matrix = sp.csr_matrix(([a for *_, a in part], ([r for r, *_ in part], [c for _, c, _ in part])),
                               shape=(len(docs), len(nodes)))  # fmt: skip
        expected = dict(zip(nodes, theme_impact(matrix, ratings, ImpactOptions(seed=0))))
        for node in nodes:
            assert get(client, headers, f"/v1/projects/{project_id}/nodes/{node}")["impact"] == expected[node], node
    delivery = get(client, headers, f"/v1/projects/{project_id}/nodes/{DELIVERY}")["impact"]
    assert delivery["high"] < 0  # late and slow deliveries pull ratings down
    for level, nodes in ((1, {DELIVERY, PRODUCTS}), (2, {3, 5, 8, 11}), (3, {SUB})):
        trends = get(client, headers, f"/v1/projects/{project_id}/trends", level=level)
        assert {t["theme_id"] for t in trends["themes"]} == nodes and len(trends["periods"]) == 42
        assert all(t["level"] == level for t in trends["themes"])
    delivery = get(client, headers, f"/v1/projects/{project_id}/nodes/{DELIVERY}")
    products = get(client, headers, f"/v1/projects/{project_id}/nodes/{PRODUCTS}")  # theme 11: the last day only
    assert delivery["emerging"] is False and products["emerging"] is True and products["emerging_reason"] == "spike"


def test_an_update_keeps_node_ids_edits_and_first_seen(tree):
    """The next job of the project: the previous job's categories and sub-themes reach the analysis as row positions
    (``previous_memberships``), a renamed category keeps its name, and nodes keep their first job."""
    from tests.test_theme_edits import run_job
    from worker.runner import previous_memberships, project_documents

    client, headers, project_id, job_id = tree
    docs = project_documents(project_id)
    previous = previous_memberships(job_id, docs["id"].to_numpy())
    assert set(previous) == {DELIVERY, PRODUCTS, SUB}
    for node, rows in previous.items():
        assert list(docs["doc_id"].iloc[rows]) == sorted(members_of(client, headers, project_id, node),
                                                         key=list(docs["doc_id"]).index)  # fmt: skip
    client.patch(f"/v1/projects/{project_id}/themes/{PRODUCTS}", headers=headers, json={"name": "Products"})
    run_job(project_id, previous=job_id, seed=1)
    nodes = flat(get(client, headers, f"/v1/projects/{project_id}/tree")["categories"])
    assert nodes[PRODUCTS]["name"] == "Products"
    for node in (DELIVERY, 3, SUB):
        record = get(client, headers, f"/v1/projects/{project_id}/nodes/{node}")
        assert record["first_seen_job"] == job_id and record["is_new"] is False
