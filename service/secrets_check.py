"""Known example passwords: a service URL still holding the one that ``deploy/.env.example`` once shipped is refused
at start (``feedback-themes api`` and ``worker``)."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

from service.settings import Settings

EXAMPLE_PASSWORDS = frozenset({"change-me"})
URL_SETTINGS = ("database_url", "broker_url", "result_backend")
ENV_PREFIX = "FEEDBACK_THEMES_"


def example_secrets(settings: Settings) -> list[str]:
    """The environment names of the URL settings whose password is a known example password (empty: none)."""
    found = [name for name in URL_SETTINGS if url_password(getattr(settings, name)) in EXAMPLE_PASSWORDS]
    return [ENV_PREFIX + name.upper() for name in found]


def url_password(url: str | None) -> str | None:
    """The (decoded) password of a URL such as ``redis://:secret@host:6379/0``; None without one."""
    if not url:
        return None
    try:
        password = urlsplit(url).password
    except ValueError:
        return None
    return None if password is None else unquote(password)
