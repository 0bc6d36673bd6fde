"""Opaque cursors for paginated lists (an offset, base64-encoded so clients do not build them)."""

from __future__ import annotations

import base64
import binascii

from service.api.errors import ProblemError

MAX_OFFSET = 2**31 - 1  # no list is longer; a larger offset overflows a database's integer


def decode_cursor(cursor: str | None) -> int:
    """The offset a cursor stands for; 400 ``invalid-cursor`` for any cursor this API never gave out."""
    if not cursor:
        return 0
    try:
        offset = int(base64.urlsafe_b64decode(cursor.encode() + b"=" * (-len(cursor) % 4)).decode())
    except (binascii.Error, ValueError, UnicodeDecodeError):
        offset = -1
    if not 0 <= offset <= MAX_OFFSET:
        raise ProblemError(400, "the cursor is not one this API gave out", "invalid-cursor")
    return offset


def next_cursor(offset: int, limit: int, total: int) -> str | None:
    end = offset + limit
    return base64.urlsafe_b64encode(str(end).encode()).decode().rstrip("=") if end < total else None
