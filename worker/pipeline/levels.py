"""Levels stage: themes at half and at twice the dictionary size, shown as broader groups and as sub-themes.

One dictionary size cuts the comments at one granularity, and gold categories are not all at it: on Banking77 the
themes of a 128-latent SAE merge 21 intents and split 27 others. SAEs of half and twice the size, trained on the same
inputs, find what that one size misses (label recovery with every set shown: ``python -m bench quality``). Their
themes are shown around the main ones:

- every theme of the half-size SAE becomes a *broader group* (``level`` 2) over the themes mostly inside it;
- every theme of the double-size SAE becomes a *sub-theme* (``level`` 1) of the theme holding most of its members.

A level theme nearly equal to a theme or a group already shown is left out. Level SAEs are retrained by every
analysis (on at most :data:`MAX_LEVEL_ROWS` texts) and their ids hold within one job only, like the groups'.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from worker.pipeline.themes import Theme, ThemeOptions, build_themes, parent_themes

#: The level SAEs train on a random sample of at most this many distinct texts (then read all of them): they
#: cost at most ~3 × the main SAE's time on a benchmark-sized corpus and a bounded amount at a million rows.
MAX_LEVEL_ROWS = 100_000
#: A level theme whose members overlap this much (Jaccard) with a theme or group already shown is not shown.
NEAR_DUPLICATE = 0.9
#: A theme belongs to a broader group when at least this share of its members are in the group.
CHILD_SHARE = 0.5
SUB_THEME_LEVEL, BROADER_LEVEL = 1, 2


@dataclass(frozen=True)
class LevelOptions:
    """Which levels to train: dictionary sizes as multiples of the main SAE's (empty: no levels)."""

    broader: float | None = 0.5
    finer: float | None = 2.0
    max_rows: int = MAX_LEVEL_ROWS
    seed: int = 0


def level_size(n_latents: int, factor: float) -> int:
    """The dictionary size of a level: ``factor`` × the main size, at least 2."""
    return max(2, int(round(n_latents * factor)))


def train_level(inputs: np.ndarray, n_latents: int, options: LevelOptions, device: str = "cpu"):
    """An SAE of ``n_latents`` trained on the SAE inputs (a seeded sample of at most ``options.max_rows``)."""
    from worker.pipeline import train  # torch: imported on use

    rows = inputs
    if len(inputs) > options.max_rows:
        pick = np.random.default_rng(options.seed).choice(len(inputs), options.max_rows, replace=False)
        rows = inputs[np.sort(pick)]
    return train.train_sae(rows, n_latents=n_latents, seed=options.seed, device=device)


def level_themes(inputs: np.ndarray, inverse: np.ndarray, n_latents: int, options: LevelOptions,
                 theme_options: ThemeOptions = ThemeOptions(), device: str = "cpu", owner: np.ndarray | None = None,
                 n_docs: int | None = None) -> list[Theme]:  # fmt: skip
    """The themes (members only) of a freshly trained level SAE of ``n_latents``: ``inputs`` are the distinct
    texts' SAE inputs, ``inverse`` maps each unit to its text's row, ``owner`` each unit to its document's row
    (``None``: the units are the documents, ``n_docs`` of them)."""
    from worker.pipeline import train

    sae = train_level(inputs, n_latents, options, device)
    acts = train.activations(sae, inputs)[inverse]
    return build_themes(acts, sae.decoder_directions(), theme_options, owner, n_docs)


def membership(themes: Sequence[Theme], n_docs: int) -> sp.csc_matrix:
    """Documents × themes 0/1 matrix of the themes' members."""
    rows = np.concatenate([t.members for t in themes]) if themes else np.zeros(0, dtype=np.int64)
    cols = np.repeat(np.arange(len(themes)), [t.size for t in themes])
    return sp.csc_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(n_docs, len(themes)))


def overlaps(candidates: Sequence[Theme], themes: Sequence[Theme], n_docs: int) -> np.ndarray:
    """Members of each candidate inside each theme, (candidates × themes)."""
    return np.asarray((membership(candidates, n_docs).T @ membership(themes, n_docs)).todense())


def near_duplicates(candidates: Sequence[Theme], shown: Sequence[Theme], n_docs: int) -> np.ndarray:
    """Per candidate, whether its member Jaccard with some shown set reaches :data:`NEAR_DUPLICATE`."""
    if not candidates or not shown:
        return np.zeros(len(candidates), dtype=bool)
    inter = overlaps(candidates, shown, n_docs)
    union = np.array([c.size for c in candidates])[:, None] + np.array([s.size for s in shown])[None, :] - inter
    return (inter / np.maximum(union, 1) >= NEAR_DUPLICATE).any(axis=1)


