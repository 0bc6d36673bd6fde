"""scikit-learn style estimator that trains a :class:`~sae.model.TopKSAE`.

Usage::

    sae = SparseAutoencoder(random_state=0).fit(embeddings)   # sizes from the corpus
    codes = sae.transform(embeddings)                          # (n, n_latents) float32
    values, indices = sae.encode_topk(embeddings)              # (n, k) each
    sae.save("runs/sae"); sae = SparseAutoencoder.load("runs/sae")
"""

from __future__ import annotations

import inspect
import math
import os
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

from . import io as sae_io
from . import metrics as sae_metrics
from .device import autocast, fast_matmul, resolve_device
from .model import (
    INIT_MODES,
    MAX_INIT_ROWS,
    TopKSAE,
    _generator,
    kmeans_directions,
    normalized_mse,
    random_directions,
)
from .sizing import (
    default_batch_size,
    default_dead_steps,
    default_epochs,
    default_growth,
    default_size,
)

#: partial_fit trains with ``lr * PARTIAL_LR_SCALE`` for ``epochs * PARTIAL_EPOCH_SCALE``.
PARTIAL_LR_SCALE = 0.5
PARTIAL_EPOCH_SCALE = 0.5
#: Below this many validation rows no split is made (and no early stopping happens).
MIN_VAL_ROWS = 10
#: Inputs up to this size (as float32) are copied to the training device whole.
RESIDENT_BYTES = 2 << 30
#: Rows per batch for transform / score.
EVAL_BATCH_SIZE = 4096
#: Relative improvement of the validation FVU that resets the patience counter.
MIN_REL_IMPROVEMENT = 1e-4


class NotFittedError(ValueError, AttributeError):
    """Raised when a method needs a fitted estimator."""


