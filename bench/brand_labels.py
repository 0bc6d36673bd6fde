"""Do brands still make themes? The largest themes of all airline tweets, their labels checked for an airline's
name or handle and for a bare thank-you.

Per seed, the product's analysis of every airline tweet (:func:`bench.systems.run_sae` with its default options,
embeddings through the benchmark cache). Among the ``--top`` largest themes, a label is a *brand label* when one of
its terms names an airline (``united``, ``jetblue``, ``southwestair``, ``virgin america``, …) and a *bare thank-you*
when its terms are only thanks words (and airline names). Goal: none of either among the 30 largest.

    python -m bench brand-labels [--seeds 0,1,2] [--top 30]
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence

import numpy as np

from bench import datasets

#: Words that name one of the six airlines of the set (handles without the @, names, common spellings).
BRANDS = {"united", "usairways", "airways", "americanair", "american", "southwestair", "southwest", "jetblue",
          "jet", "virginamerica", "virgin", "delta", "deltaassist", "usair"}  # fmt: skip
THANKS = {"thanks", "thank", "thx", "ty", "appreciate", "you", "much", "great", "love", "awesome"}


def label_terms(label: str) -> list[str]:
    return [w for w in re.split(r"[^a-z0-9]+", label.lower()) if w]


def is_brand_label(label: str) -> bool:
    return any(word in BRANDS for word in label_terms(label))


def is_bare_thanks(label: str) -> bool:
    words = set(label_terms(label))
    return bool(words) and words <= THANKS | BRANDS and bool(words & {"thanks", "thank", "thx", "ty"})


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)")
    parser.add_argument("--top", type=int, default=30, help="largest themes checked (default 30)")
    parser.add_argument("--params", default="", help="sae: parameters as in `python -m bench quality` (a;b=c)")
    args = parser.parse_args(argv)
    from bench.systems import parse_spec, run_sae_analysis

    data = datasets.airline_all()
    X = datasets.embed(data.texts)
    flagged = []
    for seed in [int(s) for s in args.seeds.split(",") if s.strip()]:
        analysis = run_sae_analysis(X, seed, data.texts, **parse_spec(f"sae:{args.params}")[1])
        top = sorted(analysis.themes, key=lambda t: -t.size)[: args.top]
        brand = [t.label for t in top if is_brand_label(t.label)]
        thanks = [t.label for t in top if is_bare_thanks(t.label)]
        flagged.append(len(set(brand) | set(thanks)))
        print(f"seed {seed}: {len(analysis.themes)} themes; among the {args.top} largest, {len(brand)} brand labels, "
              f"{len(thanks)} bare thank-yous")  # fmt: skip
        for t in top:
            mark = " <- brand" if t.label in brand else (" <- thanks" if t.label in thanks else "")
            print(f"  {t.size:5d}  {t.label}{mark}")
    print(f"flagged labels among the {args.top} largest, mean over seeds: {np.mean(flagged):.1f} (goal 0)")
    print(f"command: python -m bench brand-labels --seeds {args.seeds} --top {args.top}"
          + (f" --params '{args.params}'" if args.params else ""))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
