"""The one analysis: documents → spans → embeddings → sentiment → smoothing + SAE → themes → tree and names →
themes.json.

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
from worker.pipeline.ingest import IngestError
from worker.pipeline.keywords import term_counts
from worker.pipeline.output import themes_document
from worker.pipeline.smooth import SmoothOptions, neighbourhood, smooth_embeddings
from worker.pipeline.spans import SpanOptions, Spans, cuts_comments, split_spans
from worker.pipeline.themes import (
    DocumentVectors,
    Theme,
    ThemeOptions,
    Units,
    build_themes,
    cohesion,
    describe_levels,
    describe_themes,
)
from worker.pipeline.tree import Tree, TreeOptions, build_tree

Terms = tuple[sp.csr_matrix, np.ndarray]
STAGES = ("embed", "sentiment", "train", "themes")
StageProgress = Callable[[str, float], None]
#: The most candidate names embedded per analysis (the model encodes a few hundred short phrases a second on a CPU).
NAMING_BUDGET = 20_000
#: A category is named from this many texts, its themes' best units taken in turn (a theme: ``NameOptions.n_texts``).
CATEGORY_TEXTS = 200
#: The fraction of the ``train`` stage reached once the embeddings are smoothed (the SAE's training: the rest).
SMOOTHED = 0.2
#: The fraction of the ``themes`` stage reached after each of its steps; the sub-theme SAE's training moves the bar
#: from ``themes`` to ``sub_themes`` (the ``themes`` stage ends at 1 with the themes.json object).
THEME_STEPS = {"themes": 0.1, "sub_themes": 0.75, "tree": 0.8, "names": 0.95}


@dataclass
class AnalysisOptions:
    """Everything that changes an analysis besides the documents. ``seed`` seeds every stage (smoothing and the tree
    included); ``spans`` chooses the unit the SAE reads (sentences, or whole comments with ``enabled=False``);
    ``backend``, ``quantize``, ``max_seq_length``, ``export_dir`` and ``calibration_csv`` choose how the model runs
    (:func:`worker.pipeline.embed_models.resolve_backend`)."""

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
    spans: SpanOptions = field(default_factory=SpanOptions)
    smoothing: SmoothOptions = field(default_factory=SmoothOptions)
    themes: ThemeOptions = field(default_factory=ThemeOptions)
    tree: TreeOptions = field(default_factory=TreeOptions)
    names: bool = True  # False: nodes are named by their keywords (worker/pipeline/names.py)

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
    """Embeddings of the distinct unit texts, per unit (span) the row of its text, and what the SAE is given (the
    smoothed embeddings, see :func:`smooth`; the embeddings themselves until then)."""

    vectors: np.ndarray
    inverse: np.ndarray
    n_encoded: int
    smoothed: np.ndarray | None = None
    neighbours: np.ndarray | None = None  # (unique texts, k) nearest neighbours of each distinct text

    @property
    def sae_inputs(self) -> np.ndarray:
        return self.vectors if self.smoothed is None else self.smoothed

    def per_unit(self) -> DocumentVectors:
        return DocumentVectors(self.vectors, self.inverse)


@dataclass
class Analysis:
    """What :func:`analyze` returns: the documents (with sentiment), their spans, the theme tree (categories, themes,
    sub-themes), the themes.json object, the fitted SAE, counts, the embeddings, the units themes were found over,
    and seconds per stage."""

    documents: pd.DataFrame
    spans: Spans
    themes: list[Theme]
    document: dict[str, Any]
    sae: Any
    counts: dict[str, int]
    categories: list[Theme] = field(default_factory=list)
    sub_themes: list[Theme] = field(default_factory=list)
    embedded: Embedded | None = None
    units: Units | None = None
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def nodes(self) -> list[Theme]:
        """Every node of the tree: categories, themes, sub-themes."""
        return [*self.categories, *self.themes, *self.sub_themes]


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
    spans: Spans | None = None,
    previous_sae: str | Path | None = None,
    previous_nodes: dict[int, np.ndarray] | None = None,
    counts: dict[str, int] | None = None,
    recent: np.ndarray | None = None,
) -> Analysis:
    """Find the themes of ``documents`` (columns ``doc_id``, ``text``, ``rating``, ``date``; rows that already have a
    ``sentiment_score`` keep it).

    ``cache`` reuses stored embeddings; ``embeddings`` gives precomputed vectors instead (the benchmarks): one per
    span of ``spans`` when given, else one per document (whole-comment analysis only); ``spans`` are the units to
    analyse instead of the comments' own (:func:`~worker.pipeline.spans.split_spans` under ``options.spans``);
    ``previous_sae`` is a saved SAE to update rather than a new one to fit (feature ids keep their
    meaning); ``previous_nodes`` are the previous analysis's categories and sub-themes (id → member document rows),
    whose ids the nodes that match them keep (:func:`~worker.pipeline.tree.match_ids`); ``counts`` go into the
    metadata with the embedding counts added; ``recent`` marks the documents of the newest upload (a job's own: a
    feature mostly of those is a theme at the size floor of that upload alone, :attr:`ThemeOptions.recent_share`);
    ``progress(stage, fraction)`` is called per stage of :data:`STAGES`, in order, each stage's fractions rising
    from 0 to 1 (``train`` and ``themes`` also between their steps: :data:`SMOOTHED`, :data:`THEME_STEPS`).
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
    given = spans is not None
    texts = documents["text"].tolist()
    cut = given or cuts_comments(texts, options.spans)
    spans = spans if given else split_spans(texts, options.spans, cut=cut)
    if not len(spans):
        raise IngestError("no comment has any text left once handles, links and masks are taken out",
                          "too-few-comments")  # fmt: skip
    if embeddings is None:
        embedded = embed_units(spans, options, progress_of("embed"), cache)
    elif given:
        if len(embeddings) != len(spans):
            raise ValueError(f"{len(embeddings)} embeddings for {len(spans)} spans: give one per span")
        embedded = Embedded(np.asarray(embeddings, dtype=np.float32), np.arange(len(spans)), 0)
    elif cut:
        raise ValueError("precomputed embeddings are one per comment, but these comments are cut into spans: turn "
                         "spans off, or give the spans")  # fmt: skip
    else:
        embedded = Embedded(np.asarray(embeddings, dtype=np.float32), spans.doc, 0)
    done("embed")
    start("sentiment")
    documents, span_scores = add_sentiment(documents, spans, embedded, options)
    units = Units(spans.doc, embedded.per_unit(), spans.model_text, span_scores)
    done("sentiment")
    start("train")
    embedded = smooth(embedded, replace(options.smoothing, seed=options.seed), options.device)
    trained = progress_of("train")
    trained(SMOOTHED)
    sae = train.train_sae(
        embedded.sae_inputs, n_latents=options.n_latents, k=options.k, seed=options.seed,
        device=options.device, progress=within(trained, SMOOTHED, 1.0), previous=previous_sae,
    )  # fmt: skip
    done("train")
    start("themes")
    step = progress_of("themes")
    terms = term_counts(units.texts)
    themes = find_themes(sae, embedded, documents, units, options.themes, terms, recent)
    step(THEME_STEPS["themes"])
    tree = find_tree(sae, themes, embedded, documents, units, options, terms, previous_nodes,
                     progress=within(step, THEME_STEPS["themes"], THEME_STEPS["sub_themes"]))  # fmt: skip
    step(THEME_STEPS["tree"])
    name_tree(tree, units, options)
    step(THEME_STEPS["names"])
    counts = {**(counts or {}), "embedded": embedded.n_encoded, "unique_texts": len(embedded.vectors),
              "spans": len(spans)}  # fmt: skip
    document = themes_document(tree, documents, metadata(sae, options, counts, cut), spans)
    done("themes")
    return Analysis(documents=documents, spans=spans, themes=tree.themes, document=document, sae=sae, counts=counts,
                    categories=tree.categories, sub_themes=tree.sub_themes, embedded=embedded, units=units,
                    seconds=seconds)  # fmt: skip


