"""A rate limit per API key (429 with ``Retry-After``), and the error answers every operation documents.

The limit is a token bucket per key, held in each API process's memory: a key may send up to
``FEEDBACK_THEMES_RATE_LIMIT_PER_MINUTE`` requests at once, then one every ``60 / limit`` seconds (0 turns the limit
off). With several API processes (``feedback-themes api --workers N``, or several hosts) every process keeps its own
buckets, so a key may send up to N times the limit. It is checked before the key is looked up, so a flood of
requests never reaches the database; keys are held only as SHA-256 digests, never as sent.

Failed authentications are limited per client address (:class:`AuthFailures`, a bucket of
``FEEDBACK_THEMES_AUTH_FAILURES_PER_MINUTE`` per address): guessing keys or report tokens from one address soon gets
429 instead of 401, before any lookup.

:func:`install` also completes the OpenAPI document: every operation's error answers (401, 404, 422, 429, ...) are
documented as ``application/problem+json`` with the ``Problem`` schema, which is what the API sends.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

from service.api.errors import ProblemError, problem_response
from service.settings import Settings

MAX_BUCKETS = 100_000  # keys remembered per process; idle (full) buckets are forgotten first


def install(app: FastAPI, settings: Settings) -> None:
    """Add the rate limit (and the NUL guard) to the app and document the error answers in its OpenAPI schema."""
    app.add_middleware(RateLimit, per_minute=settings.rate_limit_per_minute)
    app.add_middleware(RejectNul)
    document_problems(app)


class RejectNul:
    """ASGI middleware: 400 for a NUL character in the path, query or a header (ids never hold one, and PostgreSQL
    refuses it in text, which would otherwise surface as a 500)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        if scope["type"] == "http":
            query = scope.get("query_string", b"").lower()
            if ("\x00" in scope.get("path", "") or b"%00" in query or b"\x00" in query
                    or any(b"\x00" in value for _, value in scope.get("headers") or ())):  # fmt: skip
                detail = "the request's path, query or headers contain a NUL character"
                await problem_response(400, detail, "nul-character")(scope, receive, send)
                return
        await self.app(scope, receive, send)