class SparseAutoencoder:
    """TopK sparse autoencoder with a scikit-learn like interface.

    Parameters
    ----------
    n_latents, k : dictionary size and active latents per row; ``None`` picks them
        from the corpus size with :func:`sae.sizing.default_size`.
    init : ``"kmeans"`` (decoder = k-means centroids of the centred data) or ``"random"``.
    lr : Adam learning rate.
    batch_size : rows per step; ``None`` → :func:`sae.sizing.default_batch_size`.
    epochs : passes over the training split; ``None`` → sample budget
        (:func:`sae.sizing.default_epochs`), which ``max_samples`` overrides.
    val_fraction : held-out share for early stopping (skipped below 10 rows).
    patience : epochs without validation improvement before stopping (``None``: never);
        the best state is restored.
    aux_coef, aux_k : AuxK weight and number of dead latents used (``None`` → 2k).
    dead_steps : steps without firing after which a latent is dead
        (``None`` → about one epoch, :func:`sae.sizing.default_dead_steps`).
    max_grad_norm : gradient clipping (``None`` or 0 disables).
    device : ``"auto"`` (CUDA > MPS > CPU), ``"cpu"``, ``"cuda"``, ``"mps"``.
    random_state : seeds init, split and shuffling; same seed + data → same weights on CPU.
    verbose : print per-epoch progress (tqdm bar when installed).
    progress : called with the training fraction in [0, 1]; raising from it aborts training.

    Attributes (after ``fit``)
    --------------------------
    model_ : the trained :class:`~sae.model.TopKSAE`.
    n_features_in_, n_latents_, k_ : sizes actually used.
    history_ : one dict per epoch (``phase``, ``epoch``, ``train_loss``, ``aux_loss``,
        ``val_loss``, ``dead_fraction``, ``n_steps``, ``lr``, ``seconds``).
    metrics_ : :meth:`score` on all rows given to the last ``fit``/``partial_fit``, plus
        ``n_samples`` and a ``firing_frequency`` summary.
    firing_frequency_ : share of those rows on which each latent fires, shape (n_latents,).
    steps_since_fired_ : per-latent dead-step counters (saved, so training can resume).
    n_steps_ : optimiser steps taken in total; ``best_epoch_`` : restored epoch or ``None``.
    batch_size_, dead_steps_, aux_k_, epochs_ : resolved values of the last training run.
    device_ : the ``torch.device`` used.
    """

    def __init__(
        self,
        n_latents: int | None = None,
        k: int | None = None,
        *,
        init: str = "kmeans",
        lr: float = 1e-3,
        batch_size: int | None = None,
        epochs: int | None = None,
        max_samples: int | None = None,
        val_fraction: float = 0.1,
        patience: int | None = 15,
        aux_coef: float = 1 / 32,
        aux_k: int | None = None,
        dead_steps: int | None = None,
        max_grad_norm: float | None = 1.0,
        device: str | torch.device = "auto",
        random_state: int | None = 0,
        verbose: bool = False,
        progress: Callable[[float], None] | None = None,
    ):
        self.n_latents = n_latents
        self.k = k
        self.init = init
        self.lr = lr
        self.batch_size = batch_size
        self.epochs = epochs
        self.max_samples = max_samples
        self.val_fraction = val_fraction
        self.patience = patience
        self.aux_coef = aux_coef
        self.aux_k = aux_k
        self.dead_steps = dead_steps
        self.max_grad_norm = max_grad_norm
        self.device = device
        self.random_state = random_state
        self.verbose = verbose
        self.progress = progress

    # ------------------------------------------------------------ params
    @classmethod
    def _param_names(cls) -> list[str]:
        return [p for p in inspect.signature(cls.__init__).parameters if p != "self"]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Constructor parameters (scikit-learn convention)."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any) -> SparseAutoencoder:
        """Set constructor parameters; returns ``self``."""
        valid = set(self._param_names())
        for name, value in params.items():
            if name not in valid:
                raise ValueError(f"unknown parameter {name!r}")
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        defaults = type(self)().get_params()
        changed = {k: v for k, v in self.get_params().items() if v is not defaults[k] and v != defaults[k]}
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in changed.items())})"

    # ------------------------------------------------------------ training
    def fit(self, X: np.ndarray, y: Any = None) -> SparseAutoencoder:
        """Initialise from ``X`` (n, d) and train; ``X`` may be a ``np.memmap``."""
        return self._fit_new(_check_array(X), self.epochs)

    def partial_fit(
        self, X: np.ndarray, epochs: int | None = None, *, lr: float | None = None, grow: int | None = None
    ) -> SparseAutoencoder:
        """Continue training the existing weights on ``X`` (or ``fit`` if not fitted).

        Latent indices keep their meaning: nothing is re-initialised or reordered.
        Defaults to half the learning rate and half the epochs of a fresh fit. Room for
        new concepts: ``grow`` new latents (default :func:`sae.sizing.default_growth`) are
        appended after the existing ones, initialised at the k-means centroids of the
        residuals of the rows the current model reconstructs worst; dead latents can also
        be revived by AuxK.
        """
        X = _check_array(X)
        if not hasattr(self, "model_"):
            return self._fit_new(X, epochs if epochs is not None else self.epochs)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} features, the model expects {self.n_features_in_}")
        if len(X) < 2:
            raise ValueError("need at least 2 samples to train")
        device = self.device_
        seed = None if self.random_state is None else int(self.random_state) * 1_000_003 + self.n_steps_ + 1
        generator = _generator(seed)
        train_idx, val_idx = self._split(len(X), generator)
        if epochs is None:
            epochs = self.epochs or default_epochs(len(train_idx), self.max_samples)
            epochs = max(1, math.ceil(epochs * PARTIAL_EPOCH_SCALE))
        rows = _Rows(X, device)
        self._report(0.0)
        n_new = default_growth(len(X), self.n_latents_) if grow is None else int(grow)
        if n_new > 0:
            self._grow(rows, train_idx, n_new, seed)
        with fast_matmul(device):
            self._train(rows, train_idx, val_idx, epochs, lr or self.lr * PARTIAL_LR_SCALE, generator, "partial_fit")
            self._finish(rows)
        return self

    def _grow(self, rows: _Rows, train_idx: torch.Tensor, n_new: int, seed: int | None) -> None:
        """Append ``n_new`` latents aimed at what the model reconstructs worst (its residuals)."""
        sample = train_idx[:MAX_INIT_ROWS]
        x = torch.from_numpy(np.ascontiguousarray(rows.numpy(sample))).to(self.device_)
        with torch.inference_mode():
            residual = (x - self.model_(x).x_hat).float()
        worst = residual.pow(2).sum(1).argsort(descending=True)[: max(n_new, len(sample) // 4)]
        directions = kmeans_directions(residual[worst].cpu().numpy(), n_new, seed)
        if directions.shape[1] < n_new:  # fewer distinct rows than new latents: fill with random directions
            extra = random_directions(self.n_features_in_, n_new - directions.shape[1], _generator(seed))
            directions = torch.cat([directions, extra], dim=1)
        self.model_.add_latents(directions)
        self.n_latents_ = self.model_.n_latents
        fresh = torch.zeros(n_new, dtype=torch.long, device=self.steps_since_fired_.device)
        self.steps_since_fired_ = torch.cat([self.steps_since_fired_, fresh])

    def _fit_new(self, X: np.ndarray, epochs: int | None) -> SparseAutoencoder:
        if self.init not in INIT_MODES:
            raise ValueError(f"init must be one of {INIT_MODES}, got {self.init!r}")
        n, d = X.shape
        if n < 2:
            raise ValueError("need at least 2 samples to train")
        size = default_size(n)
        n_latents = int(self.n_latents or size[0])
        k = int(self.k or min(size[1], n_latents))
        device = resolve_device(self.device)
        generator = _generator(self.random_state)
        train_idx, val_idx = self._split(n, generator)
        rows = _Rows(X, device)
        self._report(0.0)

        model = TopKSAE(d, n_latents, k, generator=generator)
        sample = train_idx[torch.randperm(len(train_idx), generator=generator)[:MAX_INIT_ROWS]].sort().values
        model.init_from_data(rows.numpy(sample), self.init, self.random_state)
        self.model_ = model.to(device)
        self.device_ = device
        self.n_features_in_, self.n_latents_, self.k_ = d, n_latents, k
        self.steps_since_fired_ = torch.zeros(n_latents, dtype=torch.long, device=device)
        self.n_steps_ = 0
        self.history_: list[dict[str, Any]] = []
        if epochs is None:
            epochs = default_epochs(len(train_idx), self.max_samples)
        with fast_matmul(device):
            self._train(rows, train_idx, val_idx, epochs, self.lr, generator, "fit")
            self._finish(rows)
        return self

    def _split(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Sorted train / validation row indices (validation ``None`` when too small)."""
        n_val = int(n * self.val_fraction)
        if n_val < MIN_VAL_ROWS or n - n_val < 2:
            return torch.arange(n), None
        perm = torch.randperm(n, generator=generator)
        return perm[n_val:].sort().values, perm[:n_val].sort().values

    def _train(
        self,
        rows: _Rows,
        train_idx: torch.Tensor,
        val_idx: torch.Tensor | None,
        epochs: int,
        lr: float,
        generator: torch.Generator,
        phase: str,
    ) -> None:
        model, device = self.model_, self.device_
        n_train = len(train_idx)
        batch_size = min(int(self.batch_size or default_batch_size(n_train)), n_train)
        n_batches = math.ceil(n_train / batch_size)
        dead_steps = int(self.dead_steps or default_dead_steps(n_train, batch_size))
        aux_k = int(self.aux_k or 2 * self.k_)
        self.batch_size_, self.dead_steps_, self.aux_k_, self.epochs_ = batch_size, dead_steps, aux_k, epochs

        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        total_steps, done = epochs * n_batches, 0
        best_val, best_state, bad_epochs = math.inf, None, 0
        self.best_epoch_: int | None = None
        bar = _progress_bar(epochs, self.verbose)
        try:
            for epoch in range(epochs):
                start = time.perf_counter()
                sums = torch.zeros(2, device=device)
                order = train_idx[torch.randperm(n_train, generator=generator)]
                for batch in order.tensor_split(n_batches):
                    x = rows.take(batch.sort().values)
                    sums += self._step(x, optimizer, dead_steps, aux_k)
                    done += 1
                    self._report(0.95 * done / total_steps)
                train_loss, aux_loss = (sums / n_batches).tolist()
                val_loss = self._evaluate(rows.batches(val_idx))["fvu"] if val_idx is not None else None
                record = {
                    "phase": phase,
                    "epoch": epoch + 1,
                    "train_loss": train_loss,
                    "aux_loss": aux_loss,
                    "val_loss": val_loss,
                    "dead_fraction": float((self.steps_since_fired_ >= dead_steps).float().mean()),
                    "n_steps": self.n_steps_,
                    "lr": lr,
                    "seconds": time.perf_counter() - start,
                }
                self.history_.append(record)
                _log(bar, record, self.verbose, epochs)
                if val_loss is None or self.patience is None:
                    continue
                if val_loss < best_val * (1 - MIN_REL_IMPROVEMENT):
                    best_val, bad_epochs = val_loss, 0
                    best_state = self._snapshot()
                    self.best_epoch_ = epoch + 1
                else:
                    bad_epochs += 1
                    if bad_epochs >= self.patience:
                        break
        finally:
            if bar is not None:
                bar.close()
        if best_state is not None:
            self._restore(best_state)

    def _step(self, x: torch.Tensor, optimizer: torch.optim.Optimizer, dead_steps: int, aux_k: int) -> torch.Tensor:
        """One optimiser step; returns ``[loss, aux_loss]`` (detached)."""
        model = self.model_
        model.train()
        dead = self.steps_since_fired_ >= dead_steps
        with autocast(self.device_):
            out = model(x)
            x_hat = out.x_hat.float()
            loss = normalized_mse(x_hat, x)
            if self.aux_coef:
                aux = model.auxk_loss(out.pre, dead, x - x_hat.detach(), aux_k)
            else:
                aux = loss.new_zeros(())
            total = loss + self.aux_coef * aux
        # Latents that fired in this batch reset their counter; others age by one step.
        hits = torch.zeros(dead.shape, device=dead.device).index_add_(
            0, out.indices.flatten(), (out.values > 0).flatten().float()
        )
        self.steps_since_fired_ = torch.where(hits > 0, 0, self.steps_since_fired_ + 1)
        self.n_steps_ += 1
        if not torch.isfinite(total):
            return torch.stack([loss.detach(), aux.detach()]).nan_to_num(0.0).float()
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        model.remove_parallel_grad()
        if self.max_grad_norm:
            torch.nn.utils.clip_grad_norm_(model.parameters(), self.max_grad_norm)
        optimizer.step()
        model.normalize_decoder()
        return torch.stack([loss.detach(), aux.detach()]).float()

    def _snapshot(self) -> dict[str, torch.Tensor]:
        state = {name: t.detach().clone() for name, t in self.model_.state_dict().items()}
        state["steps_since_fired"] = self.steps_since_fired_.clone()
        return state

    def _restore(self, state: dict[str, torch.Tensor]) -> None:
        state = dict(state)
        self.steps_since_fired_ = state.pop("steps_since_fired").to(self.device_)
        self.model_.load_state_dict(state)

    def _finish(self, rows: _Rows) -> None:
        """Metrics and firing frequencies on the whole training data."""
        result = self._evaluate(rows.batches())
        self.firing_frequency_ = result["firing_frequency"]
        self.metrics_ = {
            "fvu": result["fvu"],
            "l0": result["l0"],
            "dead_fraction": sae_metrics.dead_fraction(self.firing_frequency_),
            "n_latents": self.n_latents_,
            "k": self.k_,
            "n_samples": result["n"],
            "firing_frequency": sae_metrics.frequency_summary(self.firing_frequency_),
        }
        self._report(1.0)

    # ------------------------------------------------------------ inference
    def transform(self, X: np.ndarray, batch_size: int = EVAL_BATCH_SIZE) -> np.ndarray:
        """Dense activations, shape (n, n_latents), float32."""
        X = self._check_input(X)
        out = np.zeros((len(X), self.n_latents_), dtype=np.float32)
        for start, x in _Rows(X, self.device_, resident=False).slices(batch_size):
            with torch.inference_mode():
                out[start : start + len(x)] = self.model_.encode(x).cpu().numpy()
        return out

    def encode_topk(self, X: np.ndarray, batch_size: int = EVAL_BATCH_SIZE) -> tuple[np.ndarray, np.ndarray]:
        """Sparse codes: ``values`` (n, k) float32, descending, and ``indices`` (n, k) int64.
        Values can be 0 where ReLU cut a selected latent."""
        X = self._check_input(X)
        values = np.zeros((len(X), self.k_), dtype=np.float32)
        indices = np.zeros((len(X), self.k_), dtype=np.int64)
        for start, x in _Rows(X, self.device_, resident=False).slices(batch_size):
            with torch.inference_mode():
                v, i = self.model_.encode_topk(x)
            values[start : start + len(x)] = v.cpu().numpy()
            indices[start : start + len(x)] = i.cpu().numpy()
        return values, indices

    def decoder_directions(self) -> np.ndarray:
        """The decoder's columns as a (d, n_latents) float32 array: latent j's direction in embedding space."""
        self._check_fitted()
        return self.model_.W_dec.detach().float().cpu().numpy()

    def reconstruct(self, X: np.ndarray, batch_size: int = EVAL_BATCH_SIZE) -> np.ndarray:
        """Reconstructions x̂, shape (n, d), float32."""
        X = self._check_input(X)
        out = np.zeros((len(X), self.n_features_in_), dtype=np.float32)
        for start, x in _Rows(X, self.device_, resident=False).slices(batch_size):
            with torch.inference_mode():
                out[start : start + len(x)] = self.model_(x).x_hat.cpu().numpy()
        return out

    def inverse_transform(self, Z: np.ndarray) -> np.ndarray:
        """Decode dense codes (n, n_latents) back to the input space."""
        self._check_fitted()
        z = torch.as_tensor(np.asarray(Z, dtype=np.float32), device=self.device_)
        with torch.inference_mode():
            return self.model_.decode(z).cpu().numpy()

    def score(self, X: np.ndarray, batch_size: int = EVAL_BATCH_SIZE) -> dict[str, float]:
        """``fvu``, ``l0``, ``dead_fraction`` (latents that never fire on ``X``), sizes."""
        X = self._check_input(X)
        result = self._evaluate(_Rows(X, self.device_, resident=False).batches(batch_size=batch_size))
        return {
            "fvu": result["fvu"],
            "l0": result["l0"],
            "dead_fraction": sae_metrics.dead_fraction(result["firing_frequency"]),
            "n_latents": self.n_latents_,
            "k": self.k_,
        }

    def _evaluate(self, batches: Iterator[torch.Tensor]) -> dict[str, Any]:
        """Streaming FVU (batch sums accumulated in float64, centred on b_pre), L0 and
        firing frequency."""
        model = self.model_
        model.eval()
        centre = model.b_pre.detach()
        sse = sq = active = 0.0
        n = 0
        total = torch.zeros(self.n_features_in_, dtype=torch.float64)
        counts = torch.zeros(self.n_latents_, dtype=torch.long)
        with torch.inference_mode():
            for x in batches:
                values, indices = model.encode_topk(x)
                x_hat = model.decode_topk(values, indices)
                xc = x - centre
                sse += float((x_hat - x).pow(2).sum())  # per-batch float32, summed in float64
                sq += float(xc.pow(2).sum())
                total += xc.sum(0).cpu().double()
                fired = indices[values > 0].cpu()
                counts += torch.bincount(fired, minlength=self.n_latents_)
                active += float(fired.numel())
                n += len(x)
        variance = sq - float(total.pow(2).sum()) / max(n, 1)
        return {
            "fvu": sse / variance if variance > 0 else (0.0 if sse == 0 else math.inf),
            "l0": active / max(n, 1),
            "firing_frequency": (counts.double() / max(n, 1)).numpy(),
            "n": n,
        }

    # ------------------------------------------------------------ persistence
    def save(self, directory: str | os.PathLike) -> None:
        """Write ``model.safetensors`` + ``config.json`` into ``directory``."""
        self._check_fitted()
        tensors = dict(self.model_.state_dict())
        tensors["steps_since_fired"] = self.steps_since_fired_
        tensors["firing_frequency"] = torch.as_tensor(self.firing_frequency_, dtype=torch.float64)
        params = {k: v for k, v in self.get_params().items() if k not in ("progress", "device")}
        config = {
            "library": "sae",
            "class": type(self).__name__,
            "d_in": self.n_features_in_,
            "n_latents": self.n_latents_,
            "k": self.k_,
            "random_state": self.random_state,
            "n_steps": self.n_steps_,
            "params": params,
            "resolved": {
                "batch_size": self.batch_size_,
                "dead_steps": self.dead_steps_,
                "aux_k": self.aux_k_,
                "epochs": self.epochs_,
            },
            "metrics": self.metrics_,
            "firing_frequency_summary": sae_metrics.frequency_summary(self.firing_frequency_),
            "history": self.history_,
        }
        sae_io.save_state(directory, tensors, config)

    @classmethod
    def load(cls, directory: str | os.PathLike, device: str | torch.device = "auto") -> SparseAutoencoder:
        """Restore an estimator saved with :meth:`save` onto ``device``."""
        tensors, config = sae_io.load_state(directory)
        names = set(cls._param_names())
        est = cls(**{k: v for k, v in config["params"].items() if k in names}, device=device)
        est.device_ = resolve_device(device)
        d, m, k = int(config["d_in"]), int(config["n_latents"]), int(config["k"])
        model = TopKSAE(d, m, k, generator=_generator(0))  # weights are overwritten below
        model.load_state_dict({name: tensors[name] for name in model.state_dict()})
        est.model_ = model.to(est.device_)
        est.n_features_in_, est.n_latents_, est.k_ = d, m, k
        est.steps_since_fired_ = tensors["steps_since_fired"].to(est.device_)
        est.firing_frequency_ = tensors["firing_frequency"].numpy()
        est.n_steps_ = int(config["n_steps"])
        resolved = config.get("resolved", {})
        est.batch_size_, est.dead_steps_ = resolved.get("batch_size"), resolved.get("dead_steps")
        est.aux_k_, est.epochs_ = resolved.get("aux_k"), resolved.get("epochs")
        est.metrics_ = config.get("metrics", {})
        est.history_ = config.get("history", [])
        return est

    # ------------------------------------------------------------ helpers
    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit() first")

    def _check_input(self, X: np.ndarray) -> np.ndarray:
        self._check_fitted()
        X = _check_array(X, min_rows=0)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} features, the model expects {self.n_features_in_}")
        return X

    def _report(self, fraction: float) -> None:
        """Call ``progress`` at most about every 1 % (and always at 0 and 1)."""
        if self.progress is None:
            return
        last = getattr(self, "_last_progress", -1.0)
        if fraction in (0.0, 1.0) or fraction - last >= 0.01:
            self._last_progress = fraction
            self.progress(float(min(max(fraction, 0.0), 1.0)))


def warm_up() -> None:
    """Pay a first fit's one-time costs now (a worker process does it while it waits for work): the first optimiser
    imports ``torch._dynamo`` (1.3–2.1 s on a 2-core CPU) and k-means imports scikit-learn's clustering."""
    import sklearn.cluster  # noqa: F401

    torch.optim.Adam([torch.zeros(1, requires_grad=True)])


class _Rows:
    """Row access to an array on the training device; small inputs are made resident."""

    def __init__(self, X: np.ndarray, device: torch.device, resident: bool | None = None):
        self.X, self.device = X, device
        if resident is None:
            resident = (_zero_copy(X) and device.type == "cpu") or X.shape[0] * X.shape[1] * 4 <= RESIDENT_BYTES
        self.tensor = _to_tensor(X).to(device) if resident else None

    def take(self, idx: torch.Tensor) -> torch.Tensor:
        """Rows ``idx`` (CPU int64 tensor) as float32 on the device, in that order."""
        if self.tensor is not None:
            return self.tensor[idx.to(self.tensor.device)]
        return _to_tensor(self.X[idx.numpy()]).to(self.device, non_blocking=True)

    def numpy(self, idx: torch.Tensor) -> np.ndarray:
        """Rows ``idx`` as a float32 numpy array on the CPU."""
        if self.tensor is not None:
            return self.tensor[idx.to(self.tensor.device)].cpu().numpy()
        return np.asarray(self.X[idx.numpy()], dtype=np.float32)

    def batches(self, idx: torch.Tensor | None = None, batch_size: int = EVAL_BATCH_SIZE) -> Iterator[torch.Tensor]:
        """Batches of rows ``idx`` (all rows when ``None``)."""
        if idx is None:
            for _, x in self.slices(batch_size):
                yield x
            return
        for chunk in idx.split(batch_size):
            yield self.take(chunk)

    def slices(self, batch_size: int = EVAL_BATCH_SIZE) -> Iterator[tuple[int, torch.Tensor]]:
        """``(start, rows)`` over contiguous slices, in order."""
        for start in range(0, self.X.shape[0], batch_size):
            if self.tensor is not None:
                yield start, self.tensor[start : start + batch_size]
            else:
                yield start, _to_tensor(self.X[start : start + batch_size]).to(self.device, non_blocking=True)


def _check_array(X: Any, min_rows: int = 1) -> np.ndarray:
    if isinstance(X, torch.Tensor):
        X = X.detach().cpu().numpy()
    if not isinstance(X, np.ndarray):
        X = np.asarray(X, dtype=np.float32)
    if X.ndim != 2:
        raise ValueError(f"expected a 2-D array (n_samples, n_features), got shape {X.shape}")
    if X.shape[0] < min_rows or X.shape[1] < 1:
        raise ValueError(f"X has shape {X.shape}; need at least {min_rows} row(s) and 1 feature")
    return X


def _zero_copy(X: np.ndarray) -> bool:
    return X.dtype == np.float32 and X.flags.c_contiguous and X.flags.writeable


def _to_tensor(X: np.ndarray) -> torch.Tensor:
    """float32 CPU tensor; shares memory with ``X`` when it is a writeable float32 array."""
    if _zero_copy(X):
        return torch.from_numpy(np.asarray(X))
    return torch.from_numpy(np.array(X, dtype=np.float32, order="C", copy=True))


def _progress_bar(epochs: int, verbose: bool):
    if not verbose:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=epochs, desc="SAE", unit="epoch", file=sys.stderr)


def _log(bar: Any, record: dict[str, Any], verbose: bool, epochs: int) -> None:
    if not verbose:
        return
    val = record["val_loss"]
    summary = {
        "loss": f"{record['train_loss']:.4f}",
        "val": "-" if val is None else f"{val:.4f}",
        "dead": f"{record['dead_fraction']:.2f}",
    }
    if bar is not None:
        bar.set_postfix(summary, refresh=False)
        bar.update(1)
    elif record["epoch"] == 1 or record["epoch"] % max(1, epochs // 10) == 0:
        fields = " ".join(f"{k}={v}" for k, v in summary.items())
        print(f"[sae] epoch {record['epoch']}/{epochs} {fields}", file=sys.stderr)
