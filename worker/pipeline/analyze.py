"""The one analysis: documents → embeddings → sentiment → smoothing + SAE → themes and groups → themes.json.

:func:`analyze` is the only place the stages are put in order; the CLI, the job runner and the benchmarks all call
it. It is pure computation: everything that changes the result is in :class:`AnalysisOptions` or the arguments
(no settings, no database, no environment); the caller stores or writes what it returns.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from worker.pipeline import sentiment
from worker.pipeline.defaults import DEFAULT_MODEL
from worker.pipeline.embed_cache import VectorCache
from worker.pipeline.embed_models import Backend
from worker.pipeline.keywords import term_counts
from worker.pipeline.levels import LevelOptions, all_groups
from worker.pipeline.output import themes_document
from worker.pipeline.smooth import SmoothOptions, neighbourhood, smooth_embeddings
from worker.pipeline.themes import (
    DocumentVectors,
    Theme,
    ThemeOptions,
    build_themes,
    cohesion,
    describe_groups,
    describe_themes,
)

Terms = tuple[sp.csr_matrix, np.ndarray]
STAGES = ("embed", "sentiment", "train", "themes")
StageProgress = Callable[[str, float], None]


@dataclass
class AnalysisOptions:
    """Everything that changes an analysis besides the documents. ``seed`` seeds every stage (smoothing and levels
    included); ``backend``, ``quantize``, ``max_seq_length``, ``export_dir`` and ``calibration_csv`` choose how the
    model runs (:func:`worker.pipeline.embed_models.resolve_backend`)."""

    model: str = DEFAULT_MODEL
    device: str = "auto"
    seed: int = 0
    n_latents: int | None = None
    k: int | None = None
    batch_size: int = 32
    backend: str = "auto"
    quantize: str = "none"
    max_seq_length: int | None = None
    export_dir: Path | None = None
    calibration_csv: Path | None = None
    smoothing: SmoothOptions = field(default_factory=SmoothOptions)
    themes: ThemeOptions = field(default_factory=ThemeOptions)
    levels: LevelOptions | None = field(default_factory=LevelOptions)  # None: no broader groups / sub-themes

    @property
    def resolved_device(self) -> str:
        """``auto`` → the best device present (CUDA > MPS > CPU), else the name as given."""
        return resolve_device(self.device)

    def embedding_backend(self) -> Backend:
        """The backend that embeds the texts under these options."""
        from worker.pipeline.embed_models import resolve_backend

        return resolve_backend(self.model, self.resolved_device, self.backend, self.quantize, self.max_seq_length,
                               self.export_dir, self.calibration_csv)  # fmt: skip


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
    """What :func:`analyze` returns: the documents (with sentiment), themes, theme groups, the themes.json object,
    the fitted SAE, counts, the embeddings, and seconds per stage."""

    documents: pd.DataFrame
    themes: list[Theme]
    document: dict[str, Any]
    sae: Any
    counts: dict[str, int]
    groups: list[Theme] = field(default_factory=list)
    embedded: Embedded | None = None
    seconds: dict[str, float] = field(default_factory=dict)


def resolve_device(name: str) -> str:
    """``auto`` → the best device present (CUDA > MPS > CPU), else the name as given."""
    from sae.device import resolve_device as resolve

    return str(resolve(name))


def analyze(
    documents: pd.DataFrame,
    options: AnalysisOptions = AnalysisOptions(),
    *,
    progress: StageProgress | None = None,
    cache: VectorCache | None = None,
    embeddings: np.ndarray | None = None,
    previous_sae: str | Path | None = None,
    counts: dict[str, int] | None = None,
) -> Analysis:
    """Find the themes of ``documents`` (columns ``doc_id``, ``text``, ``rating``, ``date``; rows that already have a
    ``sentiment_score`` keep it).

    ``cache`` reuses stored embeddings; ``embeddings`` gives one precomputed vector per document instead (the
    benchmarks); ``previous_sae`` is a saved SAE to update rather than a new one to fit (feature ids keep their
    meaning); ``counts`` go into the metadata with the embedding counts added; ``progress(stage, fraction)`` is
    called per stage of :data:`STAGES`.
    """
    from worker.pipeline import train  # torch: imported when an analysis runs

    def progress_of(stage: str) -> Callable[[float], None]:
        return (lambda f: progress(stage, f)) if progress else (lambda f: None)

    seconds: dict[str, float] = {}
    clock = [time.perf_counter()]

    def start(stage: str) -> None:
        clock[0] = time.perf_counter()
        progress_of(stage)(0.0)

    def done(stage: str) -> None:
        seconds[stage] = round(time.perf_counter() - clock[0], 3)
        progress_of(stage)(1.0)

    start("embed")
    if embeddings is None:
        embedded = embed_documents(documents, options, progress_of("embed"), cache)
    else:
        embedded = Embedded(np.asarray(embeddings, dtype=np.float32), np.arange(len(documents)), 0)
    done("embed")
    start("sentiment")
    documents = add_sentiment(documents, embedded, options)
    done("sentiment")
    start("train")
    embedded = smooth(embedded, replace(options.smoothing, seed=options.seed), options.device)
    sae = train.train_sae(
        embedded.sae_inputs, n_latents=options.n_latents, k=options.k, seed=options.seed,
        device=options.device, progress=progress_of("train"), previous=previous_sae,
    )  # fmt: skip
    done("train")
    start("themes")
    terms = count_terms(documents)
    themes = find_themes(sae, embedded, documents, options.themes, terms)
    levels = None if options.levels is None else replace(options.levels, seed=options.seed)
    groups = find_groups(sae, themes, embedded, documents, options.themes, terms, levels, options.device)
    counts = {**(counts or {}), "embedded": embedded.n_encoded, "unique_texts": len(embedded.vectors)}
    document = themes_document(themes, documents, metadata(sae, options, counts), groups)
    done("themes")
    return Analysis(documents=documents, themes=themes, document=document, sae=sae, counts=counts, groups=groups,
                    embedded=embedded, seconds=seconds)  # fmt: skip


def embed_documents(
    documents: pd.DataFrame,
    options: AnalysisOptions,
    progress: Callable[[float], None] | None = None,
    cache: VectorCache | None = None,
) -> Embedded:
    """Embed each distinct text once, reusing the cache when given (closed afterwards)."""
    from worker.pipeline import embed

    texts, inverse = embed.unique_texts(documents["text"].tolist())
    try:
        vectors, n_encoded = embed.embed_texts(
            texts, options.model, device=options.resolved_device, batch_size=options.batch_size,
            cache=cache, progress=progress, backend=options.embedding_backend(),
        )  # fmt: skip
    finally:
        if cache is not None:
            cache.close()
    return Embedded(vectors, inverse, n_encoded)


def anchor_scores(embedded: Embedded, options: AnalysisOptions) -> np.ndarray:
    """Per document, the anchor sentiment score of its text (:func:`worker.pipeline.sentiment.anchor_scores`), the
    anchor sentences embedded by the same model and backend as the documents."""
    from worker.pipeline import embed

    anchors, _ = embed.embed_texts(list(sentiment.ANCHORS), options.model, device=options.resolved_device,
                                   batch_size=options.batch_size, backend=options.embedding_backend())  # fmt: skip
    return sentiment.anchor_scores(embedded.vectors, anchors)[embedded.inverse]


def add_sentiment(documents: pd.DataFrame, embedded: Embedded, options: AnalysisOptions) -> pd.DataFrame:
    """A copy of the documents with ``sentiment_score`` and ``sentiment_label`` for every row: rows scored before
    keep theirs; the others get VADER read for feedback, blended with the anchor scores of their embeddings."""
    documents = documents.copy()
    if "sentiment_score" not in documents:
        documents["sentiment_score"] = np.nan
        documents["sentiment_label"] = None
    todo = documents["sentiment_score"].isna().to_numpy()
    if todo.any():  # the anchors need the model: it is loaded only when something is left to score
        scores = sentiment.blend(sentiment.score_texts(documents.loc[todo, "text"].tolist()),
                                 anchor_scores(embedded, options)[todo])  # fmt: skip
        documents.loc[todo, "sentiment_score"] = scores.astype(float)
        documents.loc[todo, "sentiment_label"] = sentiment.label_scores(scores)
    documents["sentiment_score"] = documents["sentiment_score"].astype(float)
    return documents


def smooth(embedded: Embedded, options: SmoothOptions, device: str = "cpu") -> Embedded:
    """The embedded texts with their neighbours and SAE inputs: each embedding pulled towards its neighbours."""
    neighbours = neighbourhood(embedded.vectors, options, resolve_device(device))
    smoothed = smooth_embeddings(embedded.vectors, options, neighbours=neighbours)
    return replace(embedded, smoothed=smoothed, neighbours=neighbours)


def find_themes(sae: Any, embedded: Embedded, documents: pd.DataFrame, options: ThemeOptions,
                terms: Terms | None = None) -> list[Theme]:  # fmt: skip
    """Themes of the documents under a fitted SAE, described and sorted by size (``terms``: see :func:`count_terms`)."""
    from worker.pipeline import train

    acts = train.activations(sae, embedded.sae_inputs)[embedded.inverse]
    themes = build_themes(acts, sae.decoder_directions(), options)
    rate_cohesion(themes, embedded)
    return describe_themes(themes, documents, embedded.per_document(), options, terms)


def find_groups(sae: Any, themes: list[Theme], embedded: Embedded, documents: pd.DataFrame, options: ThemeOptions,
                terms: Terms | None = None, levels: LevelOptions | None = None, device: str = "cpu") -> list[Theme]:  # fmt: skip
    """Theme groups around the themes, described and sorted by size: broader subjects (themes whose features point
    the same way; with ``levels``, also the themes of a smaller SAE) and, with ``levels``, sub-themes (the themes of a
    larger SAE, :mod:`worker.pipeline.levels`)."""
    groups = all_groups(themes, sae.decoder_directions(), embedded.sae_inputs, embedded.inverse, int(sae.n_latents_),
                        levels, options, resolve_device(device))  # fmt: skip
    groups = describe_groups(groups, documents, embedded.per_document(), options, terms)
    return rate_cohesion(groups, embedded)


def rate_cohesion(themes: list[Theme], embedded: Embedded) -> list[Theme]:
    """Set each theme's :func:`~worker.pipeline.themes.cohesion` from the neighbours found while smoothing (left
    ``None`` without them)."""
    if embedded.neighbours is not None and embedded.neighbours.shape[1]:
        for theme in themes:
            theme.cohesion = cohesion(embedded.inverse[theme.members], embedded.neighbours)
    return themes


def count_terms(documents: pd.DataFrame) -> Terms:
    """The documents' term counts, counted once for the keywords of both themes and groups."""
    return term_counts(documents["text"].tolist())


def metadata(sae: Any, options: AnalysisOptions, counts: dict[str, int]) -> dict[str, Any]:
    """The ``metadata`` block of themes.json (besides the document and theme counts)."""
    from worker.pipeline import train

    return {
        "model": options.model,
        "sae": train.sae_summary(sae),
        "smoothing": {"n_neighbors": options.smoothing.n_neighbors, "weight": options.smoothing.weight},
        "levels": None if options.levels is None else {"broader": options.levels.broader, "finer": options.levels.finer},
        "seed": options.seed,
        "counts": counts,
        "created_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
