"""Every error answer is ``application/problem+json`` (RFC 9457); no traceback ever reaches a user.

Storage's domain errors (``service.storage.errors``) and the pipeline's ``IngestError`` become problem answers here,
in one handler; the API's own refusals raise :class:`ProblemError`.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from service.problems import PROBLEM_MEDIA_TYPE, problem
from service.storage.errors import Conflict, InvalidCredentials, InvalidInput, NotFound, StorageError
from worker.pipeline.ingest import IngestError

log = logging.getLogger(__name__)
INGEST_STATUS = {"undecodable": 415}
STORAGE_STATUS: dict[type[StorageError], int] = {NotFound: 404, Conflict: 409, InvalidInput: 422,
                                                 InvalidCredentials: 401}  # fmt: skip
TITLES = {400: "Bad request", 401: "Unauthorized", 403: "Forbidden", 404: "Not found", 405: "Method not allowed",
          409: "Conflict", 410: "Gone", 413: "Upload too large", 415: "Unsupported media type",
          422: "Unprocessable content",
          429: "Too many requests", 500: "Internal server error", 503: "Service unavailable"}  # fmt: skip


class ProblemError(HTTPException):
    """An HTTP error with a problem ``code`` (the last part of its ``type``)."""

    def __init__(self, status: int, detail: str, code: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(status_code=status, detail=detail, headers=headers)
        self.code = code


def problem_response(status: int, detail: str | None, code: str | None, headers=None, **extra) -> JSONResponse:  # type: ignore[no-untyped-def]
    body = problem(status, TITLES.get(status, "Error"), detail, code, **extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


def domain_status(exc: StorageError | IngestError) -> int:
    """The HTTP status of a domain error: storage's by its kind, an ingest error's by its code (422 unless named)."""
    if isinstance(exc, IngestError):
        return INGEST_STATUS.get(exc.code, 422)
    return next((status for kind, status in STORAGE_STATUS.items() if isinstance(exc, kind)), 400)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = getattr(exc, "code", None) or TITLES.get(exc.status_code, "error").lower().replace(" ", "-")
        return problem_response(exc.status_code, str(exc.detail), code, headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"loc": list(e.get("loc", ())), "msg": str(e.get("msg", ""))} for e in exc.errors()]
        first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
        where = ".".join(str(p) for p in first["loc"])
        return problem_response(422, f"{where}: {first['msg']}", "validation-error", errors=errors)

    @app.exception_handler(StorageError)
    @app.exception_handler(IngestError)
    async def _domain(request: Request, exc: StorageError | IngestError) -> JSONResponse:
        return problem_response(domain_status(exc), str(exc), exc.code)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response(500, "an unexpected error occurred; it has been logged", "internal-error")
