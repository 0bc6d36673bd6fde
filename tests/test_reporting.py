"""The PostgreSQL ``reporting`` schema: a finished job publishes its project's report tables, edits republish, and
``feedback-themes reporting grant`` makes a read-only role that — connected as itself — sees only its tenant's rows."""

from __future__ import annotations

import subprocess
import sys
import uuid

import psycopg
import pytest

from tests.service_harness import reachable
from tests.test_service_e2e import POSTGRES_ADMIN
from worker.pipeline.output import (
    DOCUMENT_NODES_COLUMNS,
    DOCUMENT_THEMES_COLUMNS,
    DOCUMENTS_COLUMNS,
    REPORT_COLUMNS,
    SPAN_THEMES_COLUMNS,
    THEMES_COLUMNS,
    TREE_COLUMNS,
)

pytestmark = pytest.mark.services


def test_versioned_columns_extend_the_cli_files():
    # columns added after the tables were made go last in the report tables, in the order ALTER TABLE appended them:
    # cohesion (migration 0004), span_count (0007, schema version 2), name and parent_id (0008, version 3)
    assert "theme_groups" not in REPORT_COLUMNS  # removed in version 3
    later = ["cohesion", "span_count", "name", "parent_id"]
    first = [c for c in THEMES_COLUMNS if c not in later]
    assert [c for c, _ in REPORT_COLUMNS["themes"]][: len(first)] == first
    assert [c for c, _ in REPORT_COLUMNS["themes"]][-len(later):] == later and set(later) <= set(THEMES_COLUMNS)
    assert [c for c, _ in REPORT_COLUMNS["document_themes"]] == DOCUMENT_THEMES_COLUMNS
    assert [c for c, _ in REPORT_COLUMNS["span_themes"]] == SPAN_THEMES_COLUMNS  # a table of version 2 (0007)
    assert [c for c, _ in REPORT_COLUMNS["documents"]] == DOCUMENTS_COLUMNS
    # the tables of version 3 (0008): the tree file's columns, then the report's own
    own = ["emerging", "impact_coef", "impact_low", "impact_high", "merged_theme_ids", "original_name"]
    assert [c for c, _ in REPORT_COLUMNS["theme_tree"]] == [*TREE_COLUMNS, *own]
    assert [c for c, _ in REPORT_COLUMNS["document_nodes"]] == DOCUMENT_NODES_COLUMNS


def test_every_report_is_served_and_published():
    from service.api.routes_reports import ReportName
    from service.storage.reporting_schema import EDITED_TABLES

    assert set(ReportName.__args__) == set(REPORT_COLUMNS)
    assert {"themes", "document_themes", "span_themes", "theme_tree", "document_nodes"} <= set(EDITED_TABLES)
    assert set(EDITED_TABLES) <= set(REPORT_COLUMNS)


@pytest.fixture
def postgres(tmp_path, monkeypatch):
    """A fresh database, the service's settings pointing at it; dropped afterwards with the roles the test made."""
    if not reachable(5432):
        pytest.skip("needs PostgreSQL on 127.0.0.1:5432 (not reachable)")
    from service.settings import get_settings
    from service.storage.session import upgrade_database

    name = f"ft_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    monkeypatch.setenv("FEEDBACK_THEMES_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("FEEDBACK_THEMES_DATABASE_URL", url)
    get_settings.cache_clear()
    upgrade_database()
    roles: list[str] = []
    yield {"url": url, "name": name, "roles": roles}
    get_settings.cache_clear()
    from service.storage.session import engine_for

    engine_for(url).dispose()
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        for role in roles:
            conn.execute(f'DROP ROLE IF EXISTS "{role}"')


def grant(postgres, tenant: str) -> tuple[str, str]:
    role = f"bi_{tenant}_{uuid.uuid4().hex[:8]}"
    postgres["roles"].append(role)
    env = {**__import__("os").environ, "FEEDBACK_THEMES_DATABASE_URL": postgres["url"]}
    out = subprocess.run([sys.executable, "-m", "service.cli", "reporting", "grant", "--role", role, "--tenant", tenant],
                         capture_output=True, text=True, timeout=120, env=env)  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    password = out.stdout.split("password (shown once): ", 1)[1].split()[0]
    return role, password


def count(conn, sql: str) -> int:
    return conn.execute(sql).fetchone()[0]


def publish_an_alert(project_id: str) -> None:
    """A made-up alert of the project's job (a project's first job has none: tests/test_alerts.py makes real ones),
    published."""
    from service.storage.reporting_schema import publish_reporting
    from service.storage.session import session_scope
    from tests.test_alerts import add_alert

    add_alert(project_id)
    with session_scope() as session:
        assert publish_reporting(session, project_id, ("alerts",))


