"""The whole analysis in one process: ingest → embed → sentiment → smooth + train → themes → report.

The CLI runs :func:`analyze`; the Celery tasks run the same stage functions one by one and store what they make.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from service.settings import DEFAULT_MODEL
from worker.keywords import term_counts
from worker.stages import embed, sentiment, train
from worker.stages.ingest import IngestResult
from worker.stages.levels import LevelOptions, all_groups
from worker.stages.smooth import SmoothOptions, neighbourhood, smooth_embeddings
from worker.stages.report import themes_document
from worker.stages.themes import (DocumentVectors, Theme, ThemeOptions, build_themes, cohesion, describe_groups,
                                  describe_themes)

Terms = tuple[sp.csr_matrix, np.ndarray]
STAGES = ("ingest", "embed", "sentiment", "train", "themes", "report")
StageProgress = Callable[[str, float], None]


@dataclass
class AnalysisOptions:
    """Everything that changes an analysis besides the input."""

    model: str = DEFAULT_MODEL
    device: str = "auto"
    seed: int = 0
    n_latents: int | None = None
    k: int | None = None
    batch_size: int = 32
    cache_dir: Path | None = None
    smoothing: SmoothOptions = field(default_factory=SmoothOptions)
    themes: ThemeOptions = field(default_factory=ThemeOptions)
    levels: LevelOptions | None = field(default_factory=LevelOptions)  # None: no broader groups / sub-themes


@dataclass
class Embedded:
    """Embeddings of the distinct texts, per document the row of its text, and what the SAE is given (the
    smoothed embeddings, see :func:`smooth`; the embeddings themselves until then)."""

    vectors: np.ndarray
    inverse: np.ndarray
    n_encoded: int
    smoothed: np.ndarray | None = None
    neighbours: np.ndarray | None = None  # (unique texts, k) nearest neighbours of each distinct text

    @property
    def sae_inputs(self) -> np.ndarray:
        return self.vectors if self.smoothed is None else self.smoothed

    def per_document(self) -> DocumentVectors:
        return DocumentVectors(self.vectors, self.inverse)


@dataclass
class Analysis:
    """The result of an analysis: documents (with sentiment), themes, theme groups, the themes.json object, the SAE."""

    documents: pd.DataFrame
    themes: list[Theme]
    document: dict[str, Any]
    sae: Any
    counts: dict[str, int]
    groups: list[Theme] = field(default_factory=list)


def resolve_device(name: str) -> str:
    """``auto`` → the best device present (CUDA > MPS > CPU), else the name as given."""
    from sae.device import resolve_device as resolve

    return str(resolve(name))


def embed_documents(
    documents: pd.DataFrame,
    options: AnalysisOptions,
    progress: Callable[[float], None] | None = None,
    cache: Any = None,
) -> Embedded:
    """Embed each distinct text once, reusing a cache: the given one, else the on-disk one when configured."""
    texts, inverse = embed.unique_texts(documents["text"].tolist())
    if cache is None and options.cache_dir:
        cache = embed.EmbeddingCache(options.cache_dir)
    try:
        vectors, n_encoded = embed.embed_texts(
            texts, options.model, device=resolve_device(options.device), batch_size=options.batch_size,
            cache=cache, progress=progress,
        )  # fmt: skip
    finally:
        if cache is not None:
            cache.close()
    return Embedded(vectors, inverse, n_encoded)


def smooth(embedded: Embedded, options: SmoothOptions, device: str = "cpu") -> Embedded:
    """The embedded texts with their neighbours and SAE inputs: each embedding pulled towards its neighbours."""
    neighbours = neighbourhood(embedded.vectors, options, resolve_device(device))
    smoothed = smooth_embeddings(embedded.vectors, options, neighbours=neighbours)
    return replace(embedded, smoothed=smoothed, neighbours=neighbours)


def anchor_scores(embedded: Embedded, options: AnalysisOptions) -> np.ndarray:
    """Per document, the anchor sentiment score of its text (:func:`worker.stages.sentiment.anchor_scores`), the
    anchor sentences embedded by the same model and backend as the documents."""
    anchors, _ = embed.embed_texts(list(sentiment.ANCHORS), options.model, device=resolve_device(options.device),
                                   batch_size=options.batch_size)  # fmt: skip
    return sentiment.anchor_scores(embedded.vectors, anchors)[embedded.inverse]


def add_sentiment(documents: pd.DataFrame, anchors: np.ndarray | None = None) -> pd.DataFrame:
    """A copy of the documents with ``sentiment_score`` and ``sentiment_label`` columns: VADER read for feedback,
    blended with the documents' ``anchors`` scores when given (:func:`anchor_scores`)."""
    scores = sentiment.score_texts(documents["text"].tolist())
    if anchors is not None:
        scores = sentiment.blend(scores, anchors)
    return documents.assign(sentiment_score=scores, sentiment_label=sentiment.label_scores(scores))


