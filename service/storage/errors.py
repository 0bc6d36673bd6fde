"""What storage refuses, as domain errors: each carries a ``detail`` for people and a stable ``code``.

The API turns them into problem answers (``service.api.errors``); storage never speaks HTTP.
"""

from __future__ import annotations


class StorageError(Exception):
    """A request storage cannot carry out; ``code`` names the kind of problem, ``detail`` this occurrence."""

    def __init__(self, detail: str, code: str) -> None:
        super().__init__(detail)
        self.detail, self.code = detail, code


class NotFound(StorageError):
    """No such row for this caller (another tenant's rows are not found either)."""


class Conflict(StorageError):
    """The row exists but is not in a state that allows the request."""


class InvalidInput(StorageError):
    """The request's values cannot be used."""


class InvalidCredentials(StorageError):
    """A secret (a report token) that opens nothing."""
