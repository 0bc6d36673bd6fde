"""Spans stage: comments cut into sentences with offsets, long sentences at clauses, short pieces joined."""

from __future__ import annotations

import numpy as np

from worker.pipeline.spans import SpanOptions, Spans, comment_spans, cuts_comments, join_short, split_spans

SPLIT = SpanOptions(whole_words=0)  # every comment cut, however short


def pieces(text: str, options: SpanOptions = SPLIT) -> list[str]:
    return [text[s:e] for s, e in comment_spans(text, options)]


def test_sentences_with_abbreviations_decimals_and_quotes():
    text = 'Dr. Smith said the fit is true to size. It cost $39.99, e.g. cheaper than before! "Runs small," she said.'
    assert pieces(text) == ["Dr. Smith said the fit is true to size.", "It cost $39.99, e.g. cheaper than before!",
                            '"Runs small," she said.']  # fmt: skip


def test_no_punctuation_and_one_word_comments_are_one_span():
    assert pieces("no punctuation at all just words about delays and lost bags") == [
        "no punctuation at all just words about delays and lost bags"
    ]
    assert pieces("Great") == ["Great"]
    assert pieces("  Great!  ") == ["Great!"]


def test_emoji_stay_in_their_sentence():
    assert pieces("Love the colour 😍😍 Fits well too. Delivery was slow 😡") == [
        "Love the colour 😍😍 Fits well too.",
        "Delivery was slow 😡",
    ]


def test_short_pieces_join_their_neighbour():
    assert pieces("Wow. The dress runs small in the waist. Love it!") == [
        "Wow. The dress runs small in the waist. Love it!"
    ]
    text = "Great. Awful. Fine."  # every piece short: one span
    assert pieces(text) == [text]
    assert join_short("ab cd ef. gh", [(0, 9), (10, 12)], 3) == [(0, 12)]


def test_long_sentences_are_cut_at_clause_boundaries():
    long = (
        "The fabric is soft and the colour is exactly as in the pictures and I wore it to a wedding last weekend, "
        "but the zip broke after one wear and the seams started to come apart at the shoulders within a week"
    )
    assert pieces(long) == [long[: long.index(" but")], long[long.index("but") :]]
    assert pieces(long, SpanOptions(max_words=100, whole_words=0)) == [long]  # not long enough to cut


def test_short_comments_stay_whole():
    tweet = "@united Flight delayed again. Bag lost too. Thanks for nothing!"
    assert pieces(tweet, SpanOptions()) == [tweet]  # 11 words: one span under the default
    assert len(pieces(tweet)) == 3
    review = " ".join(["The fabric is soft and the colour is lovely."] * 2 + ["Sadly it runs small, so size up."] * 2)
    assert len(pieces(review, SpanOptions())) == 4  # 32 words: cut


def test_a_corpus_of_short_comments_is_not_cut():
    reviews = ["The fabric is soft and the colour is lovely, I wore it all summer long. " * 3] * 3
    tweets = ["@united Flight delayed again. Bag lost too.", "Thanks for the upgrade! Great crew."] * 3
    assert cuts_comments(reviews) and not cuts_comments(tweets) and not cuts_comments(reviews, SpanOptions(enabled=False))
    assert not cuts_comments(reviews + tweets * 2)  # the median comment decides
    assert split_spans(tweets, SPLIT).doc.tolist() != list(range(len(tweets)))
    assert split_spans(tweets).doc.tolist() == list(range(len(tweets)))
    assert split_spans(tweets, SPLIT, cut=False).doc.tolist() == list(range(len(tweets)))


def test_span_mode_off_gives_one_span_per_comment():
    texts = ["First sentence here. Second sentence here.", "  padded  "]
    spans = split_spans(texts, SpanOptions(enabled=False))
    assert spans.doc.tolist() == [0, 1] and [spans.text(texts, i) for i in range(2)] == [texts[0], "padded"]


def test_split_spans_offsets_indices_and_model_text():
    texts = ["@united The flight was delayed three hours. My bag is lost too!", "@delta", "", "Quick refund, thanks."]
    spans = split_spans(texts, SPLIT)
    assert spans.doc.tolist() == [0, 0, 3]  # the handle-only and the empty comment keep their rows but have no span
    assert spans.index.tolist() == [0, 1, 0]
    assert [spans.text(texts, i) for i in range(len(spans))] == [
        "@united The flight was delayed three hours.",
        "My bag is lost too!",
        "Quick refund, thanks.",
    ]
    assert spans.model_text[0] == "The flight was delayed three hours."  # the handle never reaches the model
    assert spans.per_document(4).tolist() == [2, 0, 0, 1]


def test_whole_comment_spans():
    spans = Spans.whole(["ab", "cde"])
    assert spans.end.tolist() == [2, 3] and np.array_equal(spans.doc, [0, 1])