def broader_groups(coarse: list[Theme], themes: list[Theme], shown: Sequence[Theme], n_docs: int) -> list[Theme]:
    """Broader groups from the half-size SAE's themes: each lists the themes with at least :data:`CHILD_SHARE` of
    their members inside it (else the one theme it overlaps most). Near-duplicates of ``shown`` are dropped (the
    candidates themselves overlap less: one SAE's features are merged at member Jaccard 0.5)."""
    if not coarse or not themes:
        return []
    overlap = overlaps(coarse, themes, n_docs)
    sizes = np.array([t.size for t in themes])
    duplicate = near_duplicates(coarse, shown, n_docs)
    groups: list[Theme] = []
    for candidate, row, dup in zip(coarse, overlap, duplicate):
        if dup or row.max() == 0:
            continue
        children = np.flatnonzero(row >= CHILD_SHARE * np.maximum(sizes, 1))
        if len(children) == 0:
            children = [int(np.argmax(row))]
        groups.append(_as_level(candidate, sorted(themes[c].id for c in children), BROADER_LEVEL, "broader"))
    return groups


def sub_themes(fine: list[Theme], themes: list[Theme], n_docs: int) -> list[Theme]:
    """Sub-themes from the double-size SAE's themes: each under the theme holding most of its members; one nearly
    equal to that theme, or with no member in any theme, is dropped."""
    if not fine or not themes:
        return []
    overlap = overlaps(fine, themes, n_docs)
    sizes = np.array([t.size for t in themes])
    subs: list[Theme] = []
    for candidate, row in zip(fine, overlap):
        best = int(np.argmax(row))
        inter = row[best]
        if inter == 0 or inter / max(candidate.size + sizes[best] - inter, 1) >= NEAR_DUPLICATE:
            continue
        subs.append(_as_level(candidate, [themes[best].id], SUB_THEME_LEVEL, "sub_theme"))
    return subs


def _as_level(theme: Theme, children: list[int], level: int, kind: str) -> Theme:
    """A level SAE's theme as a group; its features are another SAE's, so none are listed."""
    return Theme(id=theme.id, features=[], members=theme.members, activations=theme.activations, spans=theme.spans,
                 span_activations=theme.span_activations, themes=children, level=level, kind=kind)  # fmt: skip


def level_groups(inputs: np.ndarray, inverse: np.ndarray, n_latents: int, themes: list[Theme],
                 shown: Sequence[Theme], options: LevelOptions = LevelOptions(),
                 theme_options: ThemeOptions = ThemeOptions(), device: str = "cpu", owner: np.ndarray | None = None,
                 n_docs: int | None = None) -> list[Theme]:  # fmt: skip
    """Broader groups and sub-themes (members only) around ``themes`` from SAEs of the sizes in ``options``;
    ``shown``: the themes and groups already shown (near-duplicates of them are left out); ``owner`` and
    ``n_docs`` as for :func:`level_themes`."""
    n_docs = len(inverse) if n_docs is None else n_docs
    out: list[Theme] = []
    for factor, place in ((options.broader, "broader"), (options.finer, "finer")):
        if not factor:
            continue
        found = level_themes(inputs, inverse, level_size(n_latents, factor), options, theme_options, device, owner,
                             n_docs)  # fmt: skip
        out += broader_groups(found, themes, shown, n_docs) if place == "broader" else sub_themes(found, themes, n_docs)
    return out


def all_groups(themes: list[Theme], decoder: np.ndarray, inputs: np.ndarray, inverse: np.ndarray, n_latents: int,
               levels: LevelOptions | None = LevelOptions(), theme_options: ThemeOptions = ThemeOptions(),
               device: str = "cpu", owner: np.ndarray | None = None, n_docs: int | None = None) -> list[Theme]:  # fmt: skip
    """Every group shown beside ``themes`` (members only, not yet described): the ``union`` groups of
    :func:`~worker.pipeline.themes.parent_themes`, then, with ``levels``, the broader groups and sub-themes
    (``owner``, ``n_docs``: as for :func:`level_themes`)."""
    groups = parent_themes(themes, decoder, theme_options)
    if levels is not None:
        groups += level_groups(inputs, inverse, n_latents, themes, [*themes, *groups], levels, theme_options, device,
                               owner, n_docs)  # fmt: skip
    return groups