def within(report: Callable[[float], None], low: float, high: float) -> Callable[[float], None]:
    """A progress callback for one step of a stage: the step's fractions (0..1) reported as ``low``..``high`` of the
    stage."""
    return lambda fraction: report(low + (high - low) * min(1.0, max(0.0, fraction)))


def embed_units(
    spans: Spans,
    options: AnalysisOptions,
    progress: Callable[[float], None] | None = None,
    cache: VectorCache | None = None,
) -> Embedded:
    """Embed each distinct span text (as the model sees it) once, reusing the cache when given (closed afterwards)."""
    from worker.pipeline import embed

    texts, inverse = embed.unique_texts(spans.model_text)
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
    """Per unit, the anchor sentiment score of its text (:func:`worker.pipeline.sentiment.anchor_scores`), the
    anchor sentences embedded by the same model and backend as the units."""
    from worker.pipeline import embed

    anchors, _ = embed.embed_texts(list(sentiment.ANCHORS), options.model, device=options.resolved_device,
                                   batch_size=options.batch_size, backend=options.embedding_backend())  # fmt: skip
    return sentiment.anchor_scores(embedded.vectors, anchors)[embedded.inverse]


def add_sentiment(documents: pd.DataFrame, spans: Spans, embedded: Embedded,
                  options: AnalysisOptions) -> tuple[pd.DataFrame, np.ndarray | None]:  # fmt: skip
    """A copy of the documents with ``sentiment_score`` and ``sentiment_label`` for every row, and a score per span
    (``None`` when no comment was cut or the themes do not read them:
    :attr:`ThemeOptions.span_sentiment_weight`).

    Rows scored before keep theirs; the others get VADER read for feedback on the whole comment, blended with the
    mean anchor score of its spans' embeddings (a comment without spans: VADER alone). A span's score is the same
    blend on the span alone."""
    documents = documents.copy()
    if "sentiment_score" not in documents:
        documents["sentiment_score"] = np.nan
        documents["sentiment_label"] = None
    todo = documents["sentiment_score"].isna().to_numpy()
    # a comment of one span reads as the whole comment: spans need scores of their own only where one was cut
    score_spans = bool((spans.index > 0).any()) and options.themes.span_sentiment_weight > 0
    if not todo.any() and not score_spans:
        documents["sentiment_score"] = documents["sentiment_score"].astype(float)
        return documents, None
    anchors = anchor_scores(embedded, options)  # the anchors need the model: loaded only when something is scored
    if todo.any():
        n = len(documents)
        counts = spans.per_document(n)
        mean_anchor = np.bincount(spans.doc, weights=anchors, minlength=n) / np.maximum(counts, 1)
        vader = sentiment.score_texts(documents.loc[todo, "text"].tolist())
        scores = np.where(counts[todo] > 0, sentiment.blend(vader, mean_anchor[todo]), vader).astype(np.float32)
        documents.loc[todo, "sentiment_score"] = scores.astype(float)
        documents.loc[todo, "sentiment_label"] = sentiment.label_scores(scores)
    documents["sentiment_score"] = documents["sentiment_score"].astype(float)
    if not score_spans:
        return documents, None
    texts = documents["text"].tolist()
    span_texts = [spans.text(texts, row) for row in range(len(spans))]
    return documents, sentiment.blend(sentiment.score_texts(span_texts), anchors)


