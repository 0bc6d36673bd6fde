"""Themes stage: SAE feature activations → themes a person can read.

A theme is a live SAE feature (or several near-duplicate features shown as one, named by the lowest
feature index so ids stay stable). The SAE reads *units*: the spans (sentences) of the comments, or whole comments
(:mod:`worker.pipeline.spans`). A unit is a member of a feature when its activation exceeds a per-feature threshold
(a share of the feature's highest activation); a comment is a member when one of its units is, with the highest
activation of its units. A comment may belong to several themes. Sizes count comments.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp

from worker.pipeline.keywords import class_tfidf, make_label, term_counts, top_keywords
from worker.pipeline.sentiment import aggregate, label_scores


@dataclass(frozen=True)
class ThemeOptions:
    """How features become themes."""

    rel_threshold: float = 0.5  # member when activation > rel_threshold × the feature's max activation
    min_size: int | None = None  # default: max(3, 0.5% of documents)
    # A feature with more than this share of its comments in the newest upload (``recent`` rows) is kept at the size
    # floor of that upload alone: a subject new in an upload is a theme when it would be one of the upload by itself.
    recent_share: float = 0.5
    duplicate_cosine: float = 0.9  # one theme for features whose decoder directions are this similar …
    duplicate_jaccard: float = 0.5  # … or whose member sets overlap this much
    n_keywords: int = 8
    # A member comment's sentiment in a theme: this weight on the mean score of its spans that carry the theme, the
    # rest on the whole comment's score (the context: short sentences alone read neutral). 1: the spans alone.
    span_sentiment_weight: float = 0.5
    n_examples: int = 5
    example_similarity: float = 0.95  # skip an example this similar to one already chosen

    def resolved_min_size(self, n_docs: int) -> int:
        return self.min_size if self.min_size is not None else max(3, int(np.ceil(0.005 * n_docs)))


@dataclass
class Theme:
    """One theme with its members (document row positions) and their activations, and the units (span rows) that
    carry it with theirs (``None``: the units are the documents)."""

    id: int
    features: list[int]
    members: np.ndarray
    activations: np.ndarray
    spans: np.ndarray | None = None
    span_activations: np.ndarray | None = None
    label: str = ""
    keywords: list[str] = field(default_factory=list)
    sentiment: dict[str, float] = field(default_factory=dict)
    rating: dict[str, float] | None = None
    examples: list[int] = field(default_factory=list)  # unit rows
    member_sentiment: np.ndarray | None = None  # per member comment, its sentiment in this theme
    # Its place in the tree (worker/pipeline/tree.py): 1 category, 2 theme, 3 sub-theme; the parent's id and the
    # children's ids.
    level: int = 2
    parent: int | None = None
    children: list[int] = field(default_factory=list)
    name: str = ""  # a short phrase a person would write (worker/pipeline/names.py); ``label`` is kept equal to it
    cohesion: float | None = None  # see :func:`cohesion`

    @property
    def size(self) -> int:
        return int(len(self.members))

    @property
    def unit_rows(self) -> np.ndarray:
        """The unit rows carrying the theme."""
        return self.members if self.spans is None else self.spans

    @property
    def unit_activations(self) -> np.ndarray:
        return self.activations if self.span_activations is None else self.span_activations

    @property
    def span_count(self) -> int:
        return len(self.unit_rows)


class DocumentVectors:
    """Per-row (unit) embedding rows backed by the embeddings of distinct texts (no n_rows × d copy)."""

    def __init__(self, unique: np.ndarray, inverse: np.ndarray) -> None:
        self.unique, self.inverse = unique, inverse

    def __getitem__(self, rows: int | list[int] | np.ndarray) -> np.ndarray:
        return self.unique[self.inverse[rows]]


@dataclass
class Units:
    """The rows themes are found over (spans, or the comments themselves): per unit its comment's row (``doc``), its
    vector, the text its keywords are counted on, and its sentiment score (``None``: its comment's)."""

    doc: np.ndarray
    vectors: np.ndarray | DocumentVectors
    texts: list[str]
    scores: np.ndarray | None = None

    @classmethod
    def of_documents(cls, documents: pd.DataFrame, vectors: np.ndarray | DocumentVectors) -> Units:
        """One unit per comment: the whole-comment analysis."""
        return cls(np.arange(len(documents)), vectors, documents["text"].tolist())


def highest_per(keys: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct keys (sorted) and the highest value of each."""
    distinct, position = np.unique(np.asarray(keys, dtype=np.int64), return_inverse=True)
    best = np.zeros(len(distinct), dtype=np.float32)
    np.maximum.at(best, position, np.asarray(values, dtype=np.float32))
    return distinct, best


def lift(rows: np.ndarray, values: np.ndarray, owner: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Unit rows and values → the distinct owners (document rows, sorted) with the highest value of their units."""
    return (rows, values) if owner is None else highest_per(owner[rows], values)


def union(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Rows and values of several sets → their union (sorted), with the highest value of each row."""
    if not parts:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    return highest_per(np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))


def distinct_owners(members: sp.csc_matrix, owner: np.ndarray | None, among: np.ndarray | None = None) -> np.ndarray:
    """Per column of a units × features matrix, how many distinct owners (comments) its non-zero rows have (only
    those where the boolean ``among``, one per comment, is true, when given)."""
    if owner is None and among is None:
        return np.diff(members.indptr)
    counts = np.zeros(members.shape[1], dtype=np.int64)
    for column in np.flatnonzero(np.diff(members.indptr)):
        rows = members.indices[members.indptr[column] : members.indptr[column + 1]]
        owners = np.unique(owner[rows]) if owner is not None else rows
        counts[column] = int(among[owners].sum()) if among is not None else len(owners)
    return counts


def feature_memberships(acts: sp.csr_matrix, rel_threshold: float) -> sp.csc_matrix:
    """Docs × features matrix keeping only activations above each feature's threshold."""
    acts = acts.tocsc()
    col_max = acts.max(axis=0).toarray().ravel()
    thresholds = rel_threshold * col_max
    data = acts.data.copy()
    cols = np.repeat(np.arange(acts.shape[1]), np.diff(acts.indptr))
    data[data <= thresholds[cols]] = 0
    members = sp.csc_matrix((data, acts.indices.copy(), acts.indptr.copy()), shape=acts.shape)
    members.eliminate_zeros()
    return members


def duplicate_features(members: sp.csc_matrix, decoder: np.ndarray, live: np.ndarray,
                       options: ThemeOptions) -> list[list[int]]:  # fmt: skip
    """Sets of live features to show as one theme: near-parallel decoder columns or overlapping members."""
    parent = {int(f): int(f) for f in live}

    def find(f: int) -> int:
        while parent[f] != f:
            parent[f] = parent[parent[f]]
            f = parent[f]
        return f

    if len(live) > 1:
        directions = decoder[:, live]
        directions = directions / np.maximum(np.linalg.norm(directions, axis=0, keepdims=True), 1e-12)
        cosine = directions.T @ directions
        binary = (members[:, live] > 0).astype(np.float32)
        inter = np.asarray((binary.T @ binary).todense())
        sizes = np.diag(inter)
        jaccard = inter / np.maximum(sizes[:, None] + sizes[None, :] - inter, 1.0)
        close = (cosine >= options.duplicate_cosine) | (jaccard >= options.duplicate_jaccard)
        for a, b in zip(*np.nonzero(np.triu(close, k=1))):
            ra, rb = find(int(live[a])), find(int(live[b]))
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
    groups: dict[int, list[int]] = {}
    for f in sorted(parent):
        groups.setdefault(find(f), []).append(f)
    return [groups[root] for root in sorted(groups)]


def build_themes(
    acts: sp.csr_matrix,
    decoder: np.ndarray,
    options: ThemeOptions = ThemeOptions(),
    owner: np.ndarray | None = None,
    n_docs: int | None = None,
    recent: np.ndarray | None = None,
) -> list[Theme]:
    """Themes (members and activations only) from units × latents activations and the decoder (d × latents).

    ``owner``: per unit its document's row (``None``: the units are the documents); ``n_docs``: the number of
    documents (sizes and the smallest size count documents); ``recent``: per document, whether it is of the newest
    upload (a feature mostly of those needs only that upload's size floor: :attr:`ThemeOptions.recent_share`)."""
    n_docs = acts.shape[0] if n_docs is None else n_docs
    members = feature_memberships(acts, options.rel_threshold)
    sizes = distinct_owners(members, owner)
    keep = sizes >= options.resolved_min_size(n_docs)
    if recent is not None and recent.any():
        in_recent = distinct_owners(members, owner, np.asarray(recent, dtype=bool))
        keep |= (in_recent >= options.resolved_min_size(int(recent.sum()))) & (in_recent > options.recent_share * sizes)
    live = np.flatnonzero(keep)
    themes = []
    for group in duplicate_features(members, decoder, live, options):
        block = members[:, group]
        activation = np.asarray(block.max(axis=1).todense()).ravel()
        rows = np.flatnonzero(activation > 0)
        docs, best = lift(rows, activation[rows], owner)
        theme = Theme(id=min(group), features=group, members=docs, activations=best)
        if owner is not None:
            theme.spans, theme.span_activations = rows, activation[rows]
        themes.append(theme)
    return themes


def describe_levels(
    nodes: list[Theme],
    documents: pd.DataFrame,
    units: Units,
    options: ThemeOptions = ThemeOptions(),
    terms: tuple[sp.csr_matrix, np.ndarray] | None = None,
) -> list[Theme]:
    """Describe nodes of several tree levels (:func:`describe_themes`), level by level: keywords are c-TF-IDF among
    the nodes of one level, since a category and its own themes share every term."""
    terms = terms if terms is not None else term_counts(units.texts)
    described: list[Theme] = []
    for level in sorted({n.level for n in nodes}):
        described += describe_themes([n for n in nodes if n.level == level], documents, units, options, terms)
    return described


def cohesion(rows: np.ndarray, neighbours: np.ndarray) -> float:
    """Share of the members' nearest neighbours that are members too (``rows``: the members' rows in
    ``neighbours``, one row of neighbour indices per text; repeats count once).

    It says how real a theme is: on the labelled sets themes of low cohesion are found again by another seed far
    less often than themes of high cohesion (docs/benchmarks.md)."""
    rows = np.unique(np.asarray(rows, dtype=np.int64))
    if len(rows) == 0 or neighbours.shape[1] == 0:
        return 0.0
    inside = np.zeros(len(neighbours), dtype=bool)
    inside[rows] = True
    return float(inside[neighbours[rows]].mean())


def member_sentiment(theme: Theme, units: Units, comment_scores: np.ndarray, span_weight: float) -> np.ndarray:
    """Per member comment of ``theme``, its sentiment in the theme: ``span_weight`` × the mean score of its units
    that carry the theme + the rest × the comment's own score (units without scores of their own: the comment's)."""
    own = comment_scores[theme.members].astype(np.float64)
    if units.scores is None or theme.spans is None or span_weight == 0:
        return own
    rows = theme.unit_rows
    position = np.searchsorted(theme.members, units.doc[rows])
    sums = np.bincount(position, weights=units.scores[rows], minlength=len(theme.members))
    counts = np.bincount(position, minlength=len(theme.members))
    spans = sums / np.maximum(counts, 1)
    return span_weight * spans + (1 - span_weight) * own


def describe_themes(
    themes: list[Theme],
    documents: pd.DataFrame,
    units: Units,
    options: ThemeOptions = ThemeOptions(),
    terms: tuple[sp.csr_matrix, np.ndarray] | None = None,
) -> list[Theme]:
    """Fill label, keywords, sentiment, rating and examples; return themes sorted by size (then id).

    ``documents`` needs ``sentiment_score`` and ``rating`` columns, one row per document; ``units`` are the rows
    the activations were read on (:class:`Units`); ``terms``: :func:`~worker.pipeline.keywords.term_counts` of the
    units' texts, when already counted. Keywords are c-TF-IDF among ``themes``, counted on the units that carry them;
    sentiment is per member comment (:func:`member_sentiment`); rating per member comment; examples are units.
    """
    if not themes:
        return []
    counts, vocabulary = terms if terms is not None else term_counts(units.texts)
    rows = [t.unit_rows for t in themes]
    membership = sp.csr_matrix(
        (
            np.ones(sum(len(r) for r in rows), dtype=np.float32),
            (np.concatenate(rows), np.repeat(np.arange(len(themes)), [len(r) for r in rows])),
        ),
        shape=(len(units.texts), len(themes)),
    )
    weights = class_tfidf(membership, counts)
    scores = documents["sentiment_score"].to_numpy(dtype=float)
    ratings = documents["rating"].to_numpy(dtype=float)
    for i, theme in enumerate(themes):
        theme.keywords = top_keywords(weights[i], vocabulary, options.n_keywords) if weights.nnz else []
        theme.label = make_label(theme.keywords)
        theme.member_sentiment = member_sentiment(theme, units, scores, options.span_sentiment_weight)
        theme.sentiment = aggregate(theme.member_sentiment, label_scores(theme.member_sentiment))
        rated = ratings[theme.members]
        rated = rated[~np.isnan(rated)]
        theme.rating = {"mean": float(rated.mean()), "count": int(rated.size)} if rated.size else None
        theme.examples = pick_examples(theme, units, options)
    return sorted(themes, key=lambda t: (-t.size, t.id))


def pick_examples(theme: Theme, units: Units, options: ThemeOptions) -> list[int]:
    """Top-activating units, at most one per comment, skipping repeats and near-duplicates of those chosen."""
    order = theme.unit_rows[np.argsort(-theme.unit_activations, kind="stable")]
    chosen: list[int] = []
    seen: set[str] = set()
    docs: set[int] = set()
    for row in order:
        text = units.texts[row].casefold()
        doc = int(units.doc[row])
        if text in seen or doc in docs:
            continue
        if chosen and float(np.max(units.vectors[chosen] @ units.vectors[row])) > options.example_similarity:
            continue
        chosen.append(int(row))
        seen.add(text)
        docs.add(doc)
        if len(chosen) >= options.n_examples:
            break
    return chosen
