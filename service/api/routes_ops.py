"""Operational endpoints: liveness (``/healthz``), readiness (``/readyz``) and Prometheus metrics (``/metrics``).

None needs an API key: expose them on the internal network only (the deployment docs say how).
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from service.api.errors import problem_response
from service.metrics import readiness, render_metrics

router = APIRouter(tags=["ops"])
NO_STORE = {"Cache-Control": "no-store"}


@router.get("/healthz", summary="The process is alive")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz", summary="The database and the broker are reachable",
    responses={503: {"description": "A dependency is unreachable (problem+json, with per-check detail)"}},
)  # fmt: skip
def readyz(request: Request) -> JSONResponse:
    """200 with each check's detail when the database and the broker answer within a short timeout, else 503."""
    checks = readiness(request.app.state.settings)
    failed = [name for name, check in checks.items() if check["status"] != "ok"]
    if failed:
        detail = "; ".join(f"{name} unreachable ({checks[name]['error']})" for name in failed)
        return problem_response(503, detail, "not-ready", headers=NO_STORE, checks=checks)
    return JSONResponse({"status": "ready", "checks": checks}, headers=NO_STORE)


@router.get("/metrics", summary="Prometheus metrics (text exposition format)", response_class=Response)
def metrics(request: Request) -> Response:
    body, content_type = render_metrics(request.app.state.settings, request.headers.get("accept"))
    return Response(content=body, media_type=content_type, headers=NO_STORE)
