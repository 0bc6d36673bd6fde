"""Secrets in production: report tokens expire, are listed and revoked one by one, and die with the API key that made
them; failed authentications are limited per client address (429 before any lookup)."""

from __future__ import annotations

import secrets
import time
from datetime import datetime, timedelta, timezone

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from service.keys import revoke_key
from service.storage.models import ReportToken, utcnow
from service.storage.session import session_scope
from tests.api_helpers import assert_problem, make_client, new_key


def new_project(client: TestClient, headers: dict[str, str]) -> str:
    created = client.post("/v1/jobs", headers=headers, json={"items": [{"text": "late parcel"}, {"text": "soft"}]})
    assert created.status_code == 202, created.text
    return created.json()["project_id"]


def make_token(client: TestClient, headers: dict[str, str], project: str, **body: int) -> dict:
    created = client.post(f"/v1/projects/{project}/report-token", headers=headers, json=body or None)
    assert created.status_code == 201, created.text
    return created.json()


def read(client: TestClient, project: str, token: str):  # type: ignore[no-untyped-def]
    return client.get(f"/v1/projects/{project}/reports/documents.csv", params={"token": token})


def listed(client: TestClient, headers: dict[str, str], project: str) -> dict[str, dict]:
    answer = client.get(f"/v1/projects/{project}/report-tokens", headers=headers)
    assert answer.status_code == 200, answer.text
    return {t["prefix"]: t for t in answer.json()["report_tokens"]}


def when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def set_token(prefix: str, **values) -> None:  # type: ignore[no-untyped-def]
    with session_scope() as session:
        session.execute(update(ReportToken).where(ReportToken.prefix == prefix).values(**values))


# ---------------------------------------------------------------- report tokens


def test_report_token_expires(client, alice):
    project = new_project(client, alice)
    made = make_token(client, alice, project, expires_in_days=1)
    assert made["prefix"] == made["token"][:10] and made["project_id"] == project
    assert abs(when(made["expires_at"]) - (utcnow() + timedelta(days=1))) < timedelta(minutes=1)
    assert read(client, project, made["token"]).status_code == 200
    set_token(made["prefix"], expires_at=utcnow() - timedelta(seconds=1))
    body = assert_problem(read(client, project, made["token"]), 401, "expired")
    assert body["type"].endswith("invalid-report-token")
    assert listed(client, alice, project)[made["prefix"]]["active"] is False

    default = make_token(client, alice, project)  # no body: FEEDBACK_THEMES_REPORT_TOKEN_DAYS (90)
    assert abs(when(default["expires_at"]) - (utcnow() + timedelta(days=90))) < timedelta(minutes=1)
    longest = make_token(client, alice, project, expires_in_days=365)
    assert read(client, project, longest["token"]).status_code == 200


@pytest.mark.parametrize("days", [366, 0, -1, "soon"])
def test_report_token_lifetime_is_bounded(client, alice, days):
    project = new_project(client, alice)
    answer = client.post(f"/v1/projects/{project}/report-token", headers=alice, json={"expires_in_days": days})
    assert_problem(answer, 422, "expires_in_days")
    assert listed(client, alice, project) == {}


def test_report_tokens_are_listed_and_revoked_one_by_one(client, alice):
    project = new_project(client, alice)
    first, second = make_token(client, alice, project), make_token(client, alice, project)
    tokens = listed(client, alice, project)
    assert list(tokens) == [first["prefix"], second["prefix"]]  # oldest first
    assert set(tokens[first["prefix"]]) == {"prefix", "created_at", "expires_at", "revoked_at", "active"}
    assert all(t["active"] and t["revoked_at"] is None for t in tokens.values())
    assert first["token"] not in client.get(f"/v1/projects/{project}/report-tokens", headers=alice).text

    bob = new_key("bob")
    assert_problem(client.get(f"/v1/projects/{project}/report-tokens", headers=bob), 404)
    assert_problem(client.delete(f"/v1/projects/{project}/report-tokens/{first['prefix']}", headers=bob), 404)
    assert client.delete(f"/v1/projects/{project}/report-tokens/{first['prefix']}", headers=alice).status_code == 204
    assert_problem(read(client, project, first["token"]), 401)
    assert read(client, project, second["token"]).status_code == 200  # the other one still opens
    tokens = listed(client, alice, project)
    assert tokens[first["prefix"]]["active"] is False and tokens[first["prefix"]]["revoked_at"]
    assert tokens[second["prefix"]]["active"] is True
    assert client.delete(f"/v1/projects/{project}/report-tokens/{first['prefix']}", headers=alice).status_code == 204
    assert_problem(client.delete(f"/v1/projects/{project}/report-tokens/ftr_nope00", headers=alice), 404)

    assert client.delete(f"/v1/projects/{project}/report-token", headers=alice).status_code == 204  # revoke all
    assert not any(t["active"] for t in listed(client, alice, project).values())
    assert_problem(read(client, project, second["token"]), 401)