class TokenBuckets:
    """``per_minute`` tokens per key, refilled continuously; :meth:`take` answers how long to wait (0: go)."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic, max_keys: int = MAX_BUCKETS):
        self.capacity, self.rate = float(per_minute), per_minute / 60.0
        self.clock, self.max_keys = clock, max_keys
        self.buckets: dict[bytes, tuple[float, float]] = {}  # digest → (tokens, when)

    def take(self, key: bytes) -> float:
        now = self.clock()
        tokens = self._tokens(key, now)
        wait = 0.0 if tokens >= 1 else (1 - tokens) / self.rate
        self.buckets[key] = (tokens - 1 if wait == 0 else tokens, now)
        if len(self.buckets) > self.max_keys:
            self._forget(now)
        return wait

    def wait(self, key: bytes) -> float:
        """How long until ``key`` has a token (0: it has one now); takes none."""
        tokens = self._tokens(key, self.clock())
        return 0.0 if tokens >= 1 else (1 - tokens) / self.rate

    def _tokens(self, key: bytes, now: float) -> float:
        tokens, when = self.buckets.get(key, (self.capacity, now))
        return min(self.capacity, tokens + (now - when) * self.rate)

    def _forget(self, now: float) -> None:
        """Drop buckets that are full again; if every one is in use, the least recently used half."""
        refill = self.capacity / self.rate
        kept = {k: v for k, v in self.buckets.items() if now - v[1] < refill}
        if len(kept) > self.max_keys // 2:
            kept = dict(sorted(kept.items(), key=lambda kv: kv[1][1])[len(kept) // 2 :])
        self.buckets = kept


class RateLimit:
    """ASGI middleware: a request with an ``X-API-Key`` over its key's limit is answered 429, never run."""

    def __init__(self, app: Any, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.app, self.per_minute = app, per_minute
        self.buckets = TokenBuckets(per_minute, clock) if per_minute > 0 else None

    async def __call__(self, scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        if scope["type"] == "http" and self.buckets is not None:
            key = next((v for k, v in scope.get("headers") or () if k == b"x-api-key"), None)
            if key:
                wait = self.buckets.take(hashlib.sha256(key).digest())
                if wait > 0:
                    seconds = max(1, math.ceil(wait))
                    detail = (f"this API key sent more than {self.per_minute} requests in a minute; "
                              f"retry in {seconds} s")  # fmt: skip
                    answer = problem_response(429, detail, "rate-limited", headers={"Retry-After": str(seconds)})
                    await answer(scope, receive, send)
                    return
        await self.app(scope, receive, send)


class AuthFailures:
    """Failed authentications (a missing or invalid API key, an invalid report token) per client address: a token
    bucket of ``per_minute`` each, in this process's memory (0: no limit). :meth:`check` runs before any key or token
    lookup and answers 429 while the address has no failure left; only :meth:`failed` takes a token, so valid requests
    are never counted. Used from the API's event loop thread only."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self.buckets = TokenBuckets(per_minute, clock) if per_minute > 0 else None

    def check(self, address: str) -> None:
        """Raise 429 ``too-many-auth-failures`` (with ``Retry-After``) while ``address`` is over its limit."""
        wait = 0.0 if self.buckets is None else self.buckets.wait(address.encode())
        if wait > 0:
            seconds = max(1, math.ceil(wait))
            detail = (f"more than {self.per_minute} failed authentications from this address in a minute; "
                      f"retry in {seconds} s")  # fmt: skip
            raise ProblemError(429, detail, "too-many-auth-failures", headers={"Retry-After": str(seconds)})

    def failed(self, address: str) -> None:
        """Count one failed authentication of ``address``."""
        if self.buckets is not None:
            self.buckets.take(address.encode())


# ---------------------------------------------------------------- OpenAPI: the documented error answers

PROBLEM_SCHEMA = {
    "title": "Problem",
    "description": "An error (RFC 9457): `type` names the kind of problem, `detail` this occurrence.",
    "type": "object",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {"type": "array", "items": {"type": "object"}, "description": "Each invalid field (422)"},
    },
}
DESCRIPTIONS = {
    400: "Bad request (a malformed body or cursor, a NUL character)",
    401: "No valid API key in X-API-Key",
    404: "Not found (or another tenant's)",
    409: "Conflict with the resource's state",
    413: "The body is larger than the upload limit",
    415: "Unsupported media type",
    422: "Invalid input (the detail names the problem)",
    429: "Over this API key's rate limit, or too many failed authentications from this address; retry after "
         "Retry-After seconds",
}
RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}}


def document_problems(app: FastAPI) -> None:
    """Wrap ``app.openapi`` so that every operation documents its problem+json error answers."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        schema = build()
        add_problem_answers(schema)
        add_request_schemas(schema)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def add_request_schemas(schema: dict[str, Any]) -> None:
    """The request bodies described by hand (the upload's JSON form, ``FeedbackBatch``) are models no route takes as
    a parameter, so FastAPI leaves them out of ``components``: add them (idempotent)."""
    from service.api.schemas import FeedbackBatch

    found = schema.setdefault("components", {}).setdefault("schemas", {})
    model = FeedbackBatch.model_json_schema(ref_template="#/components/schemas/{model}")
    found.update(model.pop("$defs", {}))
    found["FeedbackBatch"] = model


def add_problem_answers(schema: dict[str, Any]) -> None:
    """Document the error answers of each operation (idempotent): the ones the API can give it, as problem+json."""
    schema.setdefault("components", {}).setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
    content = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            params = {p.get("in"): p for p in operation.get("parameters", [])}
            statuses: set[int] = set()
            if operation.get("security"):
                statuses |= {401, 429}
            if params or "requestBody" in operation:
                statuses |= {400, 422}
            if "path" in params:
                statuses |= {404, 409}
            if "requestBody" in operation:
                statuses |= {413, 415}
            statuses |= {int(s) for s in responses if s.isdigit() and int(s) >= 400}
            for status in sorted(statuses):
                answer = responses.setdefault(str(status), {"description": DESCRIPTIONS.get(status, "Error")})
                answer["content"] = content
                if status == 429:
                    answer["headers"] = RETRY_AFTER