def find_themes(sae: Any, embedded: Embedded, documents: pd.DataFrame, options: ThemeOptions,
                terms: Terms | None = None) -> list[Theme]:  # fmt: skip
    """Themes of the documents under a fitted SAE, described and sorted by size (``terms``: see :func:`count_terms`)."""
    acts = train.activations(sae, embedded.sae_inputs)[embedded.inverse]
    themes = build_themes(acts, decoder_of(sae), options)
    rate_cohesion(themes, embedded)
    return describe_themes(themes, documents, embedded.per_document(), options, terms)


def find_groups(sae: Any, themes: list[Theme], embedded: Embedded, documents: pd.DataFrame, options: ThemeOptions,
                terms: Terms | None = None, levels: LevelOptions | None = None, device: str = "cpu") -> list[Theme]:  # fmt: skip
    """Theme groups around the themes, described and sorted by size: broader subjects (themes whose features point
    the same way; with ``levels``, also the themes of a smaller SAE) and, with ``levels``, sub-themes (the themes of a
    larger SAE, :mod:`worker.stages.levels`)."""
    groups = all_groups(themes, decoder_of(sae), embedded.sae_inputs, embedded.inverse, int(sae.n_latents_), levels,
                        options, resolve_device(device))  # fmt: skip
    groups = describe_groups(groups, documents, embedded.per_document(), options, terms)
    return rate_cohesion(groups, embedded)


def rate_cohesion(themes: list[Theme], embedded: Embedded) -> list[Theme]:
    """Set each theme's :func:`~worker.stages.themes.cohesion` from the neighbours found while smoothing (left
    ``None`` without them)."""
    if embedded.neighbours is not None and embedded.neighbours.shape[1]:
        for theme in themes:
            theme.cohesion = cohesion(embedded.inverse[theme.members], embedded.neighbours)
    return themes


def count_terms(documents: pd.DataFrame) -> Terms:
    """The documents' term counts, counted once for the keywords of both themes and groups."""
    return term_counts(documents["text"].tolist())


def decoder_of(sae: Any) -> np.ndarray:
    """The SAE's decoder as a (d, n_latents) float32 array."""
    return sae.model_.W_dec.detach().float().cpu().numpy()


def metadata(sae: Any, options: AnalysisOptions, counts: dict[str, int]) -> dict[str, Any]:
    """The ``metadata`` block of themes.json (besides the document and theme counts)."""
    return {
        "model": options.model,
        "sae": train.sae_summary(sae),
        "smoothing": {"n_neighbors": options.smoothing.n_neighbors, "weight": options.smoothing.weight},
        "levels": None if options.levels is None else {"broader": options.levels.broader, "finer": options.levels.finer},
        "seed": options.seed,
        "counts": counts,
        "created_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def analyze(
    ingested: IngestResult,
    options: AnalysisOptions = AnalysisOptions(),
    progress: StageProgress | None = None,
    previous_sae: Path | None = None,
) -> Analysis:
    """Run every stage after ingest in this process."""

    def report(stage: str) -> Callable[[float], None]:
        return (lambda f: progress(stage, f)) if progress else (lambda f: None)

    documents = ingested.documents
    counts = dict(ingested.counts)
    report("ingest")(1.0)
    embedded = embed_documents(documents, options, report("embed"))
    counts["embedded"] = embedded.n_encoded
    counts["unique_texts"] = len(embedded.vectors)
    documents = add_sentiment(documents, anchor_scores(embedded, options))
    report("sentiment")(1.0)
    embedded = smooth(embedded, options.smoothing, options.device)
    sae = train.train_sae(
        embedded.sae_inputs, n_latents=options.n_latents, k=options.k, seed=options.seed,
        device=options.device, progress=report("train"), previous=previous_sae,
    )  # fmt: skip
    terms = count_terms(documents)
    themes = find_themes(sae, embedded, documents, options.themes, terms)
    levels = None if options.levels is None else replace(options.levels, seed=options.seed)
    groups = find_groups(sae, themes, embedded, documents, options.themes, terms, levels, options.device)
    report("themes")(1.0)
    document = themes_document(themes, documents, metadata(sae, options, counts), groups)
    return Analysis(documents=documents, themes=themes, document=document, sae=sae, counts=counts, groups=groups)
