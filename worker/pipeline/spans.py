"""Spans stage: comments → the sentences (spans) the SAE sees, each with its character offsets in its comment.

A review about fit, fabric, price and delivery is four subjects; one embedding of the whole review blurs them. In a
corpus of reviews (its median comment longer than ``whole_words`` words), a comment of more than ``whole_words``
words is split into sentences by ``sentencex`` (a rule-based segmenter that knows abbreviations and decimals); a
sentence longer than ``max_words`` is split again at clause boundaries (``;`` and ``, but`` / ``, although`` …), and a
piece shorter than ``min_words`` joins its neighbour ("Love it!" stays with the sentence it comments on). A
one-sentence comment is one span, and so is a short one, and so is every comment of a corpus of short comments
(tweets, support queries: their sentences are parts of one request, and cutting them costs theme precision;
``python -m bench quality``, docs/benchmarks.md). With ``enabled=False`` every comment is one span: the whole-comment analysis.

Each span's ``text`` is the comment's characters ``start:end`` (what the page highlights); its ``model_text`` is that
text normalised (:func:`worker.pipeline.normalize.model_text`). A span whose model text is empty (a comment that
was only a handle or a link) is dropped; its comment keeps its row and is counted, in no theme.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from worker.pipeline.normalize import model_text

#: Clause boundaries a long sentence may be cut after: a semicolon, or a comma before a contrasting conjunction.
CLAUSE_BREAK = re.compile(r"(?<=;)\s+|(?<=,)\s+(?=(?:but|although|though|however|whereas|yet|except)\b)",
                          re.IGNORECASE)  # fmt: skip
WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class SpanOptions:
    """How comments are cut into spans; ``enabled=False``: one span per comment."""

    enabled: bool = True
    max_words: int = 40  # a longer sentence is cut at clause boundaries
    min_words: int = 3  # a shorter piece joins its neighbour
    whole_words: int = 30  # a comment of at most this many words stays one span; all do when the median one does
    language: str = "en"


@dataclass
class Spans:
    """The spans of a list of comments, in comment order: per span its comment's row (``doc``), its index within
    the comment, its character offsets, and its text as the model sees it."""

    doc: np.ndarray
    index: np.ndarray
    start: np.ndarray
    end: np.ndarray
    model_text: list[str]

    @classmethod
    def whole(cls, texts: Sequence[str]) -> Spans:
        """One span per comment, the whole comment."""
        n = len(texts)
        return cls(np.arange(n), np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64),
                   np.array([len(t) for t in texts], dtype=np.int64), list(texts))  # fmt: skip

    def __len__(self) -> int:
        return len(self.doc)

    def text(self, documents: Sequence[str], row: int) -> str:
        """Span ``row`` as it reads in its comment."""
        return documents[int(self.doc[row])][int(self.start[row]) : int(self.end[row])]

    def per_document(self, n_documents: int) -> np.ndarray:
        """How many spans each comment has."""
        return np.bincount(self.doc, minlength=n_documents)


def sentence_bounds(text: str, language: str = "en") -> list[tuple[int, int]]:
    """``(start, end)`` of each sentence of ``text`` (sentencex), surrounding whitespace excluded."""
    import sentencex  # worker-side only

    bounds = []
    for part in sentencex.get_sentence_boundaries(language, text):
        bounds += _trimmed(text, part["start_index"], part["end_index"])
    return bounds or _trimmed(text, 0, len(text))


def clause_bounds(text: str, start: int, end: int, max_words: int) -> list[tuple[int, int]]:
    """The sentence ``text[start:end]`` cut at clause boundaries when it has more than ``max_words`` words."""
    sentence = text[start:end]
    if len(WORD.findall(sentence)) <= max_words:
        return [(start, end)]
    cuts = [m.start() for m in CLAUSE_BREAK.finditer(sentence)]
    pieces, previous = [], 0
    for cut in [*cuts, len(sentence)]:
        pieces += _trimmed(text, start + previous, start + cut)
        previous = cut
    return pieces


def join_short(text: str, bounds: list[tuple[int, int]], min_words: int) -> list[tuple[int, int]]:
    """Bounds with each piece of fewer than ``min_words`` words joined to its neighbour (the previous one, or the
    next one for the first piece); a comment of one short piece stays one span."""
    out: list[tuple[int, int]] = []
    pending_start: int | None = None  # a short first piece waiting for the next one
    for start, end in bounds:
        if pending_start is not None:
            start, pending_start = pending_start, None
        if len(WORD.findall(text[start:end])) < min_words:
            if out:
                out[-1] = (out[-1][0], end)
                continue
            pending_start = start
            continue
        out.append((start, end))
    if pending_start is not None:  # every piece was short: one span
        out.append((pending_start, bounds[-1][1]))
    return out


def comment_spans(text: str, options: SpanOptions = SpanOptions()) -> list[tuple[int, int]]:
    """``(start, end)`` of each span of one comment (the whole trimmed comment when span mode is off)."""
    if not options.enabled or not text.strip() or len(WORD.findall(text)) <= options.whole_words:
        return _trimmed(text, 0, len(text)) or [(0, len(text))]
    pieces = [
        c for s, e in sentence_bounds(text, options.language) for c in clause_bounds(text, s, e, options.max_words)
    ]
    return join_short(text, pieces, options.min_words) if pieces else [(0, len(text))]


def cuts_comments(texts: Sequence[str], options: SpanOptions = SpanOptions()) -> bool:
    """Whether the comments of this corpus are cut into spans: span mode is on and the median comment has more than
    ``whole_words`` words (reviews, not tweets or queries)."""
    if not options.enabled or not len(texts):
        return False
    return float(np.median([len(WORD.findall(t)) for t in texts])) > options.whole_words


def split_spans(texts: Sequence[str], options: SpanOptions = SpanOptions(), cut: bool | None = None) -> Spans:
    """The spans of every comment (module docstring); spans whose model text is empty are left out. ``cut``: whether
    to cut the comments at all (default: :func:`cuts_comments` of ``texts``)."""
    cut = cuts_comments(texts, options) if cut is None else cut
    options = options if cut else replace(options, enabled=False)
    doc, index, start, end, model = [], [], [], [], []
    for row, text in enumerate(texts):
        number = 0
        for s, e in comment_spans(text, options):
            normalised = model_text(text[s:e])
            if not normalised:
                continue
            doc.append(row)
            index.append(number)
            start.append(s)
            end.append(e)
            model.append(normalised)
            number += 1
    return Spans(*(np.asarray(values, dtype=np.int64) for values in (doc, index, start, end)), model)


def _trimmed(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """``[(start, end)]`` without surrounding whitespace, or ``[]`` when only whitespace is left."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return [(start, end)] if end > start else []
