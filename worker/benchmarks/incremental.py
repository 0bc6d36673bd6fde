"""Incremental stability (issue 4): what a project's second upload does to its themes.

For each seed: fit the default SAE on a random half of a labelled set, save it, update it with all rows exactly as
a job does (``worker.pipeline.train.train_sae(..., previous=saved)``, i.e. ``partial_fit`` with growth), and fit a
fresh SAE on all rows. Figures:

- **kept ids**: share of the first fit's themes whose id, after the update, is a theme whose members on the first
  half's rows have Jaccard ≥ 0.5 with the first fit's members;
- **label F1** (``metrics.label_recovery`` of the flat themes on all rows): after the update vs the fresh fit;
- **label F1 + groups**: the same over everything the product shows beside the themes (theme groups, and the
  broader groups and sub-themes of the half- and double-size SAEs, which every job trains afresh).

    python -m worker.benchmarks.incremental --dataset banking77 [--seeds 0,1,2] [--epoch-scale 0.5] [--lr-scale 0.5]

``--epoch-scale`` / ``--lr-scale`` override ``sae.trainer.PARTIAL_EPOCH_SCALE`` / ``PARTIAL_LR_SCALE`` (experiments).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from typing import Any

import numpy as np

from worker.benchmarks import datasets
from worker.benchmarks.metrics import label_recovery


def themes_of(sae: Any, X: np.ndarray) -> dict[int, set[int]]:
    """Theme id → member rows, with the product's default options."""
    return {t.id: set(t.members.tolist()) for t in shown_sets(sae, X, groups=False)}


def shown_sets(sae: Any, X: np.ndarray, groups: bool = True, seed: int = 0) -> list:
    """The themes (and with ``groups`` every group shown beside them) of a fitted SAE, as the product makes them."""
    from worker.pipeline import train
    from worker.pipeline.levels import LevelOptions, all_groups
    from worker.pipeline.themes import ThemeOptions, build_themes

    decoder = sae.model_.W_dec.detach().float().cpu().numpy()
    themes = build_themes(train.activations(sae, X), decoder, ThemeOptions())
    if not groups:
        return themes
    return [*themes, *all_groups(themes, decoder, X, np.arange(len(X)), int(sae.n_latents_), LevelOptions(seed=seed))]


def kept_ids(first: dict[int, set[int]], after: dict[int, set[int]], first_rows: set[int]) -> int:
    """How many of ``first``'s themes keep their id in ``after`` (Jaccard ≥ 0.5 on the first half's rows)."""
    kept = 0
    for theme_id, members in first.items():
        later = after.get(theme_id, set()) & first_rows
        if members and len(members & later) / len(members | later) >= 0.5:
            kept += 1
    return kept


def run_seed(data: datasets.LabelledSet, X: np.ndarray, seed: int) -> dict[str, Any]:
    from worker.pipeline.smooth import SmoothOptions, smooth_embeddings
    from worker.pipeline.train import train_sae

    rng = np.random.default_rng(seed)
    half = np.sort(rng.permutation(len(X))[: len(X) // 2])
    started = time.perf_counter()
    # As the jobs do: each job smooths the embeddings of all the project's comments it sees.
    first_inputs = smooth_embeddings(X[half], SmoothOptions(seed=seed))
    all_inputs = smooth_embeddings(X, SmoothOptions(seed=seed))
    first = train_sae(first_inputs, seed=seed, device="cpu")
    first_themes = {t: {int(half[m]) for m in members} for t, members in themes_of(first, first_inputs).items()}
    with tempfile.TemporaryDirectory() as folder:
        first.save(folder)
        updated = train_sae(all_inputs, seed=seed, device="cpu", previous=folder)
    after = themes_of(updated, all_inputs)
    fresh_sae = train_sae(all_inputs, seed=seed, device="cpu")
    fresh = themes_of(fresh_sae, all_inputs)
    f1 = {name: label_recovery([np.array(sorted(m)) for m in themes.values()], data.labels)["mean_f1"]
          for name, themes in (("updated", after), ("fresh", fresh))}  # fmt: skip
    shown = {name: label_recovery([t.members for t in shown_sets(model, all_inputs, seed=seed)], data.labels)["mean_f1"]
             for name, model in (("updated", updated), ("fresh", fresh_sae))}  # fmt: skip
    kept = kept_ids(first_themes, after, set(half.tolist()))
    return {"seed": seed, "latents": f"{first.n_latents_} → {updated.n_latents_}", "first_themes": len(first_themes),
            "kept": kept, "kept_share": round(kept / max(1, len(first_themes)), 4),
            "label_f1_updated": round(f1["updated"], 4), "label_f1_fresh": round(f1["fresh"], 4),
            "gap": round(f1["updated"] - f1["fresh"], 4),
            "label_f1_groups_updated": round(shown["updated"], 4), "label_f1_groups_fresh": round(shown["fresh"], 4),
            "gap_groups": round(shown["updated"] - shown["fresh"], 4),
            "seconds": round(time.perf_counter() - started, 1)}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="banking77", help="banking77, airline, semeval or clothing")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--epoch-scale", type=float, default=None)
    parser.add_argument("--lr-scale", type=float, default=None)
    parser.add_argument("--json", default=None, help="write the figures here")
    args = parser.parse_args(argv)
    import sae.trainer

    if args.epoch_scale is not None:
        sae.trainer.PARTIAL_EPOCH_SCALE = args.epoch_scale
    if args.lr_scale is not None:
        sae.trainer.PARTIAL_LR_SCALE = args.lr_scale
    data = datasets.load(args.dataset)
    X = datasets.embed(data.texts)
    rows = [run_seed(data, X, int(s)) for s in args.seeds.split(",")]
    for row in rows:
        print(json.dumps(row, ensure_ascii=False))
    keys = ("kept_share", "label_f1_updated", "label_f1_fresh", "gap", "label_f1_groups_updated",
            "label_f1_groups_fresh", "gap_groups")  # fmt: skip
    mean = {k: round(float(np.mean([r[k] for r in rows])), 4) for k in keys}
    print(f"{args.dataset}: mean over seeds {args.seeds}: {mean} (epoch scale {sae.trainer.PARTIAL_EPOCH_SCALE}, "
          f"lr scale {sae.trainer.PARTIAL_LR_SCALE}); goals: kept ≥ 0.95, |gap| ≤ 0.02")  # fmt: skip
    print(f"command: python -m worker.benchmarks.incremental --dataset {args.dataset} --seeds {args.seeds}"
          + (f" --epoch-scale {args.epoch_scale}" if args.epoch_scale is not None else "")
          + (f" --lr-scale {args.lr_scale}" if args.lr_scale is not None else ""))  # fmt: skip
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"rows": rows, "mean": mean}, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
