"""CSV cells for spreadsheets: the one rule every CSV the product writes follows (the API's reports and the CLI's
``write_output_files``). No imports beyond the standard library, so the worker and the API both use it.

A text cell gets a leading ``'`` (a spreadsheet then shows it as text) when, after any leading whitespace, it

- starts with ``=``, or
- starts with ``+``, ``-`` or ``@`` and contains ``(``, ``!``, ``|`` or ``=``: what a formula needs to call a
  function, reach another sheet or application, or compare (``+HYPERLINK("…")``, ``-2+3+cmd|' /C calc'!A0``,
  ``@SUM(1+1)``). A plain number never contains one, so ``-0.5`` stays a number.

Ordinary text that merely starts with one of those signs (``@jetblue thanks``, ``- fast delivery``, ``+1 for this``)
is written as it is.
"""

from __future__ import annotations

from typing import Any

LEADING_SPACE = " \t\r\n"
SIGNS = ("+", "-", "@")
FORMULA_CHARACTERS = frozenset("(!|=")


def is_formula(text: str) -> bool:
    """Whether a spreadsheet would evaluate this text as a formula that can call or reach something."""
    start = text.lstrip(LEADING_SPACE)
    if start.startswith("="):
        return True
    return start.startswith(SIGNS) and not FORMULA_CHARACTERS.isdisjoint(start)


def safe_cell(value: Any) -> Any:
    """The value to write into a CSV cell: text a spreadsheet would evaluate gets a leading ``'``; the rest as is."""
    if isinstance(value, str) and is_formula(value):
        return "'" + value
    return value
