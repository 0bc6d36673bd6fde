"""Train stage: fit (or update) the sparse autoencoder on the embeddings and read out its activations."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from sae import SparseAutoencoder


def train_sae(
    embeddings: np.ndarray,
    *,
    n_latents: int | None = None,
    k: int | None = None,
    seed: int = 0,
    device: str = "auto",
    progress: Callable[[float], None] | None = None,
    previous: str | Path | None = None,
) -> SparseAutoencoder:
    """A fitted SAE: a new one, or the saved one in ``previous`` updated so its feature indices keep their meaning."""
    if previous is not None and Path(previous).exists():
        sae = SparseAutoencoder.load(previous, device=device)
        sae.progress = progress
        return sae.partial_fit(embeddings)
    sae = SparseAutoencoder(n_latents=n_latents, k=k, random_state=seed, device=device, progress=progress)
    return sae.fit(embeddings)


def activation_matrix(values: np.ndarray, indices: np.ndarray, n_latents: int) -> sp.csr_matrix:
    """Sparse docs × latents activations from TopK (values, indices); zeros dropped."""
    n, k = values.shape
    rows = np.repeat(np.arange(n), k)
    matrix = sp.csr_matrix((values.ravel(), (rows, indices.ravel())), shape=(n, n_latents), dtype=np.float32)
    matrix.eliminate_zeros()
    return matrix


def activations(sae: SparseAutoencoder, embeddings: np.ndarray) -> sp.csr_matrix:
    """Sparse rows × latents activations of the SAE on the embeddings."""
    values, indices = sae.encode_topk(embeddings)
    return activation_matrix(values, indices, sae.n_latents_)


def sae_summary(sae: SparseAutoencoder) -> dict[str, float | int]:
    """The ``metadata.sae`` block of themes.json."""
    m = sae.metrics_
    return {
        "n_latents": int(sae.n_latents_),
        "k": int(sae.k_),
        "fvu": round(float(m["fvu"]), 4),
        "l0": round(float(m["l0"]), 4),
        "dead_fraction": round(float(m["dead_fraction"]), 4),
    }

