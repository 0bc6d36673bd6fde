"""Per (review, entity) sentiment on SemEval 2016 whole reviews: does a theme's sentiment for one review match how
the review feels about the entity the theme is about?

Per seed, the product's analysis of the reviews (:func:`worker.pipeline.analyze.analyze`, default options: spans on,
sentiment scored, embeddings through the benchmark cache). Every theme is mapped to its best gold entity (the one
most common among its members, :func:`bench.metrics.best_labels`). For each (review, entity) pair, gold = the most
common polarity of that entity's opinions in the review (``bench.datasets.semeval_reviews``), the prediction is the mean of
the review's sentiment in the themes mapped to that entity that it belongs to
(:func:`worker.pipeline.themes.member_sentiment` with the span weight under test: 0 = the whole review's score, 1 =
the review's spans that carry the theme alone), and the whole review's score where it is in none. Three-class
accuracy (±0.05 band) over those pairs. Baselines: plain VADER on the whole review, and the product's whole-review
score. ``covered`` is the share of pairs predicted from a theme.

    python -m bench span-sentiment --dataset semeval16-restaurants [--seeds 0,1,2] [--weights 0,0.25,0.5,0.75,1]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench import datasets, metrics

DATASETS = ("semeval16-restaurants", "semeval16-laptops")


def pairs(data: datasets.LabelledSet) -> list[tuple[int, str, str]]:
    """(review row, entity, gold polarity) for every pair."""
    return [(row, entity, polarity) for row, found in enumerate(data.aspect_polarity or [])
            for entity, polarity in sorted(found.items())]  # fmt: skip


def entity_predictions(themes: list, entities: list[str | None], review_scores: np.ndarray,
                       theme_scores: list[np.ndarray], gold: list[tuple[int, str, str]]) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Per gold pair, the predicted score (the mean of the review's sentiment in the themes mapped to the entity it
    belongs to, else the review's score) and whether a theme gave it."""
    found: dict[tuple[int, str], list[float]] = {}
    for theme, entity, scores in zip(themes, entities, theme_scores):
        if entity is None:
            continue
        for row, score in zip(theme.members.tolist(), scores.tolist()):
            found.setdefault((row, entity), []).append(score)
    predicted = np.array([np.mean(found[(r, e)]) if (r, e) in found else review_scores[r] for r, e, _ in gold])
    covered = np.array([(r, e) in found for r, e, _ in gold])
    return predicted, covered


def run(name: str, seeds: Sequence[int], weights: Sequence[float], log=print) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    from bench.systems import bench_cache
    from worker.pipeline.analyze import AnalysisOptions, analyze
    from worker.pipeline.sentiment import label_scores, score_texts
    from worker.pipeline.themes import member_sentiment

    data = datasets.load(name)
    gold = pairs(data)
    truth = [p for _, _, p in gold]
    vader = score_texts(data.texts, feedback_lexicon=False)
    result: dict[str, Any] = {"dataset": name, "pairs": len(gold), "seeds": list(seeds),
                              "whole_review_vader": metrics.accuracy(list(label_scores(vader[[r for r, _, _ in gold]])), truth)[0],
                              "per_seed": []}  # fmt: skip
    documents = pd.DataFrame({"doc_id": [str(i) for i in range(len(data.texts))], "text": data.texts,
                              "rating": np.nan, "date": None})  # fmt: skip
    for seed in seeds:
        options = AnalysisOptions(device="cpu", seed=seed, backend="torch", batch_size=64)
        analysis = analyze(documents, options, cache=bench_cache())
        scores = analysis.documents["sentiment_score"].to_numpy(dtype=float)
        entities, _ = metrics.best_labels([t.members for t in analysis.themes], data.labels)
        row: dict[str, Any] = {"seed": seed, "themes": len(analysis.themes),
                               "whole_review_product": metrics.accuracy(list(label_scores(scores[[r for r, _, _ in gold]])), truth)[0]}  # fmt: skip
        for weight in weights:
            theme_scores = [member_sentiment(t, analysis.units, scores, weight) for t in analysis.themes]
            predicted, covered = entity_predictions(analysis.themes, entities, scores, theme_scores, gold)
            row[f"w={weight:g}"] = metrics.accuracy(list(label_scores(predicted)), truth)[0]
            row["covered"] = float(covered.mean())
        log(json.dumps(row))
        result["per_seed"].append(row)
    keys = [k for k in result["per_seed"][0] if k not in ("seed",)]
    result["mean"] = {k: float(np.mean([r[k] for r in result["per_seed"]])) for k in keys}
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="semeval16-restaurants", choices=DATASETS)
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)")
    parser.add_argument("--weights", default="0,0.25,0.5,0.75,1", help="span weights to compare")
    parser.add_argument("--json", dest="json_out", type=Path, help="write the figures as JSON here")
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    weights = [float(w) for w in args.weights.split(",") if w.strip()]
    try:
        result = run(args.dataset, seeds, weights, log=lambda line: print(line, file=sys.stderr, flush=True))
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    mean = result["mean"]
    print(f"{args.dataset}: {result['pairs']} (review, entity) pairs, 3-class accuracy, mean over seeds {args.seeds}")
    print(f"  whole-review plain VADER: {result['whole_review_vader']:.3f}")
    print(f"  whole-review product score: {mean['whole_review_product']:.3f}")
    for weight in weights:
        print(f"  theme sentiment, span weight {weight:g}: {mean[f'w={weight:g}']:.3f}")
    print(f"  pairs predicted from a theme: {mean['covered']:.3f}; themes per run: {mean['themes']:.1f}")
    print(f"command: python -m bench span-sentiment --dataset {args.dataset} --seeds {args.seeds} "
          f"--weights {args.weights}")  # fmt: skip
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
