"""Theme-quality metrics: pure functions of member sets (one array of document rows per theme) and gold labels
(what ``python -m bench quality``, ``incremental``, ``theme-sentiment``, ``sentiment`` and ``perf`` report).

Definitions (docs/benchmarks.md repeats them):

- label recovery: for each gold label with at least ``min_support`` documents, the best F1 of any one theme's
  member set against the label's documents; the mean over those labels, and the share with F1 ≥ 0.5.
- theme precision: per theme, the precision of its best label (the share of its members carrying the label most
  common among them); the mean over themes weighted by theme size.
- outliers: share of documents in no theme.
- multi-label micro-F1: each theme is mapped to its best label (as above); a document is predicted with the labels
  of the themes it belongs to; micro-F1 over (document, label) pairs against the gold label sets.
- stability: share of the themes of run A that have a theme in run B with member Jaccard ≥ 0.5.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp


def membership_matrix(themes: Sequence[np.ndarray], n_docs: int) -> sp.csc_matrix:
    """Binary docs × themes matrix from member row arrays (duplicates within a theme ignored)."""
    rows = [np.unique(np.asarray(t, dtype=np.int64)) for t in themes]
    if not rows:
        return sp.csc_matrix((n_docs, 0), dtype=np.float64)
    r = np.concatenate(rows)
    c = np.repeat(np.arange(len(rows)), [len(x) for x in rows])
    return sp.csc_matrix((np.ones(len(r)), (r, c)), shape=(n_docs, len(rows)), dtype=np.float64)


def label_matrix(labels: Sequence[Sequence[str]]) -> tuple[sp.csc_matrix, list[str]]:
    """Binary docs × labels matrix and the label names (sorted)."""
    names = sorted({lab for ls in labels for lab in ls})
    index = {n: i for i, n in enumerate(names)}
    r, c = [], []
    for i, ls in enumerate(labels):
        for lab in set(ls):
            r.append(i)
            c.append(index[lab])
    m = sp.csc_matrix((np.ones(len(r)), (r, c)), shape=(len(labels), len(names)), dtype=np.float64)
    return m, names


def _overlap(themes: Sequence[np.ndarray], labels: Sequence[Sequence[str]]):
    M = membership_matrix(themes, len(labels))
    G, names = label_matrix(labels)
    inter = np.asarray((M.T @ G).todense()).reshape(M.shape[1], G.shape[1])
    theme_sizes = np.asarray(M.sum(axis=0)).ravel()
    label_sizes = np.asarray(G.sum(axis=0)).ravel()
    return M, G, names, inter, theme_sizes, label_sizes


def label_recovery(themes: Sequence[np.ndarray], labels: Sequence[Sequence[str]], min_support: int = 10) -> dict:
    """``{"mean_f1", "share_recovered", "per_label": {label: best F1}, "n_labels"}`` (see module docstring)."""
    _, _, names, inter, tsz, lsz = _overlap(themes, labels)
    keep = np.flatnonzero(lsz >= min_support)
    if len(keep) == 0:
        return {"mean_f1": float("nan"), "share_recovered": float("nan"), "per_label": {}, "n_labels": 0}
    if inter.shape[0] == 0:
        best = np.zeros(len(keep))
    else:
        f1 = 2 * inter[:, keep] / np.maximum(tsz[:, None] + lsz[None, keep], 1e-12)
        best = f1.max(axis=0)
    return {
        "mean_f1": float(best.mean()),
        "share_recovered": float((best >= 0.5).mean()),
        "per_label": {names[j]: float(b) for j, b in zip(keep, best)},
        "n_labels": int(len(keep)),
    }


def best_labels(themes: Sequence[np.ndarray], labels: Sequence[Sequence[str]]) -> tuple[list[str | None], np.ndarray]:
    """Per theme: the label most common among its members (``None`` if none labelled) and its precision."""
    _, _, names, inter, tsz, _ = _overlap(themes, labels)
    if inter.shape[1] == 0:
        return [None] * len(themes), np.zeros(len(themes))
    j = inter.argmax(axis=1)
    prec = inter[np.arange(len(j)), j] / np.maximum(tsz, 1)
    return [names[x] if inter[i, x] > 0 else None for i, x in enumerate(j)], prec


def theme_precision(themes: Sequence[np.ndarray], labels: Sequence[Sequence[str]]) -> float:
    """Size-weighted mean over themes of their best-label precision (NaN without themes)."""
    if len(themes) == 0:
        return float("nan")
    _, prec = best_labels(themes, labels)
    sizes = np.array([len(np.unique(t)) for t in themes], dtype=float)
    return float((prec * sizes).sum() / max(sizes.sum(), 1.0))


def outlier_share(themes: Sequence[np.ndarray], n_docs: int) -> float:
    """Share of documents in no theme."""
    if n_docs == 0:
        return 0.0
    covered = np.zeros(n_docs, dtype=bool)
    for t in themes:
        covered[np.asarray(t, dtype=np.int64)] = True
    return float(1.0 - covered.mean())


def micro_f1(themes: Sequence[np.ndarray], labels: Sequence[Sequence[str]]) -> dict:
    """Multi-label micro precision / recall / F1 with each theme mapped to its best label."""
    M, G, names, _, _, _ = _overlap(themes, labels)
    mapped, _ = best_labels(themes, labels)
    index = {n: i for i, n in enumerate(names)}
    T = np.zeros((len(themes), len(names)))
    for i, lab in enumerate(mapped):
        if lab is not None:
            T[i, index[lab]] = 1
    pred = (M @ sp.csr_matrix(T)) > 0
    gold = G > 0
    tp = float(pred.multiply(gold).sum())
    n_pred, n_gold = float(pred.sum()), float(gold.sum())
    p = tp / n_pred if n_pred else 0.0
    r = tp / n_gold if n_gold else 0.0
    return {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0}


def stability(themes_a: Sequence[np.ndarray], themes_b: Sequence[np.ndarray], n_docs: int, threshold: float = 0.5) -> float:
    """Share of themes of A with a theme of B whose member Jaccard is ≥ ``threshold`` (NaN when A has none)."""
    if len(themes_a) == 0:
        return float("nan")
    if len(themes_b) == 0:
        return 0.0
    A, B = membership_matrix(themes_a, n_docs), membership_matrix(themes_b, n_docs)
    inter = np.asarray((A.T @ B).todense())
    sa, sb = np.asarray(A.sum(axis=0)).ravel(), np.asarray(B.sum(axis=0)).ravel()
    jac = inter / np.maximum(sa[:, None] + sb[None, :] - inter, 1e-12)
    return float((jac.max(axis=1) >= threshold).mean())


def mean_stability(runs: Sequence[Sequence[np.ndarray]], n_docs: int) -> float:
    """Mean of :func:`stability` over ordered pairs of different runs (NaN with fewer than two runs)."""
    vals = [stability(a, b, n_docs) for i, a in enumerate(runs) for j, b in enumerate(runs) if i != j]
    vals = [v for v in vals if not np.isnan(v)]
    return float(np.mean(vals)) if vals else float("nan")


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman rank correlation (average ranks for ties); NaN with fewer than 3 points or no variance."""
    from scipy.stats import spearmanr

    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(spearmanr(x, y).statistic)


def accuracy(pred: Sequence[str], gold: Sequence[str | None]) -> tuple[float, int]:
    """Accuracy over the rows with a gold value, and how many rows that was."""
    pairs = [(p, g) for p, g in zip(pred, gold) if g is not None]
    if not pairs:
        return float("nan"), 0
    return float(np.mean([p == g for p, g in pairs])), len(pairs)
