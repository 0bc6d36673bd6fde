"""TopK sparse autoencoder (Gao et al., 2024, "Scaling and evaluating sparse autoencoders").

    z  = ReLU(TopK(W_enc (x - b_pre) + b_lat))
    x̂ = W_dec z + b_pre

``W_dec`` has shape (d_in, n_latents); its columns are the feature directions and
are kept at unit norm by the trainer (:meth:`TopKSAE.remove_parallel_grad` before
each optimiser step, :meth:`TopKSAE.normalize_decoder` after it).
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

_EPS = 1e-12
INIT_MODES = ("kmeans", "random")
#: k-means restarts for the decoder init: the best lever on stability across seeds (``python -m bench quality``).
KMEANS_RESTARTS = 5
#: … as many as fit this many (row, centroid) pairs in all, at least one: restarts cost ~n × k each, so a 10k-text
#: corpus gets 2 (k-means was 70 % of its SAE time with 5) while every quality benchmark set (≤ 8k texts) keeps 4–5.
KMEANS_RESTART_BUDGET = 10_000_000
#: At most this many rows are used for the median / k-means initialisation.
MAX_INIT_ROWS = 20_000


class SAEOutput(NamedTuple):
    """Everything one forward pass produces."""

    x_hat: torch.Tensor  # (B, d_in) reconstruction
    z: torch.Tensor  # (B, n_latents) dense sparse code
    pre: torch.Tensor  # (B, n_latents) pre-activations (needed for AuxK)
    values: torch.Tensor  # (B, k) top-k activations after ReLU
    indices: torch.Tensor  # (B, k) their latent indices


class TopKSAE(nn.Module):
    """TopK sparse autoencoder with a unit-norm decoder and a pre-encoder bias."""

    def __init__(self, d_in: int, n_latents: int, k: int, *, generator: torch.Generator | None = None):
        super().__init__()
        if d_in < 1 or n_latents < 1:
            raise ValueError("d_in and n_latents must be positive")
        if not 1 <= k <= n_latents:
            raise ValueError(f"k must be in [1, n_latents={n_latents}], got {k}")
        self.d_in, self.n_latents, self.k = int(d_in), int(n_latents), int(k)
        self.b_pre = nn.Parameter(torch.zeros(d_in))
        self.W_enc = nn.Parameter(torch.empty(n_latents, d_in))
        self.b_lat = nn.Parameter(torch.zeros(n_latents))
        self.W_dec = nn.Parameter(torch.empty(d_in, n_latents))
        self.set_directions(random_directions(d_in, n_latents, generator))

    # ------------------------------------------------------------------ init
    @torch.no_grad()
    def set_directions(self, directions: torch.Tensor) -> None:
        """Set decoder columns to ``directions`` (d_in x n_latents, normalised), tie the
        encoder to the decoder transpose and zero the latent bias."""
        W = directions.to(self.W_dec.device, torch.float32)
        W = W / W.norm(dim=0, keepdim=True).clamp_min(_EPS)
        self.W_dec.copy_(W)
        self.W_enc.copy_(W.T)
        self.b_lat.zero_()

    @torch.no_grad()
    def init_from_data(self, sample: np.ndarray, init: str = "kmeans", random_state: int | None = None) -> None:
        """Data-dependent initialisation from (a sample of) the training data.

        ``b_pre`` is the coordinate-wise median. ``init="kmeans"`` sets the decoder
        columns to the unit-normalised k-means centroids of the centred sample (extra
        columns, when n_latents exceeds the rows, are random); ``init="random"`` uses
        random unit directions.
        """
        if init not in INIT_MODES:
            raise ValueError(f"init must be one of {INIT_MODES}, got {init!r}")
        sample = np.asarray(sample, dtype=np.float32)
        if sample.ndim != 2 or sample.shape[1] != self.d_in or len(sample) == 0:
            raise ValueError(f"sample must have shape (n>0, {self.d_in}), got {sample.shape}")
        if not np.isfinite(sample).all():
            raise ValueError("training data contains NaN or infinite values")
        median = np.median(sample, axis=0).astype(np.float32)
        self.b_pre.copy_(torch.from_numpy(median))
        generator = _generator(random_state)
        directions = random_directions(self.d_in, self.n_latents, generator)
        if init == "kmeans":
            centroids = kmeans_directions(sample - median, self.n_latents, random_state)
            directions[:, : centroids.shape[1]] = centroids
        self.set_directions(directions)

    @torch.no_grad()
    def add_latents(self, directions: torch.Tensor) -> None:
        """Append latents with these decoder directions (d_in x n_new) after the existing ones.

        Existing latents keep their index and weights; the new ones get a tied encoder and zero bias.
        """
        W = directions.to(self.W_dec.device, torch.float32)
        W = W / W.norm(dim=0, keepdim=True).clamp_min(_EPS)
        self.W_dec = nn.Parameter(torch.cat([self.W_dec.data, W], dim=1))
        self.W_enc = nn.Parameter(torch.cat([self.W_enc.data, W.T], dim=0))
        self.b_lat = nn.Parameter(torch.cat([self.b_lat.data, torch.zeros(W.shape[1], device=W.device)]))
        self.n_latents += int(W.shape[1])

    # --------------------------------------------------------------- forward
    def encode_pre(self, x: torch.Tensor) -> torch.Tensor:
        """Pre-activations ``W_enc (x - b_pre) + b_lat``."""
        return F.linear(x - self.b_pre, self.W_enc, self.b_lat)

    def topk(self, pre: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Top-k pre-activations per row, ReLU-ed: ``(values, indices)`` of shape (B, k)."""
        values, indices = pre.topk(self.k, dim=-1)
        return F.relu(values), indices

    def encode_topk(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Sparse code as ``(values, indices)``; values may be 0 where ReLU cut them."""
        return self.topk(self.encode_pre(x))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Dense sparse code (B, n_latents) with at most k non-zeros per row."""
        values, indices = self.encode_topk(x)
        return _densify(values, indices, self.n_latents)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Reconstruction ``W_dec z + b_pre`` from a dense code."""
        return F.linear(z, self.W_dec, self.b_pre)

    def decode_topk(self, values: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        """Reconstruction from the ``(values, indices)`` form, without a dense code."""
        atoms = self.W_dec.T[indices]  # (B, k, d_in)
        return torch.einsum("bk,bkd->bd", values.to(atoms.dtype), atoms) + self.b_pre

    def forward(self, x: torch.Tensor) -> SAEOutput:
        pre = self.encode_pre(x)
        values, indices = self.topk(pre)
        z = _densify(values, indices, self.n_latents)
        return SAEOutput(self.decode(z), z, pre, values, indices)

    # ---------------------------------------------------------------- losses
    def auxk_loss(self, pre: torch.Tensor, dead: torch.Tensor, residual: torch.Tensor, k_aux: int) -> torch.Tensor:
        """AuxK loss: reconstruct the residual ``x - x̂`` (x̂ detached) from the top
        ``k_aux`` pre-activations among the ``dead`` latents, decoded without ``b_pre``,
        normalised by the residual's variance. Zero when no latent is dead."""
        n_dead = int(dead.sum())
        if n_dead == 0 or k_aux <= 0:
            return pre.new_zeros((), dtype=torch.float32)
        masked = pre.masked_fill(~dead, float("-inf"))
        values, indices = masked.topk(min(k_aux, n_dead), dim=-1, sorted=False)
        z_aux = _densify(F.relu(values), indices, self.n_latents)
        residual_hat = F.linear(z_aux, self.W_dec)
        loss = normalized_mse(residual_hat.float(), residual.float())
        return torch.nan_to_num(loss, nan=0.0, posinf=0.0, neginf=0.0)

    # --------------------------------------------------- decoder constraints
    @torch.no_grad()
    def remove_parallel_grad(self) -> None:
        """Project out of ``W_dec.grad`` the component parallel to each decoder column."""
        grad = self.W_dec.grad
        if grad is None:
            return
        W = self.W_dec
        coef = (grad * W).sum(0, keepdim=True) / W.pow(2).sum(0, keepdim=True).clamp_min(_EPS)
        grad.sub_(coef * W)

    @torch.no_grad()
    def normalize_decoder(self) -> None:
        """Rescale decoder columns to unit norm."""
        self.W_dec.div_(self.W_dec.norm(dim=0, keepdim=True).clamp_min(_EPS))


def normalized_mse(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``mean((x̂ - x)²) / mean((x - mean_batch(x))²)`` (FVU estimate on a batch)."""
    mse = (x_hat - x).pow(2).mean()
    var = (x - x.mean(dim=0, keepdim=True)).pow(2).mean()
    return mse / var.clamp_min(_EPS)


def random_directions(d_in: int, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """``n`` random unit vectors as the columns of a (d_in, n) matrix."""
    W = torch.randn(d_in, n, generator=generator)
    return W / W.norm(dim=0, keepdim=True).clamp_min(_EPS)


def kmeans_directions(centred: np.ndarray, n_latents: int, random_state: int | None) -> torch.Tensor:
    """Unit-normalised k-means centroids (d_in, ≤ n_latents) of centred data.

    Uses scikit-learn ``KMeans`` on small problems and ``MiniBatchKMeans`` on large
    ones; centroids that are (numerically) zero are dropped.
    """
    from sklearn.cluster import KMeans, MiniBatchKMeans

    # float64: scikit-learn's k-means++ seeding up-casts float32 distances chunk by chunk, which is slower than
    # handing it float64 at the same inertia.
    centred = np.asarray(centred, dtype=np.float64)
    # KMeans needs at least as many distinct points as clusters (only checked when cheap).
    n_distinct = len(np.unique(centred, axis=0)) if len(centred) <= 4 * n_latents else len(centred)
    n_clusters = min(n_latents, n_distinct)
    if n_clusters < 1:
        return torch.empty(centred.shape[1], 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning on duplicate points etc.
        if len(centred) * n_clusters <= 4_000_000:
            restarts = int(np.clip(KMEANS_RESTART_BUDGET // (len(centred) * n_clusters), 1, KMEANS_RESTARTS))
            km = KMeans(n_clusters, n_init=restarts, max_iter=100, random_state=random_state)
        else:
            km = MiniBatchKMeans(
                n_clusters,
                batch_size=2048,
                n_init=3,
                max_iter=50,
                random_state=random_state,
                init_size=min(len(centred), max(3 * n_clusters, 3 * 2048)),
            )
        km.fit(centred)
    centroids = torch.from_numpy(np.asarray(km.cluster_centers_, dtype=np.float32)).T
    norms = centroids.norm(dim=0)
    keep = norms > 1e-6 * max(float(norms.max()), _EPS)
    return centroids[:, keep] / norms[keep]


def _densify(values: torch.Tensor, indices: torch.Tensor, n_latents: int) -> torch.Tensor:
    z = values.new_zeros(*values.shape[:-1], n_latents)
    return z.scatter(-1, indices, values)


def _generator(random_state: int | None) -> torch.Generator:
    generator = torch.Generator()
    if random_state is None:
        generator.seed()
    else:
        generator.manual_seed(int(random_state))
    return generator
