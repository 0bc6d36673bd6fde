"""Tree stage: the themes placed in one tree of categories → themes → sub-themes.

- **Categories** (level 1) are groups of themes about one subject. Each theme's direction is the activation-weighted
  mean of the SAE inputs of the units that carry it; the directions are grouped by consensus clustering (many
  k-means runs, then average linkage on how often two themes were put together), which finds the same categories
  again from another seed more often than one k-means run does (``python -m bench tree``). Their number grows
  with the square root of the number of themes, at most :attr:`TreeOptions.max_categories`.
  A category's members are its themes' members, so every comment in a theme is in the theme's category.
- **Themes** (level 2) are the SAE's themes (:mod:`worker.pipeline.themes`); ids are feature indices.
- **Sub-themes** (level 3) are themes of an SAE of twice the dictionary size, each under the theme that carries most
  of its units and cut to that theme's units, kept only where they say something their theme does not (they hold
  a part of it, not nearly all of it).

Node ids are unique across the tree: themes keep their feature index; categories count from
:data:`CATEGORY_ID_BASE`, sub-themes from :data:`SUB_THEME_ID_BASE`, and both keep the id of the previous analysis's
node they match by members (:func:`match_ids`), so ids and the edits made on them hold across updates.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from worker.pipeline.themes import Theme, lift, union

CATEGORY_ID_BASE = 1_000_000
SUB_THEME_ID_BASE = 2_000_000
LEVEL_CATEGORY, LEVEL_THEME, LEVEL_SUB_THEME = 1, 2, 3


def level_of_id(node_id: int) -> int:
    """A node's level from its id: themes below :data:`CATEGORY_ID_BASE`, then categories, then sub-themes."""
    if node_id >= SUB_THEME_ID_BASE:
        return LEVEL_SUB_THEME
    return LEVEL_CATEGORY if node_id >= CATEGORY_ID_BASE else LEVEL_THEME


@dataclass(frozen=True)
class TreeOptions:
    """How the tree is built around the themes."""

    max_categories: int = 15
    min_categories: int = 2
    themes_per_category: float = 3.0  # k = √(themes / this): 27 themes → 3 categories, 75 → 5, 300 → 10
    n_runs: int = 20  # k-means runs per number of clusters in the consensus
    sub_themes: bool = True
    finer: float = 2.0  # the sub-theme SAE's dictionary size, as a multiple of the main one's
    max_rows: int = 100_000  # the sub-theme SAE trains on a sample of at most this many distinct texts
    max_sub_share: float = 0.6  # a sub-theme holds at most this share of its theme's units …
    max_sub_themes: int = 6  # … and a theme shows at most this many (the largest)
    match_jaccard: float = 0.3  # a node keeps the id of the previous node it overlaps this much (member Jaccard)
    seed: int = 0


# ---------------------------------------------------------------- categories


def theme_directions(themes: Sequence[Theme], inputs: np.ndarray, inverse: np.ndarray) -> np.ndarray:
    """Per theme, the unit-norm activation-weighted mean of the SAE inputs of the units that carry it."""
    out = np.zeros((len(themes), inputs.shape[1]), dtype=np.float32)
    for i, theme in enumerate(themes):
        rows = inverse[theme.unit_rows]
        out[i] = (inputs[rows] * theme.unit_activations[:, None]).sum(axis=0)
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


def count_categories(n_themes: int, options: TreeOptions = TreeOptions()) -> int:
    """How many categories ``n_themes`` themes fall into: √(n_themes / ``themes_per_category``), rounded, between
    ``min_categories`` and ``max_categories`` (and never more than the themes)."""
    k = round(np.sqrt(n_themes / options.themes_per_category))
    return int(min(max(k, options.min_categories), options.max_categories, n_themes))


