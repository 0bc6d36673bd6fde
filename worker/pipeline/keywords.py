"""Class-based TF-IDF keywords and short labels for themes (used by the themes stage).

Each theme's member comments form one class; a term's weight is its frequency in the class times
``log(1 + A / f)``, where ``f`` is the term's frequency in the whole corpus and ``A`` the mean number of
words per class (BERTopic's c-TF-IDF). Frequencies count comments, not repetitions, so a word one
reviewer repeats five times does not outrank a word five reviewers use. Unigrams and bigrams, English
stop words removed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import CountVectorizer

SINGLE_COMMENT_PENALTY = 0.1
TOKEN_PATTERN = r"(?u)\b[^\W\d_][^\W\d_'’]+\b"


def term_counts(texts: Sequence[str]) -> tuple[sp.csr_matrix, np.ndarray]:
    """Document-term counts (unigrams + bigrams, stop words removed) and the vocabulary."""
    min_df = 2 if len(texts) >= 50 else 1
    vectorizer = CountVectorizer(
        ngram_range=(1, 2), stop_words="english", token_pattern=TOKEN_PATTERN, min_df=min_df, max_features=100_000
    )
    try:
        counts = vectorizer.fit_transform(texts)
    except ValueError:  # every text is stop words only
        return sp.csr_matrix((len(texts), 0), dtype=np.int64), np.array([], dtype=object)
    return counts.tocsr(), vectorizer.get_feature_names_out()


def class_tfidf(membership: sp.csr_matrix, counts: sp.csr_matrix) -> sp.csr_matrix:
    """c-TF-IDF weights (themes × terms, sparse: a term no member uses weighs 0) from a docs × themes membership
    matrix and docs × terms counts. Sparse because a thousand themes over a hundred thousand terms would be a
    gigabyte dense."""
    counts = (counts > 0).astype(np.float64)  # a term counts once per comment: coverage, not repetition
    class_counts = (membership.T.astype(np.float64) @ counts).tocsr()
    class_counts.sort_indices()
    if class_counts.nnz == 0:
        return class_counts
    words_per_class = np.asarray(class_counts.sum(axis=1)).ravel()
    class_sizes = np.asarray(membership.sum(axis=0)).ravel()
    rows = np.repeat(np.arange(class_counts.shape[0]), np.diff(class_counts.indptr))
    tf = class_counts.data / np.maximum(words_per_class[rows], 1.0)
    tf[(class_counts.data < 2) & (class_sizes[rows] >= 3)] *= SINGLE_COMMENT_PENALTY  # describe more than one comment
    corpus_freq = np.asarray(counts.sum(axis=0)).ravel().astype(np.float64)
    mean_words = float(words_per_class.mean()) or 1.0
    idf = np.log1p(mean_words / np.maximum(corpus_freq, 1.0))
    return sp.csr_matrix((tf * idf[class_counts.indices], class_counts.indices, class_counts.indptr),
                         shape=class_counts.shape)  # fmt: skip


def top_keywords(weights: np.ndarray | sp.spmatrix, vocabulary: np.ndarray, n: int = 8) -> list[str]:
    """The ``n`` best terms of one class (a dense row of weights, or a sparse 1 × terms row), skipping words already
    covered by a chosen phrase and vice versa."""
    if sp.issparse(weights):
        row = sp.csr_matrix(weights)
        row.sort_indices()
        terms, values = row.indices, row.data
    else:
        terms, values = np.arange(len(weights)), np.asarray(weights)
    chosen: list[str] = []
    covered: set[str] = set()
    for j, weight in zip(terms[np.argsort(-values, kind="stable")], -np.sort(-values, kind="stable")):
        if weight <= 0 or len(chosen) >= n:
            break
        term = str(vocabulary[j])
        words = set(term.split())
        if term in covered or words <= covered:
            continue
        if len(words) > 1:
            chosen = [c for c in chosen if c not in words]
        chosen.append(term)
        covered |= words | {term}
    return chosen[:n]


def make_label(keywords: Sequence[str], n_terms: int = 3) -> str:
    """A short readable label from the top keywords, e.g. ``runs small, petite, sizing``."""
    return ", ".join(keywords[:n_terms]) if keywords else "(no keywords)"
