"""Normalise stage: handles, links, e-mail addresses, hashtags and redaction masks never reach the model."""

from __future__ import annotations

import pytest

from worker.pipeline.normalize import model_text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("@united thanks for nothing", "thanks for nothing"),
        ("@SouthwestAir @JetBlue my bag is lost", "my bag is lost"),
        ("flight delayed again @AmericanAir", "flight delayed again"),
        ("see http://t.co/AbC123 and www.example.com/x?y=1 now", "see and now"),
        ("write to help.desk+1@shop.example.co.uk please", "write to please"),
        ("#fail #lost bag", "fail lost bag"),
        ("On XX/XX/2019 I paid {$390.00} to XXXX bank", "On I paid to bank"),
        ("xxxx called me on xx/xx/xxxx about XX", "called me on about"),
        ("the 12/05/2019 statement was wrong", "the 12/05/2019 statement was wrong"),  # a real date stays
        ("Xbox and XL sizes, extra large", "Xbox and XL sizes, extra large"),  # words with X stay
        ("email@ is not an address, @ alone neither", "email@ is not an address, @ alone neither"),
        ("@united", ""),
        ("  spaces   collapse\n\there ", "spaces collapse here"),
    ],
)
def test_model_text(text, expected):
    assert model_text(text) == expected


def test_comments_that_are_only_handles_or_links_are_too_few_to_analyse():
    from worker.pipeline.ingest import ColumnMap, IngestError, read_csv, require_distinct_texts

    only_names = read_csv(b"text\n@united\n@delta\nhttp://t.co/x\n", ColumnMap())
    with pytest.raises(IngestError, match="once handles, links and masks are taken out") as error:
        require_distinct_texts(only_names)
    assert error.value.code == "too-few-comments"
    require_distinct_texts(read_csv(b"text\n@united lost my bag\n@delta great crew\n", ColumnMap()))
