"""Theme-finding systems behind one interface: ``run(embeddings, texts, seed) -> SystemResult``.

Every system gets the same precomputed embeddings and returns the member rows of each theme it would show.

- ``sae``: the product's path (``worker.pipeline.smooth.smooth_embeddings`` → ``worker.pipeline.train.train_sae`` →
  activations → ``build_themes`` with the default :class:`~worker.pipeline.themes.ThemeOptions`); ``sae:n_neighbors=0``
  turns smoothing off; ``sae:min_cohesion=0.4`` (research only, the product shows every theme with its cohesion)
  leaves out the themes below that cohesion; ``sae:levels=0`` leaves out the broader groups and sub-themes of the
  half- and double-size SAEs (``worker.pipeline.levels``). Two rows: ``sae`` (the themes) and ``sae+groups`` (the
  themes with every group the product shows beside them).
- ``kmeans``: scikit-learn KMeans on the embeddings; ``k`` defaults to the number of gold labels with ≥ 10
  documents (an oracle k: the strongest plain-clustering reference), ``kmeans:k=128`` fixes it.
- ``bertopic``: BERTopic 0.17 with its defaults (UMAP seeded for reproducibility), embeddings passed to
  ``fit_transform``; topic -1 (outliers) is not a theme.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class SystemResult:
    themes: list[np.ndarray]
    seconds: float
    info: dict[str, Any] = field(default_factory=dict)


def parse_spec(spec: str) -> tuple[str, dict[str, str]]:
    """``"kmeans:k=128,foo=1"`` → ``("kmeans", {"k": "128", "foo": "1"})``."""
    name, _, rest = spec.partition(":")
    params = dict(p.split("=", 1) for p in rest.split(";") if p) if rest else {}
    return name.strip(), params


def run_system(spec: str, X: np.ndarray, texts: list[str], seed: int, n_gold_labels: int) -> SystemResult:
    name, params = parse_spec(spec)
    start = time.perf_counter()
    if name == "sae":
        themes, info = run_sae(X, seed, **params)
    elif name == "kmeans":
        k = int(params.get("k", n_gold_labels))
        themes, info = run_kmeans(X, seed, k)
    elif name == "bertopic":
        themes, info = run_bertopic(X, texts, seed)
    else:
        raise ValueError(f"unknown system {name!r}: sae, kmeans or bertopic")
    return SystemResult(themes, time.perf_counter() - start, info)


def run_sae(X: np.ndarray, seed: int, **params: str) -> tuple[list[np.ndarray], dict[str, Any]]:
    """The product's default SAE → themes path (parameters, e.g. ``n_latents=128``, override defaults); its groups
    (broader groups and sub-themes too, unless ``levels=0``) go to ``info["parents"]``."""
    from dataclasses import fields, replace

    from worker.pipeline import train
    from worker.pipeline.levels import LevelOptions, all_groups
    from worker.pipeline.smooth import SmoothOptions, neighbourhood, smooth_embeddings
    from worker.pipeline.themes import ThemeOptions, build_themes, cohesion

    theme_fields = {f.name for f in fields(ThemeOptions)}
    smooth_fields = {f.name for f in fields(SmoothOptions)}
    theme_params = {k: _num(v) for k, v in params.items() if k in theme_fields}
    smooth_params = {k: _num(v) for k, v in params.items() if k in smooth_fields}
    min_cohesion = float(params.pop("min_cohesion", 0.0))
    levels = bool(int(params.pop("levels", 1)))
    sae_params = {k: _num(v) for k, v in params.items() if k not in theme_fields | smooth_fields}
    smoothing = replace(SmoothOptions(seed=seed), **smooth_params)
    neighbours = neighbourhood(X, smoothing)
    X = smooth_embeddings(X, smoothing, neighbours=neighbours)
    sae = train.train_sae(X, seed=seed, device="cpu", **sae_params)
    acts = train.activations(sae, X)
    decoder = sae.model_.W_dec.detach().float().cpu().numpy()
    options = replace(ThemeOptions(), **theme_params)
    themes = build_themes(acts, decoder, options)
    if min_cohesion > 0 and neighbours.shape[1]:
        themes = [t for t in themes if cohesion(t.members, neighbours) >= min_cohesion]
    groups = all_groups(themes, decoder, X, np.arange(len(X)), int(sae.n_latents_),
                        LevelOptions(seed=seed) if levels else None, options)  # fmt: skip
    info = {"n_latents": int(sae.n_latents_), "k": int(sae.k_), "fvu": round(float(sae.metrics_["fvu"]), 4),
            "epochs": sae.epochs_, "best_epoch": sae.best_epoch_,
            "n_sub_themes": sum(g.level == 1 for g in groups), "parents": [g.members for g in groups]}  # fmt: skip
    return [t.members for t in themes], info


def run_kmeans(X: np.ndarray, seed: int, k: int) -> tuple[list[np.ndarray], dict[str, Any]]:
    from sklearn.cluster import KMeans

    k = max(1, min(k, len(X)))
    labels = KMeans(k, n_init=1, random_state=seed).fit_predict(X)
    return [np.flatnonzero(labels == c) for c in range(k) if (labels == c).any()], {"k": k}


def run_bertopic(X: np.ndarray, texts: list[str], seed: int) -> tuple[list[np.ndarray], dict[str, Any]]:
    try:
        from bertopic import BERTopic
        from umap import UMAP
    except ImportError as exc:  # pragma: no cover - optional extra
        raise RuntimeError("bertopic is not installed: pip install 'feedback-themes[bench]'") from exc
    # BERTopic's default UMAP, with a seed so that runs are reproducible.
    umap_model = UMAP(n_neighbors=15, n_components=5, min_dist=0.0, metric="cosine", low_memory=False,
                      random_state=seed)  # fmt: skip
    topics, _ = BERTopic(umap_model=umap_model).fit_transform(texts, embeddings=X)
    topics = np.asarray(topics)
    ids = sorted(set(topics.tolist()) - {-1})
    return [np.flatnonzero(topics == t) for t in ids], {"n_topics": len(ids)}


def _num(v: str) -> Any:
    for cast in (int, float):
        try:
            return cast(v)
        except ValueError:
            pass
    if v in ("None", "none"):
        return None
    return v
