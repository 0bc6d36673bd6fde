"""The one rule for CSV cells: text a spreadsheet would evaluate as a formula gets a leading ``'``, ordinary text and
numbers stay as written."""

from __future__ import annotations

import pytest

from worker.pipeline.csv_cells import is_formula, safe_cell

PAYLOADS = [
    "=cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    '+HYPERLINK("http://x")',
    '=HYPERLINK("http://evil.example","click")',
    "=1+1",
    "\t=1",
    "\r=cmd|' /C calc'!A0",
    "\n@SUM(A1:A9)",
    "  +IMPORTXML(A1, B1)",
    "-1+A1!B2",
    "@x=1",
]
ORDINARY = [
    "@jetblue thanks for the upgrade",
    "- fast delivery",
    "-0.5",
    "+1",
    "+1+1",
    "-2+3",
    "@risk",
    "the parcel was late (again)!",
    "a = b",
    "\tindented text",
    "",
    " ",
]


@pytest.mark.parametrize("text", PAYLOADS)
def test_formulas_are_neutralised(text):
    assert is_formula(text)
    assert safe_cell(text) == "'" + text


@pytest.mark.parametrize("text", ORDINARY)
def test_ordinary_text_and_numbers_stay(text):
    assert not is_formula(text)
    assert safe_cell(text) == text


@pytest.mark.parametrize("value", [None, -0.5, 3, True, float("nan")])
def test_values_that_are_not_text_stay(value):
    assert safe_cell(value) is value
