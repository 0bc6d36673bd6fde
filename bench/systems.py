"""Theme-finding systems behind one interface: ``run_system(spec, embeddings, texts, seed, n_gold) -> SystemResult``
(what ``python -m bench quality --systems ...`` runs).

Every system gets the same texts and their whole-comment embeddings and returns the member rows (comments) of each
theme it would show.

- ``sae``: the product's path, :func:`worker.pipeline.analyze.analyze` on the texts (spans or whole comments as the
  product decides, normalised and embedded through the benchmark cache → smoothing → SAE → themes → tree, default
  :class:`~worker.pipeline.analyze.AnalysisOptions` on the CPU). Parameters after a colon,
  separated by ``;``, override the defaults: any field of :class:`~worker.pipeline.themes.ThemeOptions` (e.g.
  ``sae:min_size=10``) or :class:`~worker.pipeline.smooth.SmoothOptions` (``sae:n_neighbors=0`` turns smoothing
  off), the SAE's ``n_latents`` and ``k``; ``levels=0`` leaves out the sub-themes of the double-size SAE
  (``worker.pipeline.tree``); ``names=0`` names nodes by their keywords; ``min_cohesion=0.4`` (research only: the
  product shows every theme with its cohesion) leaves out the themes below that cohesion, the tree then being that of
  the themes kept; ``spans=0`` analyses whole comments, ``spans=1`` their sentences (the default follows the product's),
  ``max_words``/``min_words`` set how spans are cut; the units are normalised and embedded as the product does,
  through the benchmark cache. Two rows: ``sae`` (the themes) and ``sae+tree`` (every node of the tree the product shows:
  categories, themes, sub-themes).
- ``kmeans``: scikit-learn KMeans on the embeddings; ``k`` defaults to the number of gold labels with ≥ 10
  documents (an oracle k: the strongest plain-clustering reference), ``kmeans:k=128`` fixes it.
- ``kmeans-spans``: the same on the embeddings of the comments' spans (sentences, :mod:`worker.pipeline.spans`); a
  comment belongs to each cluster one of its spans is in.
- ``bertopic``: BERTopic 0.17 with its defaults (UMAP seeded for reproducibility), embeddings passed to
  ``fit_transform``; topic -1 (outliers) is not a theme.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd


@dataclass
class SystemResult:
    themes: list[np.ndarray]
    seconds: float
    info: dict[str, Any] = field(default_factory=dict)


def parse_spec(spec: str) -> tuple[str, dict[str, str]]:
    """``"sae:n_latents=128;levels=0"`` → ``("sae", {"n_latents": "128", "levels": "0"})``."""
    name, _, rest = spec.partition(":")
    params = dict(p.split("=", 1) for p in rest.split(";") if p) if rest else {}
    return name.strip(), params


def run_system(spec: str, X: np.ndarray, texts: list[str], seed: int, n_gold_labels: int) -> SystemResult:
    name, params = parse_spec(spec)
    start = time.perf_counter()
    if name == "sae":
        themes, info = run_sae(X, seed, texts, **params)
    elif name == "kmeans":
        k = int(params.get("k", n_gold_labels))
        themes, info = run_kmeans(X, seed, k)
    elif name == "kmeans-spans":
        themes, info = run_kmeans_spans(texts, seed, int(params.get("k", n_gold_labels)))
    elif name == "bertopic":
        themes, info = run_bertopic(X, texts, seed)
    else:
        raise ValueError(f"unknown system {name!r}: sae, kmeans, kmeans-spans or bertopic")
    return SystemResult(themes, time.perf_counter() - start, info)


#: SAE parameters of ``sae:...`` specs: the :class:`~worker.pipeline.analyze.AnalysisOptions` fields they set.
SAE_PARAMS = ("n_latents", "k")


def run_sae(X: np.ndarray, seed: int, texts: list[str] | None = None,
            **params: str) -> tuple[list[np.ndarray], dict[str, Any]]:  # fmt: skip
    """The product's analysis (:func:`run_sae_analysis`): the themes' member rows, and in ``info`` the SAE's figures
    and, under ``"parents"``, the member rows of the tree's other nodes (categories, sub-themes)."""
    analysis = run_sae_analysis(X, seed, texts, **params)
    sae, others = analysis.sae, [*analysis.categories, *analysis.sub_themes]
    info = {"n_latents": int(sae.n_latents_), "k": int(sae.k_), "fvu": round(float(sae.metrics_["fvu"]), 4),
            "epochs": sae.epochs_, "best_epoch": sae.best_epoch_, "spans": len(analysis.spans),
            "n_categories": len(analysis.categories), "n_sub_themes": len(analysis.sub_themes),
            "parents": [n.members for n in others]}  # fmt: skip
    return [t.members for t in analysis.themes], info


