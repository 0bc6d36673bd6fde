"""RFC 9457 problem objects, shared by the API's error answers and failed jobs."""

from __future__ import annotations

from typing import Any

PROBLEM_MEDIA_TYPE = "application/problem+json"


def problem(status: int, title: str, detail: str | None = None, code: str | None = None, **extra: Any) -> dict[str, Any]:
    """A problem object: ``type`` names the kind of problem (``/problems/<code>``), ``detail`` this occurrence."""
    body: dict[str, Any] = {"type": f"/problems/{code}" if code else "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    body.update(extra)
    return body
