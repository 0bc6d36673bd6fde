"""Evaluation metrics for sparse autoencoders (pure numpy).

Codes may be given dense, shape (n, n_latents), or in top-k form as a
``(values, indices)`` pair of shape (n, k) each; the top-k form needs ``n_latents``
where the number of latents matters.
"""

from __future__ import annotations

import numpy as np

Codes = np.ndarray | tuple[np.ndarray, np.ndarray]


def fvu(x: np.ndarray, x_hat: np.ndarray) -> float:
    """Fraction of variance unexplained: ``sum((x - x̂)²) / sum((x - mean(x))²)``."""
    x = np.asarray(x, dtype=np.float64)
    x_hat = np.asarray(x_hat, dtype=np.float64)
    if x.shape != x_hat.shape:
        raise ValueError(f"shape mismatch: {x.shape} vs {x_hat.shape}")
    total = float(np.sum((x - x.mean(axis=0)) ** 2))
    residual = float(np.sum((x - x_hat) ** 2))
    if total == 0.0:
        return 0.0 if residual == 0.0 else float("inf")
    return residual / total


def l0(z: Codes) -> float:
    """Mean number of non-zero (positive) latents per row."""
    active = _active(z)
    return float(active.sum(axis=1).mean()) if active.shape[0] else 0.0


def firing_frequency(z: Codes, n_latents: int | None = None) -> np.ndarray:
    """Share of rows on which each latent is > 0, shape (n_latents,)."""
    if isinstance(z, tuple):
        values, indices = (np.asarray(a) for a in z)
        if n_latents is None:
            raise ValueError("n_latents is required for (values, indices) codes")
        counts = np.bincount(indices[values > 0].ravel(), minlength=n_latents)
        return counts / max(len(values), 1)
    z = np.asarray(z)
    return (z > 0).mean(axis=0) if len(z) else np.zeros(z.shape[1])


def dead_fraction(z_or_freq: Codes, n_latents: int | None = None) -> float:
    """Share of latents that never fire; accepts codes or a firing-frequency vector."""
    if not isinstance(z_or_freq, tuple) and np.ndim(z_or_freq) == 1:
        freq = np.asarray(z_or_freq)
    else:
        freq = firing_frequency(z_or_freq, n_latents)
    return float(np.mean(freq <= 0)) if freq.size else 0.0


def frequency_summary(freq: np.ndarray) -> dict[str, float]:
    """Small JSON-able summary of a firing-frequency vector."""
    freq = np.asarray(freq, dtype=np.float64)
    alive = freq[freq > 0]
    return {
        "n_dead": int(np.sum(freq <= 0)),
        "min": float(freq.min()) if freq.size else 0.0,
        "median": float(np.median(freq)) if freq.size else 0.0,
        "max": float(freq.max()) if freq.size else 0.0,
        "mean": float(freq.mean()) if freq.size else 0.0,
        "median_alive": float(np.median(alive)) if alive.size else 0.0,
        "n_dense": int(np.sum(freq > 0.5)),
    }


def _active(z: Codes) -> np.ndarray:
    if isinstance(z, tuple):
        return np.asarray(z[0]) > 0
    return np.asarray(z) > 0