def run_sae_analysis(X: np.ndarray, seed: int, texts: list[str] | None = None, **params: str) -> Any:
    """The product's :class:`~worker.pipeline.analyze.Analysis` of the texts (parameters as in the module
    docstring). With ``texts``, the units (spans, or whole comments with ``spans=0``) are embedded as the product
    embeds them (normalised) through the benchmark cache; without, ``X`` (one embedding per document) is analysed
    as whole comments. Sentiment is not read: every document is neutral."""
    from dataclasses import fields, replace

    from worker.pipeline.analyze import AnalysisOptions, analyze, find_tree
    from worker.pipeline.smooth import SmoothOptions
    from worker.pipeline.spans import SpanOptions
    from worker.pipeline.themes import ThemeOptions
    from worker.pipeline.tree import TreeOptions

    params = dict(params)
    min_cohesion = float(params.pop("min_cohesion", 0.0))
    spans = bool(int(params.pop("spans", int(SpanOptions().enabled)))) and texts is not None
    tree = TreeOptions(sub_themes=bool(int(params.pop("levels", 1))))
    names = bool(int(params.pop("names", 1)))
    theme_fields = {f.name for f in fields(ThemeOptions)}
    smooth_fields = {f.name for f in fields(SmoothOptions)} - {"seed"}  # the analysis seeds smoothing itself
    span_fields = {f.name for f in fields(SpanOptions)} - {"enabled"}
    unknown = set(params) - theme_fields - smooth_fields - span_fields - set(SAE_PARAMS)
    if unknown:
        raise ValueError(f"unknown sae parameters {sorted(unknown)}: ThemeOptions, SmoothOptions or SpanOptions "
                         f"fields, {', '.join(SAE_PARAMS)}, levels, names, spans, min_cohesion")  # fmt: skip
    options = AnalysisOptions(
        device="cpu",
        seed=seed,
        backend="torch",
        batch_size=64,
        smoothing=replace(SmoothOptions(), **{k: _num(v) for k, v in params.items() if k in smooth_fields}),
        themes=replace(ThemeOptions(), span_sentiment_weight=0,
                       **{k: _num(v) for k, v in params.items() if k in theme_fields}),  # fmt: skip
        tree=tree,
        names=names,
        spans=SpanOptions(enabled=spans, **{k: _num(v) for k, v in params.items() if k in span_fields}),
        **{k: _num(v) for k, v in params.items() if k in SAE_PARAMS},
    )
    documents = unscored_documents(len(X), texts)
    if texts is not None:
        analysis = analyze(documents, options, cache=bench_cache())
    else:
        analysis = analyze(documents, options, embeddings=X)
    if min_cohesion > 0 and analysis.embedded.neighbours is not None and analysis.embedded.neighbours.shape[1]:
        analysis.themes = [t for t in analysis.themes if t.cohesion is not None and t.cohesion >= min_cohesion]
        kept = find_tree(analysis.sae, analysis.themes, analysis.embedded, analysis.documents, analysis.units,
                         options)  # fmt: skip
        analysis.categories, analysis.sub_themes = kept.categories, kept.sub_themes
    return analysis


def bench_cache():
    """The benchmarks' embedding cache (``bench.datasets.embed``'s): plain torch float32 vectors by text."""
    from bench.datasets import ROOT
    from worker.pipeline.embed_cache import EmbeddingCache

    return EmbeddingCache(ROOT / "data" / "bench-cache")


def unscored_documents(n: int, texts: list[str] | None = None) -> pd.DataFrame:
    """``n`` documents for :func:`~worker.pipeline.analyze.analyze` with precomputed embeddings: ids ``0..n-1``,
    the texts (``""`` when not given: the themes then have no keywords), no rating or date, and a neutral sentiment
    already set, so that the analysis scores nothing and loads no model (the figures here are about themes)."""
    return pd.DataFrame({"doc_id": [str(i) for i in range(n)], "text": list(texts) if texts is not None else [""] * n,
                         "rating": np.nan, "date": None, "sentiment_score": 0.0,
                         "sentiment_label": "neutral"})  # fmt: skip


def run_kmeans(X: np.ndarray, seed: int, k: int) -> tuple[list[np.ndarray], dict[str, Any]]:
    from sklearn.cluster import KMeans

    k = max(1, min(k, len(X)))
    labels = KMeans(k, n_init=1, random_state=seed).fit_predict(X)
    return [np.flatnonzero(labels == c) for c in range(k) if (labels == c).any()], {"k": k}


def run_kmeans_spans(texts: list[str], seed: int, k: int) -> tuple[list[np.ndarray], dict[str, Any]]:
    """k-means on the embeddings of the comments' spans (the product's segmentation and normalisation); a comment is
    a member of a cluster when one of its spans is."""
    from bench.datasets import embed
    from worker.pipeline.spans import split_spans

    spans = split_spans(texts)
    clusters, info = run_kmeans(embed(spans.model_text), seed, k)
    return [np.unique(spans.doc[c]) for c in clusters], {**info, "spans": len(spans)}


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
