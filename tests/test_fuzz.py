"""Fuzzing with schemathesis against the API's own OpenAPI document (``create_app()``'s ``/openapi.json``).

Every operation gets generated requests, valid (positive) and invalid (negative), authenticated with a real key, on
random ids and on the ids of a real project and job. Over 1,000 cases in all, derandomized (the same cases on every
run); the checks: no 5xx, and every answer conforms to the documented status codes, content types, headers and
schemas (errors are documented as application/problem+json).
"""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

pytestmark = pytest.mark.slow
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance]  # fmt: skip
EXAMPLES = {"sqlite": 20, "postgresql": 10}  # per operation, mode and id set
MIN_CASES = {"sqlite": 1000, "postgresql": 400}
POSTGRES_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request):
    """SQLite, and PostgreSQL when it is reachable (it refuses some text SQLite takes, e.g. NUL characters)."""
    if request.param == "sqlite":
        yield "sqlite", None
        return
    import uuid

    from tests.service_harness import reachable

    if not reachable(5432):
        pytest.skip("needs PostgreSQL on 127.0.0.1:5432 (not reachable)")
    import psycopg

    name = f"ft_fuzz_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield "postgresql", f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    from service.storage.session import engine_for

    engine_for(f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}").dispose()
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def fuzzed_app(tmp_path, monkeypatch, database):
    from service.keys import create_key
    from service.settings import get_settings
    from service.storage.session import session_scope, upgrade_database

    kind, url = database
    monkeypatch.setenv("FEEDBACK_THEMES_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("FEEDBACK_THEMES_RATE_LIMIT_PER_MINUTE", "1000000")  # the limiter runs, never refuses
    monkeypatch.setenv("FEEDBACK_THEMES_MAX_UPLOAD_BYTES", str(1024 * 1024))
    for name in ("DATABASE_URL", "BROKER_URL", "RESULT_BACKEND"):
        monkeypatch.delenv(f"FEEDBACK_THEMES_{name}", raising=False)
    if url:
        monkeypatch.setenv("FEEDBACK_THEMES_DATABASE_URL", url)
    get_settings.cache_clear()
    upgrade_database()
    with session_scope() as session:
        key, _ = create_key(session, "fuzz")
    from service.api.app import create_app

    yield create_app(), {"X-API-Key": key}, kind
    get_settings.cache_clear()


def real_ids(app, headers) -> dict[str, str]:
    """A project and a job of the fuzzing tenant, so that generated requests also reach past the 404s."""
    from starlette.testclient import TestClient

    client = TestClient(app)
    job = client.post("/v1/jobs", headers=headers, json={"items": [{"text": "late parcel"}, {"text": "soft wool"}]})
    assert job.status_code == 202, job.text
    return {"job_id": job.json()["id"], "project_id": job.json()["project_id"]}


def test_fuzz_the_openapi_schema(fuzzed_app):
    app, headers, kind = fuzzed_app
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    ids = real_ids(app, headers)
    cases = 0
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10
    for operation in operations:
        path_names = {p.name for p in operation.path_parameters}
        id_sets = [{}]
        if path_names & set(ids):
            id_sets.append({k: v for k, v in ids.items() if k in path_names})
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            for fixed in id_sets:
                strategy = operation.as_strategy(generation_mode=mode, path_parameters=fixed or None)

                @given(case=strategy)
                @settings(max_examples=EXAMPLES[kind], deadline=None, database=None, derandomize=True,
                          phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))  # fmt: skip
                def run(case):
                    nonlocal cases
                    cases += 1
                    case.call_and_validate(headers=headers, checks=CHECKS)

                try:
                    run()
                except Unsatisfiable:
                    assert mode == GenerationMode.NEGATIVE, operation.label  # nothing to make invalid (no input)
                except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - collect every failure, report all
                    failures.append(f"{operation.label} [{mode.value}{' real ids' if fixed else ''}]: {exc}"[:3000])
    print(f"{kind}: {cases} generated cases over {len(operations)} operations")
    assert not failures, "\n\n".join(failures)
    assert cases >= MIN_CASES[kind], cases
