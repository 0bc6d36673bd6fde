"""ASGI middleware that times every API answer into ``service.metrics.REQUEST_DURATION``."""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.metrics import REQUEST_DURATION


class RequestMetrics:
    """ASGI middleware: observe each HTTP request's latency under its route template, method and status."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start, status = time.perf_counter(), 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = getattr(scope.get("route"), "path", None) or "<unmatched>"  # the router sets scope["route"]
            REQUEST_DURATION.labels(method=scope["method"], route=route, status=str(status)).observe(
                time.perf_counter() - start
            )
