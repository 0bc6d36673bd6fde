"""The per-key rate limit: a token bucket per API key and process; over it, 429 problem+json with Retry-After."""

from __future__ import annotations

import pytest

from service.api.ratelimit import TokenBuckets
from service.settings import Settings
from tests.api_helpers import assert_problem, make_client, new_key


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_bursts_then_refills():
    clock = Clock()
    buckets = TokenBuckets(60, clock)  # one a second after a burst of 60
    assert [buckets.take(b"k") for _ in range(60)] == [0.0] * 60
    assert buckets.take(b"k") == pytest.approx(1.0)
    assert buckets.take(b"other") == 0.0  # keys are independent
    clock.now += 0.5
    assert buckets.take(b"k") == pytest.approx(0.5)  # a refused request takes no token
    clock.now += 0.5
    assert buckets.take(b"k") == 0.0
    assert buckets.take(b"k") == pytest.approx(1.0)
    clock.now += 3600
    assert [buckets.take(b"k") for _ in range(60)] == [0.0] * 60  # full again, never above the burst
    assert buckets.take(b"k") > 0


def test_buckets_stay_bounded():
    clock = Clock()
    buckets = TokenBuckets(10, clock, max_keys=100)
    for i in range(1000):
        buckets.take(str(i).encode())
        clock.now += 0.001
    assert len(buckets.buckets) <= 100
    assert buckets.take(b"999") == 0.0 and buckets.take(b"999") == 0.0  # recent keys kept their (nearly full) bucket


def test_default_is_600_per_minute():
    assert Settings.model_fields["rate_limit_per_minute"].default == 600


@pytest.fixture
def limited(service_env, monkeypatch):
    from service.settings import get_settings

    monkeypatch.setenv("FEEDBACK_THEMES_RATE_LIMIT_PER_MINUTE", "5")
    get_settings.cache_clear()
    return make_client()


def test_429_with_retry_after_per_key(limited, alice):
    for _ in range(5):
        assert limited.get("/v1/projects", headers=alice).status_code == 200
    refused = limited.get("/v1/projects", headers=alice)
    body = assert_problem(refused, 429, "more than 5 requests in a minute", "retry in")
    assert body["type"] == "/problems/rate-limited"
    assert 1 <= int(refused.headers["Retry-After"]) <= 12  # one token every 12 s
    assert limited.post("/v1/jobs", headers=alice, json={"items": [{"text": "a"}, {"text": "b"}]}).status_code == 429
    bob = new_key("bob")
    assert limited.get("/v1/projects", headers=bob).status_code == 200  # another key has its own bucket
    assert limited.get("/v1/projects").status_code == 401  # no key: not counted, refused by authentication
    assert limited.get("/healthz").status_code == 200


def test_unknown_keys_are_limited_before_the_database(limited):
    statuses = [limited.get("/v1/projects", headers={"X-API-Key": "ft_guess"}).status_code for _ in range(7)]
    assert statuses == [401] * 5 + [429] * 2


def test_zero_turns_the_limit_off(service_env, monkeypatch, alice):
    from service.settings import get_settings

    monkeypatch.setenv("FEEDBACK_THEMES_RATE_LIMIT_PER_MINUTE", "0")
    get_settings.cache_clear()
    client = make_client()
    assert {client.get("/v1/projects", headers=alice).status_code for _ in range(50)} == {200}


def test_openapi_documents_429_and_problem_answers(limited):
    schema = limited.get("/openapi.json").json()
    assert "Problem" in schema["components"]["schemas"]
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            if not operation.get("security"):
                continue
            answer = operation["responses"]["429"]
            assert "Retry-After" in answer["headers"], (method, path)
            for status in ("401", "422"):
                assert set(operation["responses"][status]["content"]) == {"application/problem+json"}, (method, path)
    retry = schema["paths"]["/v1/jobs/{job_id}/retry"]["post"]["responses"]
    assert {"202", "404", "409", "429"} <= set(retry)
