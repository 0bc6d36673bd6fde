"""Smooth stage: pull each embedding towards the mean of its nearest neighbours before the SAE sees it.

    x̃ᵢ = normalise((1 − w) xᵢ + w · mean of xⱼ over the n nearest neighbours j of i)

One step of neighbourhood averaging (as UMAP and spectral clustering rely on a k-nearest-neighbour graph) sharpens
the corpus's dense regions: comments that say the same thing in different words move together, so SAE features
line up with them better and vary less between seeds: on the labelled sets label recovery, theme precision and
stability all rise (``python -m bench quality``, docs/benchmarks.md).

Neighbours are exact (cosine, brute force in row chunks, torch ``topk``) while n² fits ``pair_budget``
(about 20k rows); above that each row looks for its neighbours among a seeded sample of ``pair_budget / n`` rows
(at least ``MIN_REFERENCE``), with the neighbour count scaled to the sample (at least ``MIN_SAMPLED_NEIGHBORS``) so
the neighbourhood covers about the same share of the corpus. A small corpus averages at most 5 % of itself into
each row.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Rows of the reference sample at the least, whatever the budget.
MIN_REFERENCE = 2_000
#: Fewest neighbours averaged when the reference is a sample.
MIN_SAMPLED_NEIGHBORS = 5
#: At most this share of a small corpus is averaged into each row (60 comments: 3 neighbours, not 15 of 59).
MAX_NEIGHBOR_SHARE = 0.05
_CHUNK_PAIRS = 16_000_000  # (row, reference) similarities held in memory at once: 64 MB of float32


@dataclass(frozen=True)
class SmoothOptions:
    """How embeddings are smoothed; ``n_neighbors=0`` or ``weight=0`` turns smoothing off."""

    n_neighbors: int = 15
    weight: float = 0.8
    pair_budget: int = 400_000_000  # (row, reference row) similarities computed in all: ~20k rows exact
    seed: int = 0

    @property
    def enabled(self) -> bool:
        return self.n_neighbors > 0 and self.weight > 0


def reference_rows(n: int, options: SmoothOptions) -> np.ndarray | None:
    """Rows neighbours are looked for among: ``None`` for all rows, else a sorted fixed-seed sample."""
    if n * n <= options.pair_budget:
        return None
    size = min(n, max(MIN_REFERENCE, options.pair_budget // n))
    if size >= n:
        return None
    return np.sort(np.random.default_rng(options.seed).choice(n, size, replace=False))


def nearest_neighbors(vectors: np.ndarray, n_neighbors: int, reference: np.ndarray | None = None,
                      device: str = "cpu") -> np.ndarray:  # fmt: skip
    """Indices (into ``vectors``) of each row's ``n_neighbors`` most cosine-similar rows among ``reference`` (all
    rows when ``None``), the row itself excluded; shape (n, min(n_neighbors, candidates − 1)). The similarities
    are computed on ``device`` (a torch device name)."""
    import torch  # worker-side only; topk is ~20x faster than numpy's argpartition here

    X = torch.from_numpy(_unit(vectors)).to(device)
    ref = np.arange(len(X)) if reference is None else np.asarray(reference)
    k = int(min(n_neighbors, len(ref) - 1))
    if k < 1:
        return np.zeros((len(X), 0), dtype=np.int64)
    R = X[torch.from_numpy(ref).to(device)]
    out = np.empty((len(X), k), dtype=np.int64)
    step = max(1, _CHUNK_PAIRS // max(1, len(ref)))
    position = np.full(len(X), -1, dtype=np.int64)
    position[ref] = np.arange(len(ref))  # where each row sits in the reference, -1 if absent
    with torch.no_grad():
        for start in range(0, len(X), step):
            rows = np.arange(start, min(start + step, len(X)))
            sims = X[start : start + len(rows)] @ R.T
            inside = np.flatnonzero(position[rows] >= 0)
            own = (torch.from_numpy(inside).to(device), torch.from_numpy(position[rows][inside]).to(device))
            sims[own] = -float("inf")  # never one's own neighbour
            out[rows] = ref[sims.topk(k, dim=1).indices.cpu().numpy()]
    return out


def neighbourhood(vectors: np.ndarray, options: SmoothOptions = SmoothOptions(), device: str = "cpu") -> np.ndarray:
    """Each row's neighbours as :func:`smooth_embeddings` averages them (exact or among the reference sample, at
    most 5 % of a small corpus); shape (n, k), k = 0 when smoothing is off or there are fewer than 3 rows."""
    X = _unit(vectors)
    if not options.enabled or len(X) < 3:
        return np.zeros((len(X), 0), dtype=np.int64)
    reference = reference_rows(len(X), options)
    k = min(options.n_neighbors, max(1, int(len(X) * MAX_NEIGHBOR_SHARE)))
    if reference is not None:
        k = max(MIN_SAMPLED_NEIGHBORS, round(k * len(reference) / len(X)))
    return nearest_neighbors(X, k, reference, device)


def smooth_embeddings(vectors: np.ndarray, options: SmoothOptions = SmoothOptions(), device: str = "cpu",
                      neighbours: np.ndarray | None = None) -> np.ndarray:  # fmt: skip
    """The smoothed, unit-norm float32 embeddings (the unit-norm input when smoothing is off or there are fewer
    than 3 rows); neighbours are searched on ``device`` unless given (from :func:`neighbourhood`)."""
    X = _unit(vectors)
    neighbours = neighbourhood(X, options, device) if neighbours is None else neighbours
    if not options.enabled or neighbours.shape[1] == 0:
        return X
    out = np.empty_like(X)
    step = max(1, _CHUNK_PAIRS // max(1, neighbours.shape[1] * X.shape[1]))
    for start in range(0, len(X), step):  # chunked: no (n, k, d) gather and no second n x d array at once
        rows = slice(start, start + step)
        mixed = (1 - options.weight) * X[rows] + options.weight * X[neighbours[rows]].mean(axis=1)
        out[rows] = mixed / np.maximum(np.linalg.norm(mixed, axis=1, keepdims=True), 1e-12)
    return out


def _unit(vectors: np.ndarray) -> np.ndarray:
    """Unit-norm float32 rows: the input itself (no copy: a memory-mapped 1M x 384 matrix is 1.5 GB) when it is so
    already, as sentence-transformers embeddings are."""
    X = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    if np.allclose(norms, 1.0, atol=1e-4):
        return X
    return X / np.maximum(norms, 1e-12)