def smooth(embedded: Embedded, options: SmoothOptions, device: str = "cpu") -> Embedded:
    """The embedded texts with their neighbours and SAE inputs: each embedding pulled towards its neighbours."""
    neighbours = neighbourhood(embedded.vectors, options, resolve_device(device))
    smoothed = smooth_embeddings(embedded.vectors, options, neighbours=neighbours)
    return replace(embedded, smoothed=smoothed, neighbours=neighbours)


def find_themes(sae: Any, embedded: Embedded, documents: pd.DataFrame, units: Units, options: ThemeOptions,
                terms: Terms | None = None, recent: np.ndarray | None = None) -> list[Theme]:  # fmt: skip
    """Themes of the documents under a fitted SAE, found over the units, described and sorted by size (``terms``:
    :func:`~worker.pipeline.keywords.term_counts` of the units' texts, counted once for themes and groups;
    ``recent``: the newest upload's documents, :func:`~worker.pipeline.themes.build_themes`)."""
    from worker.pipeline import train

    acts = train.activations(sae, embedded.sae_inputs)[embedded.inverse]
    themes = build_themes(acts, sae.decoder_directions(), options, units.doc, len(documents), recent)
    rate_cohesion(themes, embedded)
    return describe_themes(themes, documents, units, options, terms)


