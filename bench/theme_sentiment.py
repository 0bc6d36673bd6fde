"""Per-theme sentiment against SemEval 2014 gold per-category polarity (goal: Spearman ≥ 0.8).

For each flat theme of the product's analysis (``bench.systems.run_sae``: ``worker.pipeline.analyze.analyze`` on
the set's embeddings, default options): its best gold category (the one most common among its members); gold = the
mean polarity (+1 positive, 0 neutral or conflict, −1 negative) of that category over the members that carry it;
prediction = the mean sentiment score of all its members. Themes with at least ``MIN_RATED`` such members count.
Spearman over themes, per seed. Scores: the product's (feedback VADER blended with the anchor score), or plain VADER.

    python -m bench theme-sentiment [--seeds 0,1,2] [--plain-vader]
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import numpy as np

from bench import datasets, metrics

POLARITY = {"positive": 1.0, "negative": -1.0, "neutral": 0.0, "conflict": 0.0}
MIN_RATED = 5


def theme_pairs(themes: Sequence[np.ndarray], labels: list[list[str]], polarity: list[dict[str, str]],
                scores: np.ndarray, min_rated: int = MIN_RATED) -> tuple[list[float], list[float]]:  # fmt: skip
    """(gold, predicted) sentiment per theme that has ``min_rated`` members carrying its best category."""
    best, _ = metrics.best_labels(themes, labels)
    gold, predicted = [], []
    for members, category in zip(themes, best):
        carrying = [i for i in members if category in polarity[i]]
        if category is None or len(carrying) < min_rated:
            continue
        gold.append(float(np.mean([POLARITY[polarity[i][category]] for i in carrying])))
        predicted.append(float(np.mean(scores[members])))
    return gold, predicted


def run(seeds: Sequence[int], plain_vader: bool = False) -> list[dict]:
    from bench.sentiment_eval import anchor_scores
    from bench.systems import run_sae
    from worker.pipeline.sentiment import blend, score_texts

    data = datasets.semeval()
    X = datasets.embed(data.texts)
    scores = score_texts(data.texts, feedback_lexicon=False) if plain_vader else blend(score_texts(data.texts),
                                                                                        anchor_scores(X))
    out = []
    for seed in seeds:
        themes, _ = run_sae(X, seed, data.texts)  # the product's flat themes
        gold, predicted = theme_pairs(themes, data.labels, data.aspect_polarity or [], scores)
        out.append({"seed": seed, "themes": len(gold), "spearman": round(metrics.spearman(gold, predicted), 4)})
        print(out[-1], flush=True)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)")
    parser.add_argument("--plain-vader", action="store_true", help="score with plain VADER instead of the product's")
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    rows = run(seeds, plain_vader=args.plain_vader)
    mean = float(np.mean([r["spearman"] for r in rows]))
    print(f"SemEval per-theme Spearman, mean over seeds {args.seeds}: {mean:.3f} (goal ≥ 0.8)")
    print(f"command: python -m bench theme-sentiment --seeds {args.seeds}"
          + (" --plain-vader" if args.plain_vader else ""))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