def co_association(directions: np.ndarray, weights: np.ndarray, k: int,
                   options: TreeOptions = TreeOptions()) -> np.ndarray:  # fmt: skip
    """Themes × themes: the share of k-means runs (``n_runs`` seeded starts for each number of clusters from k − 2 to
    k + 2) that put two themes in one cluster."""
    from sklearn.cluster import KMeans
    from threadpoolctl import threadpool_limits

    n = len(directions)
    together = np.zeros((n, n), dtype=np.float64)
    runs = 0
    with threadpool_limits(1):  # many small fits: a thread pool per fit costs more than the fit
        for clusters in range(max(2, k - 2), min(k + 2, n) + 1):
            for run in range(options.n_runs):
                seed = options.seed * 100_003 + clusters * 1_000 + run
                labels = KMeans(clusters, n_init=1, random_state=seed).fit_predict(directions, sample_weight=weights)
                together += labels[:, None] == labels[None, :]
                runs += 1
    return together / max(runs, 1)


def assign_categories(themes: Sequence[Theme], inputs: np.ndarray, inverse: np.ndarray,
                      options: TreeOptions = TreeOptions()) -> np.ndarray:  # fmt: skip
    """Per theme, its category's number (0 … k-1): consensus clustering of the theme directions (average linkage on
    how often k-means runs, weighted by theme size, put two themes together: :func:`co_association`); one k-means
    run's categories change with its start."""
    k = count_categories(len(themes), options)
    if k <= 1:
        return np.zeros(len(themes), dtype=np.int64)
    if k >= len(themes):
        return np.arange(len(themes), dtype=np.int64)
    from sklearn.cluster import AgglomerativeClustering

    directions = theme_directions(themes, inputs, inverse)
    weights = np.array([t.size for t in themes], dtype=np.float64)
    distance = 1.0 - co_association(directions, weights, k, options)
    labels = AgglomerativeClustering(n_clusters=k, metric="precomputed", linkage="average").fit_predict(distance)
    return labels.astype(np.int64)


def category_nodes(themes: Sequence[Theme], labels: np.ndarray) -> list[Theme]:
    """One category per label: the union of its themes' members and units (highest activation), its themes as
    children (ids not yet given: 0)."""
    categories = []
    for label in np.unique(labels):
        children = [themes[i] for i in np.flatnonzero(labels == label)]
        members, activations = union([(t.members, t.activations) for t in children])
        node = Theme(id=0, features=sorted(f for t in children for f in t.features), members=members,
                     activations=activations, level=LEVEL_CATEGORY,
                     children=sorted(t.id for t in children))  # fmt: skip
        if any(t.spans is not None for t in children):
            node.spans, node.span_activations = union([(t.unit_rows, t.unit_activations) for t in children])
        categories.append(node)
    return categories


# ---------------------------------------------------------------- sub-themes


def sub_theme_nodes(fine: Sequence[Theme], themes: Sequence[Theme], owner: np.ndarray | None, n_units: int,
                    min_size: int, options: TreeOptions = TreeOptions()) -> list[Theme]:  # fmt: skip
    """Sub-themes from a finer SAE's themes: each under the theme carrying most of its units, cut to that theme's
    units; kept when it holds at least ``min_size`` comments and at most ``max_sub_share`` of the theme's units (the
    ``max_sub_themes`` largest per theme). Ids not yet given (0)."""
    if not fine or not themes:
        return []
    carried = incidence([t.unit_rows for t in themes], n_units)
    finer = incidence([t.unit_rows for t in fine], n_units)
    overlap = np.asarray((finer.T @ carried).todense())
    kept: dict[int, list[Theme]] = {}
    for candidate, row in zip(fine, overlap):
        best = int(np.argmax(row))
        parent = themes[best]
        inside = np.isin(candidate.unit_rows, parent.unit_rows)
        if not inside.any() or inside.sum() > options.max_sub_share * len(parent.unit_rows):
            continue
        rows, values = candidate.unit_rows[inside], candidate.unit_activations[inside]
        members, activations = lift(rows, values, owner)
        if len(members) < min_size:
            continue
        node = Theme(id=0, features=[], members=members, activations=activations, level=LEVEL_SUB_THEME,
                     parent=parent.id)  # fmt: skip
        if owner is not None:
            node.spans, node.span_activations = rows, values
        kept.setdefault(parent.id, []).append(node)
    out = []
    for parent_id in sorted(kept):
        out += sorted(kept[parent_id], key=lambda s: -s.size)[: options.max_sub_themes]
    return out