def finer_themes(inputs: np.ndarray, inverse: np.ndarray, n_latents: int, options: TreeOptions = TreeOptions(),
                 theme_options: ThemeOptions = ThemeOptions(), device: str = "cpu", owner: np.ndarray | None = None,
                 n_docs: int | None = None,
                 progress: Callable[[float], None] | None = None) -> list[Theme]:  # fmt: skip
    """The themes (members only) of an SAE of ``options.finer`` × ``n_latents`` trained on the SAE inputs (a seeded
    sample of at most ``options.max_rows`` distinct texts) and read on all of them: the sub-theme candidates.
    ``inverse`` maps each unit to its text's row, ``owner`` to its document's row (``None``: the units are the
    documents, ``n_docs`` of them); ``progress``: the SAE's training fraction."""
    from worker.pipeline import train

    rows = inputs
    if len(inputs) > options.max_rows:
        pick = np.random.default_rng(options.seed).choice(len(inputs), options.max_rows, replace=False)
        rows = inputs[np.sort(pick)]
    size = max(2, round(n_latents * options.finer))
    sae = train.train_sae(rows, n_latents=size, seed=options.seed, device=device, progress=progress)
    acts = train.activations(sae, inputs)[inverse]
    return build_themes(acts, sae.decoder_directions(), theme_options, owner, n_docs)


def find_tree(sae: Any, themes: list[Theme], embedded: Embedded, documents: pd.DataFrame, units: Units,
              options: AnalysisOptions, terms: Terms | None = None, previous: dict[int, np.ndarray] | None = None,
              progress: Callable[[float], None] | None = None) -> Tree:  # fmt: skip
    """The tree around the themes (:mod:`worker.pipeline.tree`): categories and sub-themes found, described level by
    level and rated for cohesion (``previous``: the previous analysis's nodes whose ids matching nodes keep;
    ``progress``: the sub-theme SAE's training fraction)."""
    tree_options = replace(options.tree, seed=options.seed)
    n_docs = len(documents)
    fine: list[Theme] = []
    if tree_options.sub_themes and themes:
        fine = finer_themes(embedded.sae_inputs, embedded.inverse, int(sae.n_latents_), tree_options, options.themes,
                            resolve_device(options.device), units.doc, n_docs, progress)  # fmt: skip
    tree = build_tree(themes, embedded.sae_inputs, embedded.inverse, n_docs, units.doc, fine,
                      options.themes.resolved_min_size(n_docs), previous, tree_options)  # fmt: skip
    added = describe_levels([*tree.categories, *tree.sub_themes], documents, units, options.themes, terms)
    rate_cohesion(added, embedded)
    tree.categories = [n for n in added if n.level == 1]
    tree.sub_themes = [n for n in added if n.level == 3]
    return tree


