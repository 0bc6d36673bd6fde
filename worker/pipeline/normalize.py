"""Normalise stage: a text as the model should see it, not as the person reads it.

Before embedding and keyword counting (never for display), names and masks that say nothing about the subject are
taken out, so that a brand, a link or a redaction never becomes, or splits, a theme:

- social-media handles (``@united``, ``@SouthwestAir``) and e-mail addresses are removed;
- links (``https://…``, ``www.…``) are removed;
- a hashtag keeps its word (``#fail`` → ``fail``);
- redaction masks are removed: runs of ``X`` (``XXXX``, ``xx``), masked dates (``XX/XX/2019``, ``XX/XX/XXXX``) and
  masked amounts in braces (``{$390.00}``).

Whitespace is collapsed. A text may become empty; it keeps its row (see :mod:`worker.pipeline.spans`).
"""

from __future__ import annotations

import re

EMAIL = r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"
HANDLE = r"(?<![\w@])@\w+"
LINK = r"https?://\S+|www\.\S+"
# masked dates (XX/XX/2019, XX/XX/XXXX, 01/XX/2020), amounts in braces ({$390.00}), runs of X's (XXXX, xx)
MASKED_DATE = r"\b(?:[0-9X]{1,2}[/-]){2}(?:[0-9X]{2}){1,2}\b"
MASKED_AMOUNT = r"\{\$?[\d,.]*\}"
MASK = r"\b[Xx]{2,}\b"
REMOVED = re.compile("|".join(f"(?:{p})" for p in (EMAIL, LINK, HANDLE, MASKED_AMOUNT, MASK)))
HASHTAG = re.compile(r"(?<![\w#])#(\w)")
SPACES = re.compile(r"\s+")


def model_text(text: str) -> str:
    """The text with handles, e-mail addresses, links, hashtag signs and redaction masks removed (module docstring)."""
    text = _MASKED_DATES.sub(_drop_masked_date, text)
    text = REMOVED.sub(" ", text)
    text = HASHTAG.sub(r"\1", text)
    return SPACES.sub(" ", text).strip(" ,;:")


_MASKED_DATES = re.compile(MASKED_DATE, re.IGNORECASE)


def _drop_masked_date(match: re.Match[str]) -> str:
    """A date with an ``X`` in it is a mask; a real date stays."""
    return " " if "X" in match.group(0).upper() else match.group(0)