def test_published_tables_and_a_tenant_role_sees_only_its_rows(postgres):
    from tests.api_helpers import make_client, new_key
    from tests.test_theme_edits import run_job

    alice_headers = new_key("alice")
    new_key("bob")
    _, alice_project = run_job(None, tenant="alice", seed=0)
    _, bob_project = run_job(None, tenant="bob", seed=1)
    admin = psycopg.connect(POSTGRES_ADMIN.rsplit("/", 1)[0] + "/" + postgres["name"], autocommit=True)
    publish_an_alert(alice_project)
    publish_an_alert(bob_project)
    for name in ("projects", *REPORT_COLUMNS):
        per_project = dict(admin.execute(f"SELECT project_id, count(*) FROM reporting.{name} GROUP BY 1").fetchall())
        assert per_project.get(alice_project, 0) > 0 and per_project.get(bob_project, 0) > 0, name
    assert count(admin, f"SELECT count(*) FROM reporting.documents WHERE project_id = '{alice_project}'") == 240

    # an edit through the API republishes the project's theme tables
    client = make_client()
    merged = client.post(f"/v1/projects/{alice_project}/themes/3/merge", headers=alice_headers, json={"themes": [5]})
    assert merged.status_code == 200, merged.text
    renamed = client.patch(f"/v1/projects/{alice_project}/themes/8", headers=alice_headers, json={"label": "Fit"})
    assert renamed.status_code == 200
    themes = dict(admin.execute(f"SELECT theme_id, label FROM reporting.themes WHERE project_id = '{alice_project}'"))
    assert set(themes) == {3, 8, 11} and themes[8] == "Fit"
    cohesion = dict(admin.execute(f"SELECT theme_id, cohesion FROM reporting.themes WHERE project_id = '{alice_project}'"))
    assert cohesion[8] == 0.58  # migration 0004's column, filled from the theme record
    parents = dict(admin.execute("SELECT theme_id, parent_id FROM reporting.themes WHERE project_id = %s",
                                 (alice_project,)).fetchall())  # fmt: skip
    assert parents == {3: 1_000_001, 8: 1_000_002, 11: 1_000_002}
    assert count(admin, "SELECT count(*) FROM reporting.document_themes WHERE theme_id = 5 "
                        f"AND project_id = '{alice_project}'") == 0  # fmt: skip
    # schema version 2: span_themes (the merged theme's spans under the theme it was merged into, once each) and
    # span_count, which counts them; version 3: the tree; version 4: metadata and alerts
    assert count(admin, f"SELECT schema_version FROM reporting.projects WHERE project_id = '{alice_project}'") == 4
    spans = admin.execute('SELECT s.theme_id, s.doc_id, s.span_index, s.span_start, s.span_end, d.text '
                          "FROM reporting.span_themes s JOIN reporting.documents d USING (project_id, doc_id) "
                          "WHERE s.project_id = %s", (alice_project,)).fetchall()  # fmt: skip
    assert {r[0] for r in spans} == {3, 8, 11}
    assert len(spans) == len({r[:3] for r in spans}) and all(0 <= r[3] < r[4] <= len(r[5]) for r in spans)
    assert all(any(topic in r[5][r[3] : r[4]] for topic in ("The delivery was late again", "Shipping took far too long"))
               for r in spans if r[0] == 3)  # fmt: skip
    span_counts = dict(admin.execute("SELECT theme_id, span_count FROM reporting.themes WHERE project_id = %s",
                                     (alice_project,)).fetchall())  # fmt: skip
    assert span_counts == {t: sum(r[0] == t for r in spans) for t in (3, 8, 11)}
    tree = {r[0]: r[1:] for r in admin.execute("SELECT node_id, level, parent_id, name, size FROM reporting.theme_tree "
                                                "WHERE project_id = %s", (alice_project,))}  # fmt: skip
    assert {n: t[:2] for n, t in tree.items()} == {1_000_001: (1, None), 1_000_002: (1, None), 3: (2, 1_000_001),
                                                   8: (2, 1_000_002), 11: (2, 1_000_002), 2_000_001: (3, 3)}
    assert tree[8][2] == "Fit" and tree[3][3] == themes_size(admin, alice_project, 3)
    # a category's comments joined to the tree by node id (docs/bi.md): its themes' comments, merged ones too
    per_category = dict(admin.execute(
        "SELECT t.node_id, count(*) FROM reporting.document_nodes n JOIN reporting.theme_tree t "
        "ON t.project_id = n.project_id AND t.node_id = n.node_id WHERE n.project_id = %s AND n.level = 1 "
        "GROUP BY t.node_id", (alice_project,)).fetchall())  # fmt: skip
    assert per_category == {n: tree[n][3] for n in (1_000_001, 1_000_002)}
    assert count(admin, "SELECT count(*) FROM reporting.document_nodes WHERE node_id = 5 "
                        f"AND project_id = '{alice_project}'") == 0  # fmt: skip

    role, password = grant(postgres, "alice")
    dsn = f"postgresql://{role}:{password}@127.0.0.1:5432/{postgres['name']}"
    with psycopg.connect(dsn, autocommit=True) as reader:
        for name in ("projects", *REPORT_COLUMNS):
            tenants = {r[0] for r in reader.execute(f"SELECT DISTINCT project_id FROM reporting.{name}")}
            assert tenants == {alice_project}, (name, tenants)
        assert count(reader, "SELECT count(*) FROM reporting.documents") == 240
        assert count(reader, "SELECT count(*) FROM reporting.role_tenants") == 1
        for forbidden in ("SELECT * FROM public.documents", "SELECT * FROM public.api_keys",
                          "DELETE FROM reporting.themes", "INSERT INTO reporting.role_tenants VALUES ('x', 'y')",
                          "CREATE TABLE reporting.mine (x int)"):  # fmt: skip
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                reader.execute(forbidden)
    bob_role, bob_password = grant(postgres, "bob")
    with psycopg.connect(f"postgresql://{bob_role}:{bob_password}@127.0.0.1:5432/{postgres['name']}") as reader:
        assert {r[0] for r in reader.execute("SELECT DISTINCT project_id FROM reporting.themes")} == {bob_project}
    admin.close()