def name_tree(tree: Tree, units: Units, options: AnalysisOptions) -> None:
    """Give every node its ``name`` (:func:`~worker.pipeline.names.name_nodes`, the candidate phrases embedded by the
    analysis's model), ``label`` kept equal to it; without ``options.names``, or without texts, the keyword label."""
    nodes = tree.nodes
    names = [n.label for n in nodes]
    if options.names and nodes and any(units.texts):
        from worker.pipeline import embed
        from worker.pipeline.names import NameOptions, NodeText, name_nodes

        # at most NAMING_BUDGET candidates embedded per job: fewer per node in a very large tree
        per_node = min(NameOptions().n_candidates, max(8, NAMING_BUDGET // len(nodes)))
        name_options = NameOptions(seed=options.seed, n_candidates=per_node)

        def encode(texts: list[str]) -> np.ndarray:
            vectors, _ = embed.embed_texts(texts, options.model, device=options.resolved_device,
                                           batch_size=options.batch_size,
                                           backend=options.embedding_backend())  # fmt: skip
            return vectors

        by_id = {n.id: n for n in nodes}
        texts = [naming_texts(n, [by_id[c] for c in n.children if c in by_id] if n.level == 1 else [], units,
                              name_options.n_texts) for n in nodes]  # fmt: skip
        described = [NodeText(t, n.unit_rows, n.parent if n.level > 1 else -1, n.keywords,
                              n_texts=CATEGORY_TEXTS if n.level == 1 else None) for t, n in zip(texts, nodes)]  # fmt: skip
        names = name_nodes(described, units.vectors, encode, name_options)
        distinct_from_parents(nodes, names)
    for node, name in zip(nodes, names):
        node.name = node.label = name


def distinct_from_parents(nodes: list[Theme], names: list[str]) -> None:
    """A category whose phrase shares no word with its first four keywords (a phrase of one of its themes, not what
    they share) named by its subject words instead (:func:`~worker.pipeline.names.subject_name`), else by those of
    its largest themes; a node named like its parent (same stems) renamed from its keywords, unlike its parent and
    its siblings. In place; ``nodes`` parents first."""
    from worker.pipeline.names import content_stems, keyword_names, subject_name

    taken: set[str] = set()
    name_of: dict[int, str] = {}
    by_id = {n.id: n for n in nodes}
    for i, node in enumerate(nodes):
        if node.level == 1 and not set(content_stems(names[i])) & set(content_stems(" ".join(node.keywords[:4]))):
            children = sorted((by_id[c] for c in node.children if c in by_id), key=lambda c: -c.size)
            leading = [c.keywords[0] for c in children if c.keywords]  # its largest themes' first keywords
            if subject := subject_name(node.keywords, taken) or subject_name(leading, taken):
                names[i] = subject
        parent = name_of.get(node.parent) if node.parent is not None else None
        if parent is not None and content_stems(names[i]) == content_stems(parent):
            siblings = {content_stems(names[j]) for j, other in enumerate(nodes) if other.parent == node.parent}
            names[i] = next((k for k in keyword_names(node.keywords) if content_stems(k) not in siblings
                             and content_stems(k) != content_stems(parent)), names[i])  # fmt: skip
        name_of[node.id] = names[i]


def naming_texts(node: Theme, children: list[Theme], units: Units, n_texts: int) -> list[str]:
    """The unit texts a node is named from, best first: its ``n_texts`` most activated units; for a category, its
    themes' best units taken in turn (largest theme first, :func:`~worker.pipeline.names.interleave`), at most
    :data:`CATEGORY_TEXTS`, so that its name draws on all its themes rather than on its strongest one."""
    from worker.pipeline.names import interleave

    def best(theme: Theme, n: int) -> list[str]:
        rows = theme.unit_rows[np.argsort(-theme.unit_activations, kind="stable")][:n]
        return [units.texts[r] for r in rows]

    if not children:
        return best(node, n_texts)
    ordered = sorted(children, key=lambda c: -c.size)
    return interleave([best(c, CATEGORY_TEXTS) for c in ordered], CATEGORY_TEXTS)


def rate_cohesion(themes: list[Theme], embedded: Embedded) -> list[Theme]:
    """Set each theme's :func:`~worker.pipeline.themes.cohesion` from the neighbours found while smoothing (left
    ``None`` without them), over the units that carry it."""
    if embedded.neighbours is not None and embedded.neighbours.shape[1]:
        for theme in themes:
            theme.cohesion = cohesion(embedded.inverse[theme.unit_rows], embedded.neighbours)
    return themes


def metadata(sae: Any, options: AnalysisOptions, counts: dict[str, int], cut: bool) -> dict[str, Any]:
    """The ``metadata`` block of themes.json (besides the document and theme counts)."""
    from worker.pipeline import train

    return {
        "model": options.model,
        "units": "spans" if cut else "comments",
        "sae": train.sae_summary(sae),
        "smoothing": {"n_neighbors": options.smoothing.n_neighbors, "weight": options.smoothing.weight},
        "tree": {"sub_themes": options.tree.sub_themes, "finer": options.tree.finer,
                 "max_categories": options.tree.max_categories},
        "seed": options.seed,
        "counts": counts,
        "created_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