def test_report_tokens_die_with_their_api_key(client, alice):
    project = new_project(client, alice)
    other = new_key("alice")  # a second key of the same tenant
    doomed, kept = make_token(client, alice, project), make_token(client, other, project)
    with session_scope() as session:
        assert revoke_key(session, alice["X-API-Key"][:10]) == 1
    body = assert_problem(read(client, project, doomed["token"]), 401, "API key", "revoked")
    assert body["type"].endswith("invalid-report-token")
    assert read(client, project, kept["token"]).status_code == 200
    tokens = listed(client, other, project)
    assert tokens[doomed["prefix"]]["active"] is False and tokens[doomed["prefix"]]["revoked_at"] is None
    assert tokens[kept["prefix"]]["active"] is True


def test_report_tokens_without_expiry_or_key_last_the_longest_lifetime(client, alice):
    """Tokens made before tokens had an expiry (NULL ``expires_at`` and ``api_key_id``) expire
    ``report_token_max_days`` after they were made."""
    project = new_project(client, alice)
    made = make_token(client, alice, project)
    created = utcnow() - timedelta(days=364)
    set_token(made["prefix"], expires_at=None, api_key_id=None, created_at=created)
    assert read(client, project, made["token"]).status_code == 200
    assert abs(when(listed(client, alice, project)[made["prefix"]]["expires_at"]) - (created + timedelta(days=365))) < \
        timedelta(seconds=1)  # fmt: skip
    with session_scope() as session:
        assert revoke_key(session, alice["X-API-Key"][:10]) == 1  # no key recorded: revoking the key changes nothing
    assert read(client, project, made["token"]).status_code == 200
    set_token(made["prefix"], created_at=utcnow() - timedelta(days=366))
    assert_problem(read(client, project, made["token"]), 401, "expired")


def test_report_token_rows_record_key_and_expiry(client, alice):
    project = new_project(client, alice)
    made = make_token(client, alice, project, expires_in_days=7)
    with session_scope() as session:
        row = session.scalar(select(ReportToken).where(ReportToken.prefix == made["prefix"]))
        assert row.api_key_id is not None and row.expires_at is not None
        assert when(made["expires_at"]) == row.expires_at.replace(tzinfo=row.expires_at.tzinfo or timezone.utc)


# ---------------------------------------------------------------- failed authentications per client address


@pytest.fixture
def throttled(service_env, monkeypatch):
    """A client of an app that allows 5 failed authentications per address and minute."""
    from service.settings import get_settings

    monkeypatch.setenv("FEEDBACK_THEMES_AUTH_FAILURES_PER_MINUTE", "5")
    get_settings.cache_clear()
    return make_client()


def from_address(client: TestClient, host: str) -> TestClient:
    """Another client of the same app, from another address."""
    return TestClient(client.app, raise_server_exceptions=False, client=(host, 50000))


def random_key() -> dict[str, str]:
    return {"X-API-Key": "ft_" + secrets.token_urlsafe(32)}


