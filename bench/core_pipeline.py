"""The core pipeline end to end: `feedback-themes analyze` (a subprocess) on 1,000 real clothing reviews.

Prints wall time (cold embedding cache), the number of themes, FVU, dead fraction, whether every theme has every
field filled, whether a second run gives byte-identical themes.json (apart from created_at), and the command.

    .venv/bin/python -m bench core [--rows 1000] [--data ../shared/data]    # or: python bench/core_pipeline.py
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1000, help="reviews analysed (default 1000)")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data", help="the shared data folder")
    args = parser.parse_args(argv)
    source = args.data / "womens_clothing_reviews" / "reviews.csv"
    if not source.exists():
        print(f"error: {source} not found (the shared data folder sits beside the checkout)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        frame = pd.read_csv(source)
        frame = frame[frame["Review Text"].notna()].head(args.rows)
        csv_path = tmp_path / "reviews.csv"
        frame.to_csv(csv_path, index=False)
        env = {**os.environ, "FEEDBACK_THEMES_DATA_DIR": str(tmp_path / "data")}  # cold embedding cache
        runs = []
        for name in ("first", "second"):
            cmd = [sys.executable, "-m", "service.cli", "analyze", str(csv_path), "--text-column", "Review Text",
                   "--rating-column", "Rating", "--out", str(tmp_path / name), "--seed", "0"]  # fmt: skip
            start = time.perf_counter()
            run_env = env if name == "first" else {**env, "FEEDBACK_THEMES_DATA_DIR": str(tmp_path / "d2")}
            subprocess.run(cmd, env=run_env, check=True, capture_output=True, cwd=ROOT)
            runs.append((time.perf_counter() - start, json.loads((tmp_path / name / "themes.json").read_text())))
    (wall, doc), (wall2, doc2) = runs
    for d in (doc, doc2):
        d["metadata"].pop("created_at")
    themes = doc["themes"]
    complete = all(t["label"] and len(t["keywords"]) >= 5 and len(t["examples"]) >= 3 and t["rating"] is not None
                   and t["sentiment"] for t in themes)  # fmt: skip
    sae = doc["metadata"]["sae"]
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()},"
          f" load average {os.getloadavg()[0]:.1f}")
    print(f"rows: {len(frame)} (mean {frame['Review Text'].str.len().mean():.0f} characters)")
    print(f"wall time, cold cache: {wall:.1f} s (second run {wall2:.1f} s)")
    print(f"themes: {len(themes)}; every field filled (≥5 keywords, ≥3 examples): {complete}")
    print(f"SAE: {sae['n_latents']} latents, K={sae['k']}, FVU {sae['fvu']:.4f}, dead fraction {sae['dead_fraction']:.4f}")
    print(f"same file and seed → identical themes.json (apart from created_at): {doc == doc2}")
    print("top themes: " + " | ".join(t["label"] for t in themes[:8]))
    print("command: .venv/bin/python -m bench core --rows", args.rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