def incidence(sets: Sequence[np.ndarray], n_rows: int) -> sp.csc_matrix:
    """Rows × sets 0/1 matrix: column j marks the rows of ``sets[j]`` (each row once per set)."""
    rows = np.concatenate(sets) if len(sets) else np.zeros(0, dtype=np.int64)
    cols = np.repeat(np.arange(len(sets)), [len(s) for s in sets])
    return sp.csc_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(n_rows, len(sets)))


# ---------------------------------------------------------------- stable ids


def match_ids(nodes: Sequence[np.ndarray], previous: Mapping[int, np.ndarray], base: int, n_docs: int,
              min_jaccard: float = 0.3) -> list[int]:  # fmt: skip
    """Ids for new nodes given their members (document rows): the id of the previous node each matches one to one
    (largest total member Jaccard, at least ``min_jaccard``), else new ids after every id used so far (at least
    ``base`` + 1), the largest node first."""
    ids: list[int | None] = [None] * len(nodes)
    old = sorted(previous)
    if nodes and old:
        from scipy.optimize import linear_sum_assignment

        jaccard = _jaccard([np.asarray(m) for m in nodes], [np.asarray(previous[o]) for o in old], n_docs)
        for i, j in zip(*linear_sum_assignment(-jaccard)):
            if jaccard[i, j] >= min_jaccard:
                ids[i] = old[j]
    following = max([base, *old]) + 1
    for i in sorted(range(len(nodes)), key=lambda i: -len(nodes[i])):
        if ids[i] is None:
            ids[i], following = following, following + 1
    return [int(i) for i in ids]  # type: ignore[arg-type]


def _jaccard(a: Sequence[np.ndarray], b: Sequence[np.ndarray], n_docs: int) -> np.ndarray:
    inter = np.asarray((incidence(a, n_docs).T @ incidence(b, n_docs)).todense())
    sizes_a, sizes_b = np.array([len(s) for s in a]), np.array([len(s) for s in b])
    return inter / np.maximum(sizes_a[:, None] + sizes_b[None, :] - inter, 1)


# ---------------------------------------------------------------- the tree


@dataclass
class Tree:
    """The three levels, each a list of nodes (:class:`~worker.pipeline.themes.Theme`) with ``level``, ``parent``
    and ``children`` set."""

    categories: list[Theme]
    themes: list[Theme]
    sub_themes: list[Theme]

    @property
    def nodes(self) -> list[Theme]:
        return [*self.categories, *self.themes, *self.sub_themes]


def build_tree(themes: list[Theme], inputs: np.ndarray, inverse: np.ndarray, n_docs: int,
               owner: np.ndarray | None = None, fine: Sequence[Theme] = (), min_size: int = 3,
               previous: Mapping[int, np.ndarray] | None = None,
               options: TreeOptions = TreeOptions()) -> Tree:  # fmt: skip
    """The tree around ``themes`` (members only): ``inputs`` are the distinct texts' SAE inputs and ``inverse`` each
    unit's row in them; ``owner`` each unit's document row (``None``: the units are the documents); ``fine`` the
    themes of a finer SAE (sub-theme candidates); ``previous`` the previous analysis's categories and sub-themes
    ({id: member document rows}) whose ids matching nodes keep."""
    previous = previous or {}
    labels = assign_categories(themes, inputs, inverse, options)
    categories = category_nodes(themes, labels)
    n_units = len(inverse)
    subs = sub_theme_nodes(fine, themes, owner, n_units, min_size, options) if options.sub_themes else []
    for nodes, base in ((categories, CATEGORY_ID_BASE), (subs, SUB_THEME_ID_BASE)):
        before = {i: m for i, m in previous.items() if base < i < base + CATEGORY_ID_BASE}
        for node, node_id in zip(nodes, match_ids([n.members for n in nodes], before, base, n_docs,
                                                  options.match_jaccard)):  # fmt: skip
            node.id = node_id
    by_id = {t.id: t for t in themes}
    for theme in themes:
        theme.level, theme.parent, theme.children = LEVEL_THEME, None, []
    for category in categories:
        for child in category.children:
            by_id[child].parent = category.id
    for sub in subs:
        by_id[sub.parent].children.append(sub.id)
    for theme in themes:
        theme.children.sort()
    return Tree(categories, list(themes), subs)