def test_grant_refuses_unknown_tenants_and_bad_names(postgres):
    env = {**__import__("os").environ, "FEEDBACK_THEMES_DATABASE_URL": postgres["url"]}
    for args, words in ((["--role", "bi_x", "--tenant", "nobody"], "no tenant"),
                        (["--role", 'x"; DROP', "--tenant", "nobody"], "lower-case")):  # fmt: skip
        out = subprocess.run([sys.executable, "-m", "service.cli", "reporting", "grant", *args], capture_output=True,
                             text=True, timeout=120, env=env)  # fmt: skip
        assert out.returncode == 2 and words in out.stderr, out.stderr


def test_upgrades_grant_roles_made_before_them():
    """A database at 0002 with a BI role already granted: migration 0003 adds ``reporting.theme_groups`` (row-level
    security on) readable by that role. The same database at 0006 with a finished job's rows: 0007 adds
    ``span_themes`` and ``reporting.span_themes`` (row-level security on, readable by the role) and ``span_count`` to
    ``reporting.themes`` and ``reporting.theme_groups``, keeping every row; 0008 (the theme tree, version 3: see
    tests/test_tree_storage.py) drops ``reporting.theme_groups``. All downgrade and upgrade again."""
    if not reachable(5432):
        pytest.skip("needs PostgreSQL on 127.0.0.1:5432 (not reachable)")
    from alembic import command
    from alembic.config import Config

    from service.storage.session import MIGRATIONS

    name, role = f"ft_{uuid.uuid4().hex[:12]}", f"bi_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
        conn.execute(f'CREATE ROLE "{role}" NOLOGIN')
    try:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.set_main_option("sqlalchemy.url", f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}")
        command.upgrade(config, "0002")
        dsn = POSTGRES_ADMIN.rsplit("/", 1)[0] + "/" + name
        with psycopg.connect(dsn, autocommit=True) as conn:  # as `reporting grant` leaves a role (its table grants)
            conn.execute("INSERT INTO reporting.role_tenants VALUES (%s, 'tenant-1')", (role,))
            conn.execute(f'GRANT USAGE ON SCHEMA reporting TO "{role}"')
            conn.execute(f'GRANT SELECT ON reporting.role_tenants TO "{role}"')
        command.upgrade(config, "0006")
        with psycopg.connect(dsn, autocommit=True) as conn:
            assert readable(conn, role, "reporting.theme_groups")
            old_rows(conn)
        command.upgrade(config, "0007")
        with psycopg.connect(dsn, autocommit=True) as conn:
            assert readable(conn, role, "reporting.span_themes")
            assert conn.execute("SELECT count(*) FROM span_themes").fetchone()[0] == 0  # jobs before it have none
            assert conn.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_span_themes_job_theme'"
                                ).fetchone()[0].endswith("(job_id, theme_id, activation)")  # fmt: skip
            columns = [r[0] for r in conn.execute("SELECT column_name FROM information_schema.columns WHERE "
                                                  "table_schema = 'reporting' AND table_name = 'span_themes' "
                                                  "ORDER BY ordinal_position")]  # fmt: skip
            assert columns == ["tenant_id", "project_id", *SPAN_THEMES_COLUMNS]
            for table in ("themes", "theme_groups"):
                assert last_column(conn, table) == "span_count"
            assert conn.execute("SELECT theme_id, span_count FROM reporting.themes").fetchall() == [(7, None)]
            assert conn.execute("SELECT count(*) FROM document_themes").fetchone()[0] == 1
            assert "version 2" in conn.execute("SELECT obj_description('reporting.themes'::regclass)").fetchone()[0]
            for tenant in ("tenant-1", "tenant-2"):
                conn.execute("INSERT INTO reporting.span_themes VALUES (%s, 'p', 'd', 0, 0, 5, 7, 0.5)", (tenant,))
            conn.execute(f'SET ROLE "{role}"')  # the policy: the role's tenant's rows only
            assert conn.execute("SELECT tenant_id FROM reporting.span_themes").fetchall() == [("tenant-1",)]
            conn.execute("RESET ROLE")
        command.upgrade(config, "0008")
        with psycopg.connect(dsn, autocommit=True) as conn:
            assert conn.execute("SELECT to_regclass('reporting.theme_groups')").fetchone()[0] is None
            assert last_column(conn, "themes") == "parent_id" and readable(conn, role, "reporting.theme_tree")
            assert conn.execute("SELECT theme_id, span_count FROM reporting.themes").fetchall() == [(7, None)]
            assert "version 3" in conn.execute("SELECT obj_description('reporting.themes'::regclass)").fetchone()[0]
        command.downgrade(config, "0006")
        with psycopg.connect(dsn, autocommit=True) as conn:
            assert conn.execute("SELECT to_regclass('reporting.span_themes'), to_regclass('span_themes')"
                                ).fetchone() == (None, None)  # fmt: skip
            assert last_column(conn, "themes") == "cohesion" and last_column(conn, "theme_groups") == "kind"
            assert conn.execute("SELECT theme_id FROM reporting.themes").fetchall() == [(7,)]
            assert "version 1" in conn.execute("SELECT obj_description('reporting.themes'::regclass)").fetchone()[0]
        command.downgrade(config, "0002")
        with psycopg.connect(dsn, autocommit=True) as conn:
            assert conn.execute("SELECT to_regclass('reporting.theme_groups')").fetchone()[0] is None
        command.upgrade(config, "head")
    finally:
        with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'DROP ROLE IF EXISTS "{role}"')


