"""Tenants and secrets: keys hashed at rest and compared in constant time; no cross-tenant read or write on any
endpoint of the OpenAPI document; keys, tokens and comment text never in the logs."""

from __future__ import annotations

import hashlib
import logging
import re
import uuid
from typing import Any

import pytest
from sqlalchemy import func, inspect, select

from service.keys import hash_key, tenant_for_key
from service.storage.models import ApiKey, Document, DocumentTheme, Job, Project, SpanTheme, ThemeRow
from service.storage.session import session_scope
from tests.api_helpers import assert_problem, make_client, new_key

UNIQUE = f"zebra-{uuid.uuid4().hex[:12]} marmalade"  # a comment text that appears nowhere else


def test_keys_are_stored_hashed(service_env):
    from service.keys import create_key

    with session_scope() as session:
        key, tenant = create_key(session, "acme")
    with session_scope() as session:
        rows = session.scalars(select(ApiKey)).all()
        values = [str(getattr(row, c.key)) for row in rows for c in inspect(ApiKey).columns]
    assert len(rows) == 1 and rows[0].key_hash == hashlib.sha256(key.encode()).hexdigest()
    assert not [v for v in values if key in v or key[10:] in v]  # at most the 10-character prefix is kept
    assert rows[0].prefix == key[:10] and len(key) >= 40


def test_keys_are_compared_in_constant_time(service_env, monkeypatch):
    import service.keys

    calls: list[tuple[str, str]] = []
    real = service.keys.hmac.compare_digest
    monkeypatch.setattr(service.keys.hmac, "compare_digest", lambda a, b: calls.append((a, b)) or real(a, b))
    headers = new_key("acme")
    with session_scope() as session:
        assert tenant_for_key(session, headers["X-API-Key"]) is not None
        assert tenant_for_key(session, headers["X-API-Key"] + "x") is None
        assert tenant_for_key(session, "") is None
    assert calls == [(hash_key(headers["X-API-Key"]),) * 2]  # the stored digest against the sent key's digest
    assert_problem(make_client().get("/v1/projects", headers={"X-API-Key": headers["X-API-Key"][:-1]}), 401)


def test_key_cache_forgets_after_its_time():
    from service.keys import KeyCache

    now = [0.0]
    cache = KeyCache(30, timer=lambda: now[0])
    cache.put("d1", "tenant-a")
    now[0] = 29.0
    assert cache.get("d1") == "tenant-a"
    now[0] = 30.5
    assert cache.get("d1") is None
    off = KeyCache(0)
    off.put("d1", "tenant-a")
    assert off.get("d1") is None


@pytest.mark.parametrize("cache_seconds", ["0", "30"])
def test_revoked_key_is_refused(service_env, monkeypatch, cache_seconds):
    """``keys revoke``: refused at once without the key cache; with it, once the cached entry expires."""
    from typer.testing import CliRunner

    from service.cli import app
    from service.settings import get_settings

    monkeypatch.setenv("FEEDBACK_THEMES_API_KEY_CACHE_SECONDS", cache_seconds)
    get_settings.cache_clear()
    headers, other = new_key("acme"), new_key("bob")
    client = make_client()
    assert client.get("/v1/projects", headers=headers).status_code == 200
    runner = CliRunner()
    listed = runner.invoke(app, ["keys", "list"])
    assert listed.exit_code == 0 and headers["X-API-Key"][:10] in listed.output and "acme" in listed.output
    assert headers["X-API-Key"] not in listed.output  # only the prefix is known
    assert runner.invoke(app, ["keys", "revoke", "ft_"]).exit_code == 2  # too short to name one key
    assert runner.invoke(app, ["keys", "revoke", "nope-key"]).exit_code == 2
    result = runner.invoke(app, ["keys", "revoke", headers["X-API-Key"]])
    assert result.exit_code == 0, result.output
    assert runner.invoke(app, ["keys", "revoke", headers["X-API-Key"]]).exit_code == 2  # already revoked
    assert "revoked" in runner.invoke(app, ["keys", "list"]).output
    still = client.get("/v1/projects", headers=headers).status_code
    if cache_seconds == "0":
        assert still == 401
    else:
        assert still == 200  # this process remembers the key for up to 30 s
        client.app.state.key_cache.cache.clear()  # as if that time had passed
    assert_problem(client.get("/v1/projects", headers=headers), 401, "not valid")
    assert client.get("/v1/projects", headers=other).status_code == 200  # the other key is untouched


# ---------------------------------------------------------------- every endpoint, with another tenant's key


