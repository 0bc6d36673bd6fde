"""Helpers for API tests: an in-process client, keys, uploads, problem assertions, stored row counts."""

from __future__ import annotations

from fastapi.testclient import TestClient

from service.keys import create_key
from service.storage.models import Document, Job, Project
from service.storage.session import session_scope

PROBLEM = "application/problem+json"


def make_client() -> TestClient:
    """A client of a new app for the current settings; server errors come back as 500 answers."""
    from service.api.app import create_app

    return TestClient(create_app(), raise_server_exceptions=False)


def new_key(tenant: str) -> dict[str, str]:
    """Headers with a new API key of the tenant."""
    with session_scope() as session:
        key, _ = create_key(session, tenant)
    return {"X-API-Key": key}


def upload(client: TestClient, headers: dict, data: bytes, text_column: str = "text", **fields) -> object:
    form = {"text_column": text_column, **fields}
    return client.post("/v1/jobs", headers=headers, files={"file": ("reviews.csv", data, "text/csv")}, data=form)


def assert_problem(response, status: int, *words: str) -> dict:  # type: ignore[no-untyped-def]
    """The response is an RFC 9457 problem with this status whose detail contains every word."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["status"] == status and body["title"] and body["type"]
    for word in words:
        assert word in body.get("detail", ""), body
    return body


def stored_counts() -> tuple[int, int, int]:
    """Jobs, projects and documents stored."""
    with session_scope() as session:
        return (session.query(Job).count(), session.query(Project).count(), session.query(Document).count())
