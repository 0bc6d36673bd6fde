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
    DOCUMENT_THEMES_COLUMNS,
    DOCUMENTS_COLUMNS,
    REPORT_COLUMNS,
    THEMES_COLUMNS,
)

pytestmark = pytest.mark.services


def test_versioned_columns_extend_the_cli_files():
    # columns added after schema version 1's tables were made (cohesion, migration 0004) go last in the report tables;
    # theme_groups (migration 0003) gained kind (0005) after cohesion, as theme_groups.csv ends with it
    assert [c for c, _ in REPORT_COLUMNS["theme_groups"]][-2:] == ["cohesion", "kind"]
    later = ["cohesion"]
    first = [c for c in THEMES_COLUMNS if c not in later]
    assert [c for c, _ in REPORT_COLUMNS["themes"]][: len(first)] == first
    assert [c for c, _ in REPORT_COLUMNS["themes"]][-len(later):] == later and set(later) <= set(THEMES_COLUMNS)
    assert [c for c, _ in REPORT_COLUMNS["document_themes"]] == DOCUMENT_THEMES_COLUMNS
    assert [c for c, _ in REPORT_COLUMNS["documents"]] == DOCUMENTS_COLUMNS


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


def test_published_tables_and_a_tenant_role_sees_only_its_rows(postgres):
    from tests.api_helpers import make_client, new_key
    from tests.test_theme_edits import run_job

    alice_headers = new_key("alice")
    new_key("bob")
    _, alice_project = run_job(None, tenant="alice", seed=0)
    _, bob_project = run_job(None, tenant="bob", seed=1)
    admin = psycopg.connect(POSTGRES_ADMIN.rsplit("/", 1)[0] + "/" + postgres["name"], autocommit=True)
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
    assert count(admin, f"SELECT cohesion FROM reporting.theme_groups WHERE project_id = '{alice_project}'") == 0.4
    assert count(admin, f"SELECT kind FROM reporting.theme_groups WHERE project_id = '{alice_project}'") == "union"
    assert count(admin, "SELECT count(*) FROM reporting.document_themes WHERE theme_id = 5 "
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


def test_upgrade_to_theme_groups_grants_roles_made_before_it():
    """A database at 0002 with a BI role already granted: migration 0003 adds ``reporting.theme_groups`` (row-level
    security on) readable by that role; it downgrades and upgrades again."""
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
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("INSERT INTO reporting.role_tenants VALUES (%s, 'tenant-1')", (role,))
        command.upgrade(config, "head")
        with psycopg.connect(dsn, autocommit=True) as conn:
            granted = f"SELECT has_table_privilege('{role}', 'reporting.theme_groups', 'SELECT')"
            assert conn.execute(granted).fetchone()[0] is True
            assert conn.execute("SELECT relrowsecurity FROM pg_class WHERE oid = 'reporting.theme_groups'::regclass"
                                ).fetchone()[0] is True  # fmt: skip
        command.downgrade(config, "0002")
        with psycopg.connect(dsn, autocommit=True) as conn:
            assert conn.execute("SELECT to_regclass('reporting.theme_groups')").fetchone()[0] is None
        command.upgrade(config, "head")
    finally:
        with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'DROP ROLE IF EXISTS "{role}"')
