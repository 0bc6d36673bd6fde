"""Theme quality on a labelled set: run systems (``bench.systems``: the product's SAE path, k-means on comments or
spans, BERTopic) over seeds on the set's cached embeddings and score their themes against the gold labels (``bench.metrics``): label
recovery, theme precision, theme count, outliers, micro-F1 (multi-label sets), stability across seeds, seconds per run.

    python -m bench quality --dataset banking77 [--systems sae,kmeans,bertopic] [--seeds 0,1,2] [--json OUT]
    python -m bench quality --csv FILE --label-column COL [--label-sep ";"] [--text-column text]

Prints a markdown table (one row per system; the SAE gets two: its themes, and every node of its theme tree). Needs ``../shared/data`` (or ``--csv``); ``--systems bertopic`` needs ``.[bench]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench import datasets, metrics
from bench.datasets import LabelledSet
from bench.systems import run_system

COLUMNS = ("system", "label_recovery", "share_ge_0.5", "theme_precision", "n_themes", "outliers", "micro_f1",
           "stability", "seconds")  # fmt: skip


def evaluate(themes: list[np.ndarray], data: LabelledSet) -> dict[str, Any]:
    """Every per-run metric of one run's member sets."""
    rec = metrics.label_recovery(themes, data.labels)
    out = {
        "label_recovery": rec["mean_f1"],
        "share_ge_0.5": rec["share_recovered"],
        "per_label": rec["per_label"],
        "theme_precision": metrics.theme_precision(themes, data.labels),
        "n_themes": len(themes),
        "outliers": metrics.outlier_share(themes, len(data.texts)),
        "micro_f1": metrics.micro_f1(themes, data.labels)["f1"] if data.multi_label else None,
    }
    return out


def run_quality(
    data: LabelledSet,
    X: np.ndarray,
    systems: Sequence[str] = ("sae", "kmeans", "bertopic"),
    seeds: Sequence[int] = (0, 1, 2),
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Per system: metrics averaged over seeds (and per seed), stability across seeds, wall time per run."""
    n_gold = metrics.label_recovery([], data.labels)["n_labels"]
    results: dict[str, Any] = {"dataset": data.name, "note": data.note, "n_docs": len(data.texts),
                               "n_gold_labels": n_gold, "seeds": list(seeds), "systems": {}}  # fmt: skip
    for spec in systems:
        rows: dict[str, tuple[list, list]] = {}
        for seed in seeds:
            res = run_system(spec, X, data.texts, seed, n_gold)
            parents = res.info.pop("parents", None)
            variants = {spec: res.themes}
            if parents is not None:  # what the product shows: the whole tree (one training, two rows)
                variants[f"{spec}+tree"] = res.themes + parents
            for name, themes in variants.items():
                scores = evaluate(themes, data)
                scores.update(seed=seed, seconds=res.seconds, info=res.info)
                runs, per_seed = rows.setdefault(name, ([], []))
                per_seed.append(scores)
                runs.append(themes)
                if log:
                    log(f"{data.name} {name} seed={seed}: F1={scores['label_recovery']:.3f} "
                        f"prec={scores['theme_precision']:.3f} themes={scores['n_themes']} "
                        f"out={scores['outliers']:.3f} {res.seconds:.1f}s {res.info}")  # fmt: skip
        for name, (runs, per_seed) in rows.items():
            summary = {key: _mean([s[key] for s in per_seed]) for key in COLUMNS[1:] if key != "stability"}
            summary["stability"] = metrics.mean_stability(runs, len(data.texts))
            summary["per_seed"] = per_seed
            results["systems"][name] = summary
    return results


def _mean(values: list[Any]) -> float | None:
    values = [v for v in values if v is not None and not (isinstance(v, float) and np.isnan(v))]
    return float(np.mean(values)) if values else None


def markdown_table(results: dict[str, Any]) -> str:
    """One markdown table of the summary rows."""
    head = "| " + " | ".join(COLUMNS) + " |"
    sep = "|" + "---|" * len(COLUMNS)
    lines = [head, sep]
    for spec, s in results["systems"].items():
        cells = [spec]
        for key in COLUMNS[1:]:
            v = s.get(key)
            if v is None:
                cells.append("–")
            elif key == "n_themes":
                cells.append(f"{v:.1f}")
            elif key == "seconds":
                cells.append(f"{v:.1f}")
            else:
                cells.append(f"{v:.3f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", help=f"one of {', '.join(datasets.DATASETS)} (../shared/data)")
    parser.add_argument("--csv", type=Path, help="a labelled CSV instead of --dataset")
    parser.add_argument("--text-column", default="text", help="text column of --csv (default text)")
    parser.add_argument("--label-column", help="gold label column of --csv")
    parser.add_argument("--label-sep", help="separator of several labels in one cell")
    parser.add_argument("--systems", default="sae,kmeans,bertopic",
                        help="comma-separated: sae[:param=value;...], kmeans[:k=N], bertopic (default all three)")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (stability needs two or more)")
    parser.add_argument("--cache-dir", type=Path, help="embedding cache folder (default data/bench-cache)")
    parser.add_argument("--json", dest="json_out", type=Path, help="write all figures as JSON here")
    args = parser.parse_args(argv)
    if (args.dataset is None) == (args.csv is None):
        parser.error("give exactly one of --dataset or --csv")
    if args.csv is not None and not args.label_column:
        parser.error("--csv needs --label-column")
    try:
        data = (datasets.load(args.dataset) if args.dataset
                else datasets.from_csv(args.csv, args.text_column, args.label_column, args.label_sep))  # fmt: skip
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    X = datasets.embed(data.texts, args.cache_dir)
    print(f"{data.note}; embedded in {time.perf_counter() - start:.1f}s", flush=True)
    result = run_quality(data, X, [s.strip() for s in args.systems.split(",") if s.strip()],
                         [int(s) for s in args.seeds.split(",") if s.strip()],
                         log=lambda line: print(line, file=sys.stderr, flush=True))  # fmt: skip
    print(markdown_table(result))
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps(result, indent=1, default=float))
    return 0
