"""The core pipeline end to end: `feedback-themes analyze` (a subprocess) on 1,000 real clothing reviews.

Prints wall time (cold embedding cache), the number of themes, FVU, dead fraction, whether every theme has every
field filled, whether a second run gives byte-identical themes.json (apart from created_at), and the command.

With ``--compare-spans`` it instead runs the analysis twice, each with a cold cache: over whole comments
(``FEEDBACK_THEMES_SPANS=false``) and over their sentences (the default), and prints each one's wall time and peak
memory (the largest resident set of the analysing process) and the ratios (``--rows 0``: every review with text).

    .venv/bin/python -m bench core [--rows 1000] [--data ../shared/data]    # or: python bench/core_pipeline.py
    .venv/bin/python -m bench core --rows 0 --compare-spans
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
    parser.add_argument("--compare-spans", action="store_true", help="whole comments against spans: time, memory")
    args = parser.parse_args(argv)
    source = args.data / "womens_clothing_reviews" / "reviews.csv"
    if not source.exists():
        print(f"error: {source} not found (the shared data folder sits beside the checkout)", file=sys.stderr)
        return 2
    if args.compare_spans:
        return compare_spans(source, args.rows)
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


#: Runs a command and prints its wall time and the peak resident set of its process tree's largest process (MB).
MEASURE = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
           "subprocess.run(sys.argv[1:], check=True, capture_output=True); "
           "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)")  # fmt: skip


def compare_spans(source: Path, rows: int) -> int:
    """Whole comments against spans on the same reviews, each run with a cold cache: wall time and peak memory."""
    frame = pd.read_csv(source)
    frame = frame[frame["Review Text"].notna()]
    frame = frame.head(rows) if rows else frame
    figures = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        csv_path = tmp_path / "reviews.csv"
        frame.to_csv(csv_path, index=False)
        for mode, spans in (("comments", "false"), ("spans", "true")):
            env = {**os.environ, "FEEDBACK_THEMES_DATA_DIR": str(tmp_path / f"data-{mode}"),
                   "FEEDBACK_THEMES_SPANS": spans}  # fmt: skip
            cmd = [sys.executable, "-m", "service.cli", "analyze", str(csv_path), "--text-column", "Review Text",
                   "--rating-column", "Rating", "--out", str(tmp_path / mode), "--seed", "0"]  # fmt: skip
            out = subprocess.run([sys.executable, "-c", MEASURE, *cmd], env=env, check=True, capture_output=True,
                                 text=True, cwd=ROOT).stdout.split()  # fmt: skip
            meta = json.loads((tmp_path / mode / "themes.json").read_text())["metadata"]
            figures[mode] = (float(out[0]), float(out[1]), meta)
            print(f"{mode}: {figures[mode][0]:.1f} s, peak {figures[mode][1]:.0f} MB, {meta['n_themes']} themes, "
                  f"{meta['counts']['spans']} units ({meta['counts']['unique_texts']} distinct), "
                  f"SAE {meta['sae']['n_latents']} latents", flush=True)  # fmt: skip
    (t0, m0, _), (t1, m1, _) = figures["comments"], figures["spans"]
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, load average "
          f"{os.getloadavg()[0]:.1f}; rows: {len(frame)}")  # fmt: skip
    print(f"spans / comments: time ×{t1 / t0:.2f} (goal ≤ 2), peak memory ×{m1 / m0:.2f} (goal ≤ 1.5)")
    print(f"command: .venv/bin/python -m bench core --rows {rows} --compare-spans")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
