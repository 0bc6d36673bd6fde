"""Opaque cursors for paginated lists (an offset, base64-encoded so clients do not build them)."""

from __future__ import annotations

import base64
import binascii

from service.api.errors import ProblemError


def decode_cursor(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        offset = int(base64.urlsafe_b64decode(cursor.encode() + b"=" * (-len(cursor) % 4)).decode())
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise ProblemError(400, "the cursor is not one this API gave out", "invalid-cursor") from None
    if offset < 0:
        raise ProblemError(400, "the cursor is not one this API gave out", "invalid-cursor")
    return offset


def next_cursor(offset: int, limit: int, total: int) -> str | None:
    end = offset + limit
    return base64.urlsafe_b64encode(str(end).encode()).decode().rstrip("=") if end < total else None
