"""The theme tree on labelled sets: what the categories recover, how stable they are across seeds, the names' junk
and fidelity, and the category level printed as a user sees it.

    python -m bench tree --dataset semeval16-restaurants [--seeds 0,1,2] [--json OUT]
    python -m bench tree --sample            # the bundled sample (no gold labels): junk and the printed tree

Per set, over seeds (the product's analysis on the CPU, units embedded through the benchmark cache):

- **categories**: label recovery (``bench.metrics``) of the categories alone, against k-means with the same number of
  clusters on the same inputs (the units' embeddings, a comment in each cluster one of its units is in);
- **tree**: label recovery of every node together (categories, themes, sub-themes), and of the themes alone;
- **stability**: share of one seed's categories (themes) matched by another seed's at member Jaccard ≥ 0.5, over
  ordered pairs of seeds;
- **names**: junk names (a mask, handle, URL piece, bare number, lone stop words, two forms of one word) and the mean
  fidelity AUC of the names against the old top-three keyword labels (``bench.names_eval``);
- the category level of seed 0's tree, one line per category.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench import datasets, metrics
from bench.names_eval import junk_names, mean_fidelity
from bench.systems import bench_cache, run_kmeans, run_sae_analysis

SAMPLE = Path(__file__).resolve().parents[1] / "service" / "sample" / "shop_feedback.csv"


def node_texts(analysis: Any) -> list[Any]:
    """Every node of the analysis's tree as :class:`~worker.pipeline.names.NodeText` (best units first)."""
    from worker.pipeline.names import NameOptions, NodeText

    n_texts = NameOptions().n_texts
    units = analysis.units
    out = []
    for node in analysis.nodes:
        order = node.unit_rows[np.argsort(-node.unit_activations, kind="stable")][:n_texts]
        out.append(NodeText([units.texts[r] for r in order], node.unit_rows, node.parent if node.level > 1 else -1,
                            list(node.keywords)))  # fmt: skip
    return out


def encoder(analysis: Any):
    """The product's model, embedding texts through the benchmark cache."""
    from worker.pipeline import embed
    from worker.pipeline.defaults import DEFAULT_MODEL

    def encode(texts: list[str]) -> np.ndarray:
        vectors, _ = embed.embed_texts(texts, DEFAULT_MODEL, device="cpu", batch_size=64, cache=bench_cache())
        return vectors

    return encode


def unit_kmeans(analysis: Any, k: int, seed: int) -> list[np.ndarray]:
    """k-means (k clusters) on the units' embeddings; a comment belongs to each cluster one of its units is in."""
    vectors = analysis.embedded.vectors[analysis.embedded.inverse]
    clusters, _ = run_kmeans(vectors, seed, k)
    return [np.unique(analysis.units.doc[c]) for c in clusters]


def category_lines(analysis: Any) -> list[str]:
    """The category level as a user reads it: name, share of comments, number of themes, sentiment."""
    n = len(analysis.documents)
    lines = []
    for c in sorted(analysis.categories, key=lambda c: -c.size):
        lines.append(f"{c.name}  ({c.size / n:.0%} of comments, {len(c.children)} themes, "
                     f"sentiment {c.sentiment.get('mean', 0.0):+.2f})")  # fmt: skip
    return lines


def run_seed(data: Any, seed: int) -> tuple[dict[str, Any], Any]:
    """One analysis of the set and its figures."""
    from worker.pipeline.keywords import make_label

    start = time.perf_counter()
    analysis = run_sae_analysis(np.zeros((len(data.texts), 1)), seed, data.texts)
    seconds = time.perf_counter() - start
    nodes = analysis.nodes
    names = [n.name for n in nodes]
    fidelity = mean_fidelity(names, [make_label(n.keywords) for n in nodes], node_texts(analysis),
                             analysis.units.vectors, encoder(analysis), seed=seed)  # fmt: skip
    out: dict[str, Any] = {
        "seed": seed, "seconds": round(seconds, 1), "n_categories": len(analysis.categories),
        "n_themes": len(analysis.themes), "n_sub_themes": len(analysis.sub_themes),
        "junk": junk_names(names), "fidelity_names": fidelity[0], "fidelity_labels": fidelity[1],
        "categories_lines": category_lines(analysis),
    }  # fmt: skip
    if data.labels and any(data.labels):
        k = len(analysis.categories)
        out.update({
            "categories": metrics.label_recovery([c.members for c in analysis.categories], data.labels)["mean_f1"],
            "kmeans_same_k": metrics.label_recovery(unit_kmeans(analysis, k, seed), data.labels)["mean_f1"],
            "themes": metrics.label_recovery([t.members for t in analysis.themes], data.labels)["mean_f1"],
            "tree": metrics.label_recovery([n.members for n in nodes], data.labels)["mean_f1"],
        })  # fmt: skip
    return out, analysis


def run_tree(data: Any, seeds: Sequence[int], log=print) -> dict[str, Any]:
    """Figures per seed, their means, and the stability of categories and themes across seeds."""
    per_seed, categories, themes = [], [], []
    for seed in seeds:
        figures, analysis = run_seed(data, seed)
        per_seed.append(figures)
        categories.append([c.members for c in analysis.categories])
        themes.append([t.members for t in analysis.themes])
        log(f"{data.name} seed={seed}: {json.dumps({k: v for k, v in figures.items() if k != 'categories_lines'})}")
    keys = ["n_categories", "n_themes", "n_sub_themes", "fidelity_names", "fidelity_labels", "categories",
            "kmeans_same_k", "themes", "tree", "seconds"]  # fmt: skip
    summary = {k: float(np.mean([s[k] for s in per_seed])) for k in keys if k in per_seed[0]}
    summary["junk"] = sum(len(s["junk"]) for s in per_seed)
    n = len(data.texts)
    summary["category_stability"] = metrics.mean_stability(categories, n)
    summary["theme_stability"] = metrics.mean_stability(themes, n)
    return {"dataset": data.name, "seeds": list(seeds), "summary": summary, "per_seed": per_seed}


def sample_set() -> Any:
    """The bundled sample as a set without gold labels."""
    import pandas as pd

    texts = pd.read_csv(SAMPLE)["text"].astype(str).tolist()
    return datasets.LabelledSet(name="sample", texts=texts, labels=[[] for _ in texts], note="bundled sample")


def report(result: dict[str, Any]) -> str:
    s = result["summary"]
    fields = ", ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in s.items())
    first = result["per_seed"][0]
    lines = [f"## {result['dataset']} (seeds {result['seeds']})", fields, "",
             f"categories of seed {result['seeds'][0]}:", *(f"  {line}" for line in first["categories_lines"])]  # fmt: skip
    junk = [j for seed in result["per_seed"] for j in seed["junk"]]
    if junk:
        lines += ["junk names:", *(f"  {name!r}: {why}" for name, why in junk)]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", action="append", help=f"one of {', '.join(datasets.DATASETS)}; repeatable")
    parser.add_argument("--sample", action="store_true", help="the bundled sample (no gold labels)")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (stability needs two or more)")
    parser.add_argument("--json", dest="json_out", type=Path, help="write all figures as JSON here")
    args = parser.parse_args(argv)
    if not args.dataset and not args.sample:
        parser.error("give --dataset NAME (repeatable) or --sample")
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    try:
        sets = [datasets.load(name) for name in args.dataset or []] + ([sample_set()] if args.sample else [])
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    results = []
    for data in sets:
        result = run_tree(data, seeds, log=lambda line: print(line, file=sys.stderr, flush=True))
        results.append(result)
        print(report(result), flush=True)
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps(results, indent=2, default=float) + "\n")
    return 0
