"""Receiving an upload: stream it to the uploads folder (never whole in memory), hash it, validate it cheaply."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from service.api.errors import ProblemError
from service.api.schemas import FeedbackBatch
from service.settings import Settings
from service.storage.models import new_id
from worker.pipeline.ingest import (
    ColumnMap,
    IngestError,
    IngestResult,
    check_upload,
    count_distinct_texts,
    from_records,
)

COPY_CHUNK = 1024 * 1024
FORM_FIELDS = ("text_column", "rating_column", "date_column", "id_column", "keep_columns", "project")
LONG_FIELDS = {"keep_columns": 4000}  # characters a field may have (others: 200)
MIN_TEXTS = 2  # a new project's SAE needs at least two different comments to train on
NAME_CHARS = 200  # projects.name
_UNPRINTABLE = dict.fromkeys([*range(32), 127], " ")


@dataclass
class Upload:
    job_id: str
    path: Path
    kind: str  # csv | json
    columns: dict[str, Any]
    payload_hash: str
    project: str | None
    name: str | None


class BodySizeLimit:
    """ASGI middleware: 413 as soon as a request body passes the limit, checked while it streams in."""

    def __init__(self, app, max_bytes: int) -> None:  # type: ignore[no-untyped-def]
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            from service.api.errors import problem_response

            await problem_response(413, self._detail(), "upload-too-large")(scope, receive, send)
            return
        received = 0

        async def limited() -> dict:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise ProblemError(413, self._detail(), "upload-too-large")
            return message

        await self.app(scope, limited, send)

    def _detail(self) -> str:
        return f"the upload is larger than the limit of {self.max_bytes / 1e6:g} MB"


async def receive(request: Request, settings: Settings) -> Upload:
    """Store the request's CSV (multipart) or JSON items under a new job id, validated; raises a 4xx on bad input."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    settings.uploads_dir.mkdir(parents=True, exist_ok=True)
    job_id = new_id()
    if content_type == "multipart/form-data":
        return await _receive_csv(request, settings, job_id)
    if content_type in ("application/json", ""):
        return await _receive_json(request, settings, job_id)
    raise ProblemError(415, f"send multipart/form-data with a CSV file, or application/json; got {content_type!r}",
                       "unsupported-media-type")  # fmt: skip


async def _receive_csv(request: Request, settings: Settings, job_id: str) -> Upload:
    try:
        form = await request.form(max_files=1, max_fields=len(FORM_FIELDS) + 2)
    except ProblemError:
        raise
    except Exception:  # noqa: BLE001 - malformed multipart bodies
        raise ProblemError(400, "the multipart body could not be parsed", "malformed-multipart") from None
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise ProblemError(422, "the form has no file field 'file' with the CSV", "missing-file")
    fields = {name: _field(form, name) for name in FORM_FIELDS}
    if not fields["text_column"]:
        raise ProblemError(422, "the form field 'text_column' is required (the column that holds the comments)",
                           "missing-text-column")  # fmt: skip
    columns = ColumnMap(text=fields["text_column"], id=fields["id_column"], rating=fields["rating_column"],
                        date=fields["date_column"], keep=keep_columns(fields["keep_columns"]))  # fmt: skip
    path = settings.uploads_dir / f"{job_id}.csv"
    digest = hashlib.sha256(json.dumps(fields, sort_keys=True).encode())
    await run_in_threadpool(_copy, upload, path, digest)
    await upload.close()
    try:
        enough_texts(await run_in_threadpool(check_upload, path, columns, minimum=MIN_TEXTS), fields["project"])
    except (IngestError, ProblemError):
        path.unlink(missing_ok=True)
        raise
    return Upload(job_id, path, "csv", column_fields(columns), digest.hexdigest(), fields["project"],
                  project_name(upload.filename))  # fmt: skip


def keep_columns(value: str | None) -> list[str] | None:
    """The ``keep_columns`` field: comma-separated column names to keep as metadata; absent: every column; ``none``:
    no column."""
    if value is None:
        return None
    if value.strip().lower() == "none":
        return []
    return [name.strip() for name in value.split(",") if name.strip()]


def column_fields(columns: ColumnMap) -> dict[str, Any]:
    """The column mapping as the job row stores it (``keep`` only when given)."""
    fields = dict(columns.__dict__)
    if fields["keep"] is None:
        fields.pop("keep")
    return fields


def project_name(filename: str | None) -> str | None:
    """A new project's name from the upload's file name: printable, at most NAME_CHARS characters (a long name keeps
    its start and its extension, with "…" between)."""
    if filename is None:
        return None
    name = filename.translate(_UNPRINTABLE).strip()
    if len(name) <= NAME_CHARS:
        return name
    stem, dot, ext = name.rpartition(".")
    ext = f".{ext}" if dot and stem and len(ext) <= 10 else ""
    return name[: NAME_CHARS - 1 - len(ext)].rstrip() + "…" + ext


def enough_texts(result: IngestResult | None, project: str | None) -> None:
    """422 when a new project would get fewer than two different comments (nothing to find themes in)."""
    if result is None or project:
        return
    distinct = count_distinct_texts(result)
    if distinct < MIN_TEXTS:
        raise ProblemError(422, f"a new project needs at least {MIN_TEXTS} different comments to find themes in; "
                                f"this upload has {distinct}", "too-few-comments")  # fmt: skip


def _field(form: Any, name: str) -> str | None:
    value = form.get(name)
    if value is None or isinstance(value, UploadFile):
        return None
    value = str(value).strip()
    if len(value) > LONG_FIELDS.get(name, 200):
        raise ProblemError(422, f"the form field {name!r} is too long", "validation-error")
    if "\x00" in value:
        raise ProblemError(422, f"the form field {name!r} contains a NUL character", "validation-error")
    return value or None


def _copy(upload: UploadFile, path: Path, digest: Any) -> None:
    upload.file.seek(0)
    with path.open("wb") as out:
        while chunk := upload.file.read(COPY_CHUNK):
            digest.update(chunk)
            out.write(chunk)


async def _receive_json(request: Request, settings: Settings, job_id: str) -> Upload:
    body = await request.body()
    try:
        batch = FeedbackBatch.model_validate_json(body)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_context=False)
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in errors]) from None
    if batch.project and "\x00" in batch.project:
        raise ProblemError(422, "body.project: contains a NUL character", "validation-error")
    items = [item.model_dump() for item in batch.items]
    enough_texts(await run_in_threadpool(from_records, items), batch.project)  # IngestError when no item has text
    path = settings.uploads_dir / f"{job_id}.json"
    await run_in_threadpool(path.write_text, json.dumps(items, ensure_ascii=False), "utf-8")
    digest = hashlib.sha256(body).hexdigest()
    return Upload(job_id, path, "json", {"text": "text", "id": "id", "rating": "rating", "date": "date"}, digest,
                  batch.project, None)  # fmt: skip
