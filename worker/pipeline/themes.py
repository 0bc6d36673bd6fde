"""Themes stage: SAE feature activations → themes a person can read.

A theme is a live SAE feature (or several near-duplicate features shown as one, named by the lowest
feature index so ids stay stable). A comment is a member of a feature when its activation exceeds a per-feature
threshold (a share of the feature's highest activation); a comment may belong to several themes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp

from worker.pipeline.keywords import class_tfidf, make_label, term_counts, top_keywords
from worker.pipeline.sentiment import aggregate


@dataclass(frozen=True)
class ThemeOptions:
    """How features become themes."""

    rel_threshold: float = 0.5  # member when activation > rel_threshold × the feature's max activation
    min_size: int | None = None  # default: max(3, 0.5% of documents)
    duplicate_cosine: float = 0.9  # one theme for features whose decoder directions are this similar …
    duplicate_jaccard: float = 0.5  # … or whose member sets overlap this much
    n_keywords: int = 8
    n_examples: int = 5
    example_similarity: float = 0.95  # skip an example this similar to one already chosen
    # Parent themes / theme groups (see :func:`parent_themes`): cut at n_themes // level groups for each level; the
    # level 32 gives a handful of very broad groups, which coarse gold categories match.
    parent_levels: tuple[int, ...] = (2, 4, 8, 16, 32)
    parent_dedupe_jaccard: float = 0.9  # drop a parent whose members are this close to a theme or parent shown

    def resolved_min_size(self, n_docs: int) -> int:
        return self.min_size if self.min_size is not None else max(3, int(np.ceil(0.005 * n_docs)))


@dataclass
class Theme:
    """One theme with its members (document row positions) and their activations."""

    id: int
    features: list[int]
    members: np.ndarray
    activations: np.ndarray
    label: str = ""
    keywords: list[str] = field(default_factory=list)
    sentiment: dict[str, float] = field(default_factory=dict)
    rating: dict[str, float] | None = None
    examples: list[int] = field(default_factory=list)
    # A theme group (see :func:`group_themes`): the ids of its themes, and about how many themes it spans (2, 4, ...).
    themes: list[int] = field(default_factory=list)
    level: int = 0
    # What a group is: "union" (themes whose features point the same way, :func:`parent_themes`), "broader" (a
    # theme of a half-size SAE) or "sub_theme" (a theme of a double-size SAE), see worker/pipeline/levels.py.
    kind: str = "theme"
    cohesion: float | None = None  # see :func:`cohesion`

    @property
    def size(self) -> int:
        return int(len(self.members))


class DocumentVectors:
    """Per-document embedding rows backed by the embeddings of distinct texts (no n_docs × d copy)."""

    def __init__(self, unique: np.ndarray, inverse: np.ndarray) -> None:
        self.unique, self.inverse = unique, inverse

    def __getitem__(self, rows: int | list[int] | np.ndarray) -> np.ndarray:
        return self.unique[self.inverse[rows]]


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
) -> list[Theme]:
    """Themes (members and activations only) from docs × latents activations and the decoder (d × latents)."""
    n_docs = acts.shape[0]
    members = feature_memberships(acts, options.rel_threshold)
    sizes = np.diff(members.indptr)
    live = np.flatnonzero(sizes >= options.resolved_min_size(n_docs))
    themes = []
    for group in duplicate_features(members, decoder, live, options):
        block = members[:, group]
        activation = np.asarray(block.max(axis=1).todense()).ravel()
        rows = np.flatnonzero(activation > 0)
        themes.append(Theme(id=min(group), features=group, members=rows, activations=activation[rows]))
    return themes


def parent_themes(themes: list[Theme], decoder: np.ndarray, options: ThemeOptions = ThemeOptions()) -> list[Theme]:
    """Broader themes over the flat ones: groups of themes whose decoder directions are close.

    The themes' mean decoder directions are clustered (agglomerative, average linkage, cosine) into
    ``len(themes) // level`` groups for each of ``options.parent_levels``; every group of two or more themes becomes
    a parent whose members are the union of its children's (activation: the highest). Parents nearly equal
    (member Jaccard ≥ ``parent_dedupe_jaccard``) to a theme or an earlier parent are dropped. A parent's ``id`` is
    its lowest feature index, so it can coincide with a child's: parents belong in a list of their own. Each
    parent carries its children's theme ids (``themes``) and the level it was cut at (``level``).
    On coarse gold labels (SemEval categories) this is what recovers them (``python -m bench quality``).
    """
    if len(themes) < 4 or not options.parent_levels:
        return []
    from sklearn.cluster import AgglomerativeClustering

    directions = np.stack([decoder[:, t.features].mean(axis=1) for t in themes])
    directions /= np.maximum(np.linalg.norm(directions, axis=1, keepdims=True), 1e-12)
    shown = [set(t.members.tolist()) for t in themes]
    parents: list[Theme] = []
    seen_groups: set[tuple[int, ...]] = set()
    for level in options.parent_levels:
        n_groups = len(themes) // level
        if n_groups < 2:
            break
        labels = AgglomerativeClustering(n_clusters=n_groups, metric="cosine", linkage="average").fit_predict(directions)
        for g in range(n_groups):
            children = tuple(np.flatnonzero(labels == g).tolist())
            if len(children) < 2 or children in seen_groups:
                continue
            seen_groups.add(children)
            best: dict[int, float] = {}
            for c in children:
                for row, act in zip(themes[c].members.tolist(), themes[c].activations.tolist()):
                    best[row] = max(act, best.get(row, 0.0))
            members = set(best)
            if any(len(members & s) / max(len(members | s), 1) >= options.parent_dedupe_jaccard for s in shown):
                continue
            shown.append(members)
            rows = np.array(sorted(members), dtype=np.int64)
            features = sorted(f for c in children for f in themes[c].features)
            parents.append(Theme(id=features[0], features=features, members=rows,
                                 activations=np.array([best[r] for r in rows.tolist()], dtype=np.float32),
                                 themes=sorted(themes[c].id for c in children), level=level,
                                 kind="union"))  # fmt: skip
    return parents


def group_themes(
    themes: list[Theme],
    decoder: np.ndarray,
    documents: pd.DataFrame,
    embeddings: np.ndarray | DocumentVectors,
    options: ThemeOptions = ThemeOptions(),
    terms: tuple[sp.csr_matrix, np.ndarray] | None = None,
) -> list[Theme]:
    """Theme groups shown beside the themes: :func:`parent_themes`, numbered 1, 2, … (finest level first, then by
    size) and described like themes (label, keywords, sentiment, rating, examples), sorted by size.

    Groups are what recovers coarse categories that no single fine theme matches (docs/benchmarks.md); they are
    recomputed by every analysis, so unlike theme ids their ids hold within one job only. ``terms``: as for
    :func:`describe_themes`.
    """
    return describe_groups(parent_themes(themes, decoder, options), documents, embeddings, options, terms)


def describe_groups(
    groups: list[Theme],
    documents: pd.DataFrame,
    embeddings: np.ndarray | DocumentVectors,
    options: ThemeOptions = ThemeOptions(),
    terms: tuple[sp.csr_matrix, np.ndarray] | None = None,
) -> list[Theme]:
    """Number groups 1, 2, … (finest level first, then by size), describe them level by level and sort them by
    size: the second half of :func:`group_themes`, also used for the groups of other stages (``levels``)."""
    groups = list(groups)
    groups.sort(key=lambda g: (g.level, -g.size, g.themes))
    for number, group in enumerate(groups, start=1):
        group.id = number
    if not groups:
        return []
    # Keywords are c-TF-IDF among the groups of one level (nearly a partition of the comments): across levels, a
    # broad group and its own sub-groups share every term, which would leave only filler words to tell them apart.
    terms = terms if terms is not None else term_counts(documents["text"].tolist())
    described: list[Theme] = []
    for level in sorted({g.level for g in groups}):
        same_level = [g for g in groups if g.level == level]
        described += describe_themes(same_level, documents, embeddings, options, terms)
    return sorted(described, key=lambda t: (-t.size, t.id))


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


def describe_themes(
    themes: list[Theme],
    documents: pd.DataFrame,
    embeddings: np.ndarray | DocumentVectors,
    options: ThemeOptions = ThemeOptions(),
    terms: tuple[sp.csr_matrix, np.ndarray] | None = None,
) -> list[Theme]:
    """Fill label, keywords, sentiment, rating and examples; return themes sorted by size (then id).

    ``documents`` needs ``text``, ``sentiment_score``, ``sentiment_label`` and ``rating`` columns, one row per
    document in the order of the activation matrix; ``embeddings`` has one unit row per document. ``terms``:
    :func:`~worker.pipeline.keywords.term_counts` of the texts, when already counted. Keywords are c-TF-IDF among ``themes``.
    """
    if not themes:
        return []
    texts = documents["text"].tolist()
    counts, vocabulary = terms if terms is not None else term_counts(texts)
    membership = sp.csr_matrix(
        (
            np.ones(sum(t.size for t in themes), dtype=np.float32),
            (np.concatenate([t.members for t in themes]), np.repeat(np.arange(len(themes)), [t.size for t in themes])),
        ),
        shape=(len(texts), len(themes)),
    )
    weights = class_tfidf(membership, counts)
    scores = documents["sentiment_score"].to_numpy()
    labels = documents["sentiment_label"].to_numpy()
    ratings = documents["rating"].to_numpy(dtype=float)
    for i, theme in enumerate(themes):
        theme.keywords = top_keywords(weights[i], vocabulary, options.n_keywords) if weights.size else []
        theme.label = make_label(theme.keywords)
        theme.sentiment = aggregate(scores[theme.members], labels[theme.members])
        rated = ratings[theme.members]
        rated = rated[~np.isnan(rated)]
        theme.rating = {"mean": float(rated.mean()), "count": int(rated.size)} if rated.size else None
        theme.examples = pick_examples(theme, texts, embeddings, options)
    return sorted(themes, key=lambda t: (-t.size, t.id))


def pick_examples(theme: Theme, texts: list[str], embeddings: np.ndarray | DocumentVectors, options: ThemeOptions) -> list[int]:
    """Top-activating members, skipping repeats and near-duplicates of those already chosen."""
    order = theme.members[np.argsort(-theme.activations, kind="stable")]
    chosen: list[int] = []
    seen: set[str] = set()
    for doc in order:
        text = texts[doc].casefold()
        if text in seen:
            continue
        if chosen and float(np.max(embeddings[chosen] @ embeddings[doc])) > options.example_similarity:
            continue
        chosen.append(int(doc))
        seen.add(text)
        if len(chosen) >= options.n_examples:
            break
    return chosen
