"""The theme-quality harness: run systems over seeds on one labelled set's cached embeddings and score them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from worker.benchmarks import metrics
from worker.benchmarks.datasets import LabelledSet
from worker.benchmarks.systems import run_system

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
            if parents is not None:  # what the product shows: themes plus theme groups (one training, two rows)
                variants[f"{spec}+groups"] = res.themes + parents
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