def alice_project(client, headers) -> dict[str, Any]:
    """A project of alice's with a finished job: documents, two themes with members, a theme edit, a report token."""
    from worker.runner import ingest

    data = f"id,text,rating\nd1,{UNIQUE},5\nd2,the parcel was late,1\nd3,soft warm fabric,4\n".encode()
    created = client.post("/v1/jobs", headers=headers, files={"file": ("f.csv", data, "text/csv")},
                          data={"text_column": "text", "id_column": "id", "rating_column": "rating"})  # fmt: skip
    assert created.status_code == 202, created.text
    job = created.json()
    ingest(job["id"])
    with session_scope() as session:
        docs = session.scalars(select(Document).where(Document.job_id == job["id"]).order_by(Document.id)).all()
        for theme_id, label in ((1, "late parcel"), (2, "soft fabric")):
            record = {"id": theme_id, "label": label, "keywords": [label], "size": 2, "share": 0.66,
                      "sentiment": {"mean": 0.0, "negative": 0.0, "neutral": 1.0, "positive": 0.0},
                      "rating": {"mean": 3.0, "count": 2}, "examples": [], "features": [theme_id],
                      "first_seen_job": job["id"], "is_new": True}  # fmt: skip
            session.add(ThemeRow(job_id=job["id"], theme_id=theme_id, project_id=job["project_id"], label=label,
                                 size=2, sentiment_mean=0.0, first_seen_job=job["id"], record=record))  # fmt: skip
            session.flush()
            for doc in docs[theme_id - 1 : theme_id + 1]:
                session.add(DocumentTheme(job_id=job["id"], theme_id=theme_id, document_id=doc.id, activation=0.5))
        session.get(Job, job["id"]).status = "succeeded"
        session.get(Project, job["project_id"]).current_job_id = job["id"]
    project = job["project_id"]
    renamed = client.patch(f"/v1/projects/{project}/themes/1", headers=headers, json={"label": "Late parcels"})
    assert renamed.status_code == 200, renamed.text
    token = client.post(f"/v1/projects/{project}/report-token", headers=headers)
    assert token.status_code == 201, token.text
    return {"job_id": job["id"], "project_id": project, "theme_id": 1, "token": token.json()["token"]}


def example(schema: dict[str, Any], components: dict[str, Any], depth: int = 0) -> Any:
    """A small valid value for a JSON schema (what a well-behaved client would send)."""
    if "$ref" in schema:
        return example(components[schema["$ref"].rsplit("/", 1)[-1]], components, depth + 1)
    for key in ("anyOf", "oneOf"):
        if key in schema:
            options = [s for s in schema[key] if s.get("type") != "null"] or schema[key]
            return example(options[0], components, depth + 1)
    if "allOf" in schema:
        return example(schema["allOf"][0], components, depth + 1)
    if "default" in schema and schema["default"] is not None:
        return schema["default"]
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        required = schema.get("required", [])
        props = schema.get("properties", {})
        return {name: example(props[name], components, depth + 1) for name in props if name in required or depth == 0}
    if kind == "array":
        items = [example(schema.get("items", {}), components, depth + 1)]
        return items * max(1, schema.get("minItems", 1))
    if kind == "integer":
        return max(schema.get("minimum", 1), 1)
    if kind == "number":
        return 1.0
    if kind == "boolean":
        return True
    if kind == "string":
        return "x" * max(1, schema.get("minLength", 1))
    return "x"


def operations(schema: dict[str, Any]):
    for path, ops in schema["paths"].items():
        for method, op in ops.items():
            if isinstance(op, dict) and "responses" in op:
                yield path, method, op


def state_of_alice(headers, client, ids) -> dict[str, Any]:
    with session_scope() as session:
        counts = {t.__tablename__: session.scalar(select(func.count()).select_from(t))
                  for t in (Job, Project, Document, ThemeRow, DocumentTheme, SpanTheme)}  # fmt: skip
        job = session.get(Job, ids["job_id"])
        counts["job"] = (job.status, job.error, job.progress)
    for path in (f"/v1/projects/{ids['project_id']}", f"/v1/jobs/{ids['job_id']}", f"/v1/projects/{ids['project_id']}/edits",
                 f"/v1/projects/{ids['project_id']}/themes?include_hidden=true"):  # fmt: skip
        response = client.get(path, headers=headers)
        assert response.status_code == 200, (path, response.text)
        counts[path] = response.json()
    return counts