def test_failed_authentications_get_429_before_any_lookup(throttled, monkeypatch):
    import service.api.deps

    good = new_key("alice")
    lookups: list[str] = []
    real = service.api.deps.lookup_tenant
    monkeypatch.setattr(service.api.deps, "lookup_tenant", lambda digest: lookups.append(digest) or real(digest))
    statuses = [throttled.get("/v1/projects", headers=random_key()).status_code for _ in range(8)]
    assert statuses == [401] * 5 + [429] * 3 and len(lookups) == 5
    refused = throttled.get("/v1/projects", headers=random_key())
    body = assert_problem(refused, 429, "failed authentications from this address", "retry in")
    assert body["type"] == "/problems/too-many-auth-failures"
    assert 1 <= int(refused.headers["Retry-After"]) <= 12  # a failure allowed again every 12 s
    assert throttled.get("/v1/projects", headers=good).status_code == 429  # this address: refused before the lookup
    assert throttled.get("/v1/projects").status_code == 429
    assert len(lookups) == 5
    assert from_address(throttled, "10.0.0.2").get("/v1/projects", headers=good).status_code == 200
    assert throttled.get("/healthz").status_code == 200  # no authentication, no limit


def test_missing_keys_and_bad_report_tokens_count_too(throttled):
    project = new_project(throttled, new_key("alice"))
    tokens = from_address(throttled, "10.0.0.3")
    statuses = [tokens.get(f"/v1/projects/{project}/reports/documents.csv", params={"token": f"ftr_{i}"}).status_code
                for i in range(6)]  # fmt: skip
    assert statuses == [401] * 5 + [429]
    missing = from_address(throttled, "10.0.0.4")
    assert [missing.get("/v1/projects").status_code for _ in range(6)] == [401] * 5 + [429]
    assert missing.get(f"/v1/projects/{project}/reports/documents.csv").status_code == 429
    reports = from_address(throttled, "10.0.0.5")
    assert [reports.get(f"/v1/projects/{project}/reports/documents.csv", headers=random_key()).status_code
            for _ in range(6)] == [401] * 5 + [429]  # fmt: skip


def test_valid_requests_are_never_counted(throttled):
    alice = new_key("alice")
    project = new_project(throttled, alice)
    token = make_token(throttled, alice, project)["token"]
    for _ in range(20):
        assert throttled.get("/v1/projects", headers=alice).status_code == 200
        assert read(throttled, project, token).status_code == 200
    statuses = [throttled.get("/v1/projects", headers=random_key()).status_code for _ in range(6)]
    assert statuses == [401] * 5 + [429]


def test_the_bucket_refills(throttled):
    from service.api.ratelimit import AuthFailures

    now = [1000.0]
    throttled.app.state.auth_failures = AuthFailures(5, clock=lambda: now[0])
    assert [throttled.get("/v1/projects", headers=random_key()).status_code for _ in range(6)] == [401] * 5 + [429]
    now[0] += 12  # one failure back
    assert [throttled.get("/v1/projects", headers=random_key()).status_code for _ in range(2)] == [401, 429]
    now[0] += 60  # full again
    assert [throttled.get("/v1/projects", headers=random_key()).status_code for _ in range(6)] == [401] * 5 + [429]


def test_zero_turns_the_failure_limit_off(service_env, monkeypatch):
    from service.settings import get_settings

    monkeypatch.setenv("FEEDBACK_THEMES_AUTH_FAILURES_PER_MINUTE", "0")
    get_settings.cache_clear()
    client = make_client()
    assert {client.get("/v1/projects", headers=random_key()).status_code for _ in range(40)} == {401}


def test_a_thousand_random_keys_from_one_address_mostly_get_429(client):
    """With the default (30 failures a minute): 30 answer 401 (plus one for every 2 s the run takes), the rest 429."""
    started = time.perf_counter()
    statuses = [client.get("/v1/projects", headers=random_key()).status_code for _ in range(1000)]
    elapsed = time.perf_counter() - started
    assert 30 <= statuses.count(401) <= 30 + elapsed / 2 + 1 and statuses.count(401) + statuses.count(429) == 1000
    print(f"1000 random keys from one address: 401 × {statuses.count(401)}, 429 × {statuses.count(429)} "
          f"in {elapsed:.2f} s")  # fmt: skip