def themes_size(admin, project_id: str, theme_id: int) -> int:  # type: ignore[no-untyped-def]
    return admin.execute("SELECT size FROM reporting.themes WHERE project_id = %s AND theme_id = %s",
                         (project_id, theme_id)).fetchone()[0]  # fmt: skip


def readable(conn, role: str, table: str) -> bool:
    """``role`` may read ``table`` and the table has row-level security on."""
    granted = conn.execute(f"SELECT has_table_privilege('{role}', '{table}', 'SELECT')").fetchone()[0]
    secured = conn.execute(f"SELECT relrowsecurity FROM pg_class WHERE oid = '{table}'::regclass").fetchone()[0]
    return granted is True and secured is True


def last_column(conn, table: str) -> str:
    return conn.execute("SELECT column_name FROM information_schema.columns WHERE table_schema = 'reporting' AND "
                        "table_name = %s ORDER BY ordinal_position DESC LIMIT 1", (table,)).fetchone()[0]  # fmt: skip


def old_rows(conn) -> None:
    """A finished job's rows as revision 0006 stores them: a document, a membership, a published theme."""
    conn.execute("INSERT INTO tenants VALUES ('tenant-1', 'one', now())")
    conn.execute("INSERT INTO projects (id, tenant_id, created_at) VALUES ('p', 'tenant-1', now())")
    conn.execute("INSERT INTO jobs (id, tenant_id, project_id, status, progress, counts, source, source_kind, columns, "
                 "n_chunks, created_at) VALUES ('j', 'tenant-1', 'p', 'succeeded', 1, '{}', '-', 'json', '{}', 1, now())")
    document = conn.execute("INSERT INTO documents (project_id, job_id, doc_id, text) VALUES ('p', 'j', 'd', "
                            "'Late again. Never again.') RETURNING id").fetchone()[0]  # fmt: skip
    conn.execute("INSERT INTO document_themes VALUES ('j', 7, %s, 0.5)", (document,))
    conn.execute("INSERT INTO reporting.themes (tenant_id, project_id, theme_id, label) VALUES ('tenant-1', 'p', 7, "
                 "'late')")