def test_no_cross_tenant_read_or_write_on_any_endpoint(client, alice):
    ids = alice_project(client, alice)
    bob = new_key("bob")
    bob_job = client.post("/v1/jobs", headers=bob, json={"items": [{"text": "mine"}, {"text": "also mine"}]}).json()
    schema = client.get("/openapi.json").json()
    components = schema.get("components", {}).get("schemas", {})
    before = state_of_alice(alice, client, ids)
    values = {"job_id": ids["job_id"], "project_id": ids["project_id"], "theme_id": ids["theme_id"]}
    tried, leaks = [], []
    for path, method, op in operations(schema):
        params = op.get("parameters", [])
        path_params = [p for p in params if p["in"] == "path"]
        if not op.get("security") and not path_params:
            continue  # /healthz, /readyz, /metrics: no tenant data (checked below)
        if not path_params:
            continue  # collection endpoints: checked below
        url = path
        for p in path_params:
            value = values.get(p["name"], example(p.get("schema", {}), components))
            url = url.replace("{" + p["name"] + "}", str(value))
        body = None
        content = op.get("requestBody", {}).get("content", {})
        if "application/json" in content:
            body = example(content["application/json"]["schema"], components)
            if isinstance(body, dict) and "into" in body:  # merge: name alice's other theme
                body["into"] = 2
            for key in ("themes", "theme_ids", "merge"):
                if isinstance(body, dict) and isinstance(body.get(key), list):
                    body[key] = [2]
        response = client.request(method.upper(), url, headers=bob, json=body)
        tried.append(f"{method.upper()} {url}")
        if response.status_code not in (401, 404):
            leaks.append((method.upper(), url, response.status_code, response.text[:200]))
            continue
        assert_problem(response, response.status_code)
        assert ids["project_id"] not in response.text or response.status_code == 404, response.text
        # with alice's report token as well: bob's key decides, the token opens nothing more
        with_token = client.request(method.upper(), url, headers=bob, json=body, params={"token": ids["token"]})
        if with_token.status_code not in (401, 404, 422):
            leaks.append((method.upper(), url + "?token", with_token.status_code, with_token.text[:200]))
    assert not leaks, leaks
    print("\n".join(tried))
    assert len(tried) >= 10, tried  # every operation with an id was tried
    assert any("/retry" in t for t in tried) and any(t.startswith("PATCH") for t in tried)

    # collections and uploads: bob sees only his own, cannot write into alice's project
    listed = client.get("/v1/projects", headers=bob).json()
    assert [p["id"] for p in listed["projects"]] == [bob_job["project_id"]]
    assert_problem(client.post("/v1/jobs", headers=bob, json={"project": ids["project_id"], "items": [{"text": "x"}]}),
                   404)  # fmt: skip
    upload = client.post("/v1/jobs", headers=bob, files={"file": ("f.csv", b"text\na\nb\n")},
                         data={"text_column": "text", "project": ids["project_id"]})  # fmt: skip
    assert_problem(upload, 404)
    # a report token of bob's project opens nothing of alice's
    bob_token = client.post(f"/v1/projects/{bob_job['project_id']}/report-token", headers=bob).json()["token"]
    for name in ("documents", "themes"):
        stolen = client.get(f"/v1/projects/{ids['project_id']}/reports/{name}.csv", params={"token": bob_token})
        assert stolen.status_code in (401, 404) and UNIQUE not in stolen.text
    # alice's token still opens her documents (the test above is not vacuous)
    own = client.get(f"/v1/projects/{ids['project_id']}/reports/documents.csv", params={"token": ids["token"]})
    assert own.status_code == 200 and UNIQUE in own.text
    for path in ("/healthz", "/metrics"):
        assert ids["project_id"] not in client.get(path).text
    assert state_of_alice(alice, client, ids) == before


# ---------------------------------------------------------------- logs


def test_keys_tokens_and_comment_text_never_logged(client, alice, caplog):
    """Every log record of the API (and the worker's ingest stage) during a job's life, errors included."""
    caplog.set_level(logging.DEBUG)
    ids = alice_project(client, alice)
    key = alice["X-API-Key"]
    client.get(f"/v1/jobs/{ids['job_id']}", headers=alice)
    client.get(f"/v1/projects/{ids['project_id']}/themes/1", headers=alice)
    client.get(f"/v1/projects/{ids['project_id']}/reports/documents.csv", params={"token": ids["token"]})
    client.get("/v1/projects", headers={"X-API-Key": key + "-wrong"})
    client.post("/v1/jobs", headers=alice, files={"file": ("f.csv", f"txt\n{UNIQUE}\n".encode())},
                data={"text_column": "text"})  # fmt: skip
    client.post("/v1/jobs", headers=alice, json={"items": [{"text": UNIQUE, "rating": "bad"}]})
    client.post("/v1/jobs", headers=alice, json={"items": [{"text": UNIQUE, "id": "a"}, {"text": "b", "id": "a"}]})
    server = [r for r in caplog.records if not r.name.startswith("httpx")]  # not the test's own HTTP client
    text = "\n".join(f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in server)
    assert server  # something was logged (the test can see logs)
    for secret in (key, key[10:], ids["token"], UNIQUE, UNIQUE.split()[0]):
        assert secret not in text, (secret, [r.getMessage() for r in server if secret in r.getMessage()])


SECRET_LIKE = re.compile(r"ft_[A-Za-z0-9_-]{20,}")


def assert_clean_logs(text: str, *secrets: str) -> None:
    """For the real-process tests: no secret and nothing that looks like a whole API key in a process log."""
    for secret in secrets:
        assert secret not in text, secret
    assert not SECRET_LIKE.search(text), SECRET_LIKE.search(text).group(0)


@pytest.mark.parametrize("path", ["/v1/projects/{p}/reports/documents.csv?token={t}", "/x?a=1&token={t}&bom=1"])
def test_access_log_hides_report_tokens(service_env, path):
    """uvicorn's access log line for a URL with ?token= does not carry the token (see ratelimit.install)."""
    from service.api.logs import RedactTokens

    make_client()
    assert any(isinstance(f, RedactTokens) for f in logging.getLogger("uvicorn.access").filters)
    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
                               ("127.0.0.1:1", "GET", path.format(p="abc", t="ftr_secretvalue123"), "1.1", 200), None)  # fmt: skip
    assert RedactTokens().filter(record)
    assert "ftr_secretvalue123" not in record.getMessage() and "token=" in record.getMessage()
