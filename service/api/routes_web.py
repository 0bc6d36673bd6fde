"""The web page: ``/`` and its static files (``service/web``), plus the report routes (``routes_reports``).

The page is plain HTML, CSS and JavaScript (``service/web/js``, no libraries: its charts are HTML and SVG) calling the
same ``/v1`` API with the key the user types. Served with a strict Content-Security-Policy: scripts,
styles and data only from this origin, no inline script.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from service.api import routes_reports
from service.api.errors import ProblemError

WEB = Path(__file__).resolve().parent.parent / "web"
TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
         ".svg": "image/svg+xml", ".md": "text/plain; charset=utf-8", ".txt": "text/plain; charset=utf-8"}  # fmt: skip
SECURITY = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
                               "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
                               "form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}  # fmt: skip

router = APIRouter(tags=["web"])
router.include_router(routes_reports.router)


@router.get("/", include_in_schema=False)
def index() -> FileResponse:
    return FileResponse(WEB / "index.html", media_type=TYPES[".html"], headers={**SECURITY, "Cache-Control": "no-cache"})


@router.get("/static/{path:path}", include_in_schema=False)
def static(path: str) -> FileResponse:
    """A file of the page (only files under service/web with a known type)."""
    file = (WEB / path).resolve()
    if WEB not in file.parents or not file.is_file() or file.suffix not in TYPES:
        raise ProblemError(404, f"no file {path!r}", "not-found")
    return FileResponse(file, media_type=TYPES[file.suffix], headers={**SECURITY, "Cache-Control": "no-cache"})
