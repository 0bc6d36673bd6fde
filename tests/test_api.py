"""API behaviour without a worker: auth, uploads, validation, idempotency, tenants, limits, problem+json."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.api_helpers import (
    assert_problem,
    make_client,
    new_key,
    stored_counts,
    upload,
)


def test_keys_required(client):
    assert_problem(client.get("/v1/projects"), 401, "X-API-Key")
    assert_problem(client.get("/v1/projects", headers={"X-API-Key": "ft_nope"}), 401, "not valid")


def test_upload_queues_a_job(client, alice, sample_csv, service_env):
    response = upload(client, alice, sample_csv.read_bytes(), rating_column="rating", id_column="id")
    assert response.status_code == 202, response.text
    body = response.json()
    assert set(body) == {"id", "status", "project_id"} and body["status"] == "queued"
    assert response.headers["location"] == f"/v1/jobs/{body['id']}"
    job = client.get(response.headers["location"], headers=alice).json()
    assert job["status"] == "queued" and job["progress"] == 0 and job["error"] is None
    assert (service_env.uploads_dir / f"{body['id']}.csv").read_bytes() == sample_csv.read_bytes()
    queued = list((service_env.broker_folder / "queue").iterdir())
    assert len(queued) == 1 and "feedback_themes.run_job" in queued[0].read_text()
    project = client.get(f"/v1/projects/{body['project_id']}", headers=alice).json()
    assert project["jobs"] == 1 and project["current_job_id"] is None
    assert_problem(client.get(f"/v1/jobs/{body['id']}/themes", headers=alice), 409, "queued")
    assert_problem(client.get(f"/v1/projects/{body['project_id']}/themes", headers=alice), 409)


@pytest.mark.parametrize(
    ("data", "fields", "status", "words"),
    [
        (b"Review Text,Rating\nnice,5\n", {}, 422, ["'text' not found", "'Review Text', 'Rating'"]),
        (b"text,Rating\nnice,5\n", {"rating_column": "stars"}, 422, ["'stars' not found"]),
        (b"", {}, 422, ["empty"]),
        (b"text\n", {}, 422, ["no rows"]),
        (b"\x00\x01\x02\x03binary\x00", {}, 415, ["not text"]),
        (b"PK\x03\x04\x14\x00\x00\x00\x08\x00zipzip", {}, 415, ["not text"]),
        (b'text\n"unbalanced\n', {}, 422, ["cannot be parsed"]),
    ],
)
def test_bad_csv_is_a_problem_and_stores_nothing(client, alice, data, fields, status, words, service_env):
    before = stored_counts()
    assert_problem(upload(client, alice, data, **fields), status, *words)
    assert stored_counts() == before
    assert not list(service_env.uploads_dir.glob("*"))


def test_bad_form(client, alice):
    assert_problem(client.post("/v1/jobs", headers=alice, data={"text_column": "x"}, files={"other": ("a", b"b")}), 422,
                   "'file'")  # fmt: skip
    assert_problem(client.post("/v1/jobs", headers=alice, files={"file": ("a.csv", b"text\nx\n")}), 422, "text_column")
    assert_problem(client.post("/v1/jobs", headers={**alice, "content-type": "text/plain"}, content=b"hi"), 415)


def test_json_batch(client, alice):
    items = [{"text": "Late delivery", "rating": 2, "id": "a1"}, {"text": "Great fit", "date": "2026-01-02"}]
    response = client.post("/v1/jobs", headers=alice, json={"items": items})
    assert response.status_code == 202, response.text
    for body, words in (
        ({"items": []}, ["items"]),
        ({"items": [{"txt": "x"}]}, ["items.0"]),
        ({"rows": items}, []),
        ({"items": [{"text": "x", "rating": "five"}]}, ["rating"]),
    ):
        assert_problem(client.post("/v1/jobs", headers=alice, json=body), 422, *words)
    not_json = client.post("/v1/jobs", headers={**alice, "content-type": "application/json"}, content=b"{not json")
    assert_problem(not_json, 422)
    assert_problem(client.post("/v1/jobs", headers=alice, json={"items": [{"text": "   "}]}), 422, "no row has text")


def test_idempotency_key(client, alice, sample_csv):
    data = sample_csv.read_bytes()
    first = upload(client, {**alice, "Idempotency-Key": "k1"}, data)
    again = upload(client, {**alice, "Idempotency-Key": "k1"}, data)
    assert first.status_code == again.status_code == 202
    assert first.json() == again.json()
    assert stored_counts()[0] == 1
    assert_problem(upload(client, {**alice, "Idempotency-Key": "k1"}, data + b"R9999,2026-01-01,5,extra,x,y\n"), 422,
                   "different payload")  # fmt: skip


def test_tenants_are_isolated(client, alice, sample_csv):
    job = upload(client, alice, sample_csv.read_bytes()).json()
    bob = new_key("bob")
    assert_problem(client.get(f"/v1/jobs/{job['id']}", headers=bob), 404)
    assert_problem(client.get(f"/v1/jobs/{job['id']}/themes", headers=bob), 404)
    assert_problem(client.get(f"/v1/projects/{job['project_id']}", headers=bob), 404)
    assert_problem(client.get(f"/v1/projects/{job['project_id']}/reports/documents.csv", headers=bob), 404)
    assert_problem(upload(client, bob, sample_csv.read_bytes(), project=job["project_id"]), 404)
    assert client.get("/v1/projects", headers=bob).json()["projects"] == []
    assert len(client.get("/v1/projects", headers=alice).json()["projects"]) == 1


def test_upload_size_limit(service_env, monkeypatch, alice):
    from service.settings import get_settings

    monkeypatch.setenv("FEEDBACK_THEMES_MAX_UPLOAD_BYTES", "2000")
    get_settings.cache_clear()
    client = make_client()
    assert_problem(upload(client, alice, b"text\n" + b"a long comment\n" * 500), 413, "limit")
    assert stored_counts() == (0, 0, 0)


def test_pagination_and_validation(client, alice, sample_csv):
    for _ in range(3):
        upload(client, alice, sample_csv.read_bytes())
    page = client.get("/v1/projects?limit=2", headers=alice).json()
    assert len(page["projects"]) == 2 and page["next_cursor"]
    rest = client.get(f"/v1/projects?limit=2&cursor={page['next_cursor']}", headers=alice).json()
    assert len(rest["projects"]) == 1 and rest["next_cursor"] is None
    assert_problem(client.get("/v1/projects?cursor=!!", headers=alice), 400, "cursor")
    assert_problem(client.get("/v1/projects?limit=0", headers=alice), 422, "limit")
    assert_problem(client.get("/v1/nothing", headers=alice), 404)


def test_openapi_documents_the_api(client):
    schema = client.get("/openapi.json").json()
    assert "/v1/jobs" in schema["paths"] and "/v1/projects/{project_id}/themes/{theme_id}" in schema["paths"]
    body = schema["paths"]["/v1/jobs"]["post"]["requestBody"]["content"]
    assert {"multipart/form-data", "application/json"} <= set(body)
    components = schema["components"]["schemas"]  # spans: a theme's span count, its examples' and comments' spans
    assert "span_count" in components["ThemeRecord"]["properties"] and "span" in components["Example"]["properties"]
    assert set(components["MemberSpan"]["properties"]) == {"index", "start", "end", "activation"}
    assert "spans" in components["Member"]["properties"]
    reports = schema["paths"]["/v1/projects/{project_id}/reports/{name}.csv"]["get"]["parameters"]
    assert "span_themes" in next(p for p in reports if p["name"] == "name")["schema"]["enum"]
    assert client.get("/docs").status_code == 200


def test_api_process_never_imports_torch(service_env):
    code = (
        "import sys; from fastapi.testclient import TestClient; from service.api.app import create_app;"
        "c = TestClient(create_app()); c.get('/v1/projects'); c.get('/openapi.json');"
        "bad = [m for m in ('torch', 'sentence_transformers', 'transformers') if m in sys.modules];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_problem_shape_is_rfc9457(client):
    body = json.loads(client.get("/v1/jobs/x").text)
    assert set(body) >= {"type", "title", "status", "detail"}
