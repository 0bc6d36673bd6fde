"""Incremental stability: what a project's second upload does to its themes.

For each seed: analyse a random half of a labelled set (:func:`worker.pipeline.analyze.analyze`, the product's
defaults: spans), save its SAE, analyse all rows updating that SAE exactly as a job does
(``analyze(..., previous_sae=saved)``: ``partial_fit`` with growth), and analyse all rows with a fresh SAE. Figures:

- **kept ids**: share of the first analysis's themes whose id, after the update, is a theme whose members on the
  first half's rows have Jaccard ≥ 0.5 with the first analysis's members;
- **label F1** (``bench.metrics.label_recovery`` of the flat themes on all rows): after the update vs the fresh fit;
- **label F1 + tree**: the same over every node of the theme tree (categories, themes, and the sub-themes of the
  double-size SAE, which every job trains afresh).

    python -m bench incremental --dataset banking77 [--seeds 0,1,2] [--epoch-scale 0.5] [--lr-scale 0.5] [--json OUT]

``--epoch-scale`` / ``--lr-scale`` override ``sae.trainer.PARTIAL_EPOCH_SCALE`` / ``PARTIAL_LR_SCALE`` (experiments).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from bench import datasets
from bench.metrics import label_recovery
from bench.systems import bench_cache, unscored_documents


def analysis_of(X: np.ndarray, seed: int, texts: list[str], previous: str | None = None, levels: bool = True,
                recent: np.ndarray | None = None) -> Any:  # fmt: skip
    """The product's analysis of the texts (on the CPU, their spans embedded through the benchmark cache), updating
    the SAE saved in ``previous`` if given (``recent``: the rows of the newest upload, as a job passes them); without
    ``levels`` no double-size SAE is trained (its sub-themes are not needed). ``X`` (one embedding per text) only
    gives the number of documents."""
    from dataclasses import replace

    from worker.pipeline.analyze import AnalysisOptions, analyze
    from worker.pipeline.tree import TreeOptions

    options = AnalysisOptions(device="cpu", seed=seed, backend="torch", batch_size=64, names=False,
                              tree=TreeOptions(sub_themes=levels))  # fmt: skip
    options = replace(options, themes=replace(options.themes, span_sentiment_weight=0))  # sentiment is not read
    return analyze(unscored_documents(len(X), texts), options, cache=bench_cache(), previous_sae=previous,
                   recent=recent)  # fmt: skip


def themes_of(analysis: Any) -> dict[int, set[int]]:
    """Theme id → member rows."""
    return {t.id: set(t.members.tolist()) for t in analysis.themes}


def shown_sets(analysis: Any) -> list[np.ndarray]:
    """The member rows of every node of the tree."""
    return [t.members for t in analysis.nodes]


def kept_ids(first: dict[int, set[int]], after: dict[int, set[int]], first_rows: set[int]) -> int:
    """How many of ``first``'s themes keep their id in ``after`` (Jaccard ≥ 0.5 on the first half's rows)."""
    kept = 0
    for theme_id, members in first.items():
        later = after.get(theme_id, set()) & first_rows
        if members and len(members & later) / len(members | later) >= 0.5:
            kept += 1
    return kept


def run_seed(data: datasets.LabelledSet, X: np.ndarray, seed: int, recent_floor: bool = True) -> dict[str, Any]:
    """One seed; the update marks the second half as the newest upload, as a job does, unless not ``recent_floor``
    (then no theme gets the newest upload's size floor)."""
    rng = np.random.default_rng(seed)
    half = np.sort(rng.permutation(len(X))[: len(X) // 2])
    recent = ~np.isin(np.arange(len(X)), half) if recent_floor else None
    started = time.perf_counter()
    # As the jobs do: each analysis smooths the embeddings of all the project's comments it sees.
    first = analysis_of(X[half], seed, [data.texts[i] for i in half], levels=False)
    first_themes = {t: {int(half[m]) for m in members} for t, members in themes_of(first).items()}
    with tempfile.TemporaryDirectory() as folder:
        first.sae.save(folder)
        updated = analysis_of(X, seed, data.texts, previous=folder, recent=recent)
    fresh = analysis_of(X, seed, data.texts)
    after = themes_of(updated)
    f1 = {name: label_recovery([t.members for t in analysis.themes], data.labels)["mean_f1"]
          for name, analysis in (("updated", updated), ("fresh", fresh))}  # fmt: skip
    shown = {name: label_recovery(shown_sets(analysis), data.labels)["mean_f1"]
             for name, analysis in (("updated", updated), ("fresh", fresh))}  # fmt: skip
    kept = kept_ids(first_themes, after, set(half.tolist()))
    return {"seed": seed, "latents": f"{first.sae.n_latents_} → {updated.sae.n_latents_}",
            "first_themes": len(first_themes), "themes_updated": len(after), "kept": kept, "kept_share": round(kept / max(1, len(first_themes)), 4),
            "label_f1_updated": round(f1["updated"], 4), "label_f1_fresh": round(f1["fresh"], 4),
            "gap": round(f1["updated"] - f1["fresh"], 4),
            "label_f1_groups_updated": round(shown["updated"], 4), "label_f1_groups_fresh": round(shown["fresh"], 4),
            "gap_groups": round(shown["updated"] - shown["fresh"], 4),
            "seconds": round(time.perf_counter() - started, 1)}  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="banking77", help="banking77, airline, semeval or clothing")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds (default 0)")
    parser.add_argument("--epoch-scale", type=float, default=None)
    parser.add_argument("--lr-scale", type=float, default=None)
    parser.add_argument("--no-recent-floor", action="store_true", help="update without marking the second half as "
                        "the newest upload (no theme gets that upload's size floor: ThemeOptions.recent_share)")
    parser.add_argument("--json", default=None, help="write the figures here")
    args = parser.parse_args(argv)
    import sae.trainer

    if args.epoch_scale is not None:
        sae.trainer.PARTIAL_EPOCH_SCALE = args.epoch_scale
    if args.lr_scale is not None:
        sae.trainer.PARTIAL_LR_SCALE = args.lr_scale
    data = datasets.load(args.dataset)
    X = datasets.embed(data.texts)
    rows = [run_seed(data, X, int(s), not args.no_recent_floor) for s in args.seeds.split(",")]
    for row in rows:
        print(json.dumps(row, ensure_ascii=False))
    keys = ("kept_share", "label_f1_updated", "label_f1_fresh", "gap", "label_f1_groups_updated",
            "label_f1_groups_fresh", "gap_groups")  # fmt: skip
    mean = {k: round(float(np.mean([r[k] for r in rows])), 4) for k in keys}
    print(f"{args.dataset}: mean over seeds {args.seeds}: {mean} (epoch scale {sae.trainer.PARTIAL_EPOCH_SCALE}, "
          f"lr scale {sae.trainer.PARTIAL_LR_SCALE}); goals: kept ≥ 0.95, |gap| ≤ 0.02")  # fmt: skip
    print(f"command: python -m bench incremental --dataset {args.dataset} --seeds {args.seeds}"
          + (f" --epoch-scale {args.epoch_scale}" if args.epoch_scale is not None else "")
          + (f" --lr-scale {args.lr_scale}" if args.lr_scale is not None else "")
          + (" --no-recent-floor" if args.no_recent_floor else ""))  # fmt: skip
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"rows": rows, "mean": mean}, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
