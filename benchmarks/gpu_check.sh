#!/usr/bin/env bash
# One script for a machine with a GPU (the device tool): install without dependencies, run the
# CUDA-marked tests, time the engine (benchmarks/gpu_check.py) and run the l1 cells of
# configs/paper.toml at reduced steps through `hjbench run`; everything lands in $OUT.
#   OUT=/tmp/out bash benchmarks/gpu_check.sh            # on the GPU machine
#   OUT=/tmp/out bash benchmarks/gpu_check.sh --cpu      # reduced sizes on a CPU (CI runs this)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-/tmp/hjbench-gpu-check}"
mkdir -p "$OUT"
export XLA_PYTHON_CLIENT_PREALLOCATE=false MPLBACKEND=Agg
CPU=0; [ "${1:-}" = "--cpu" ] && CPU=1
start=$SECONDS
step() { printf '\n== %s (%ds) ==\n' "$*" "$((SECONDS - start))"; }

if [ "$CPU" -eq 0 ]; then
  step "install (--no-deps: the GPU machine has the dependencies and no registry)"
  python -m pip install --quiet --no-deps -e . || exit 1
  step "CUDA-marked tests"
  python -m pytest -q -p no:cacheprovider -m cuda tests 2>&1 | tee "$OUT/cuda_tests.txt" | tail -3
  rc=${PIPESTATUS[0]}; [ "$rc" -eq 0 ] || [ "$rc" -eq 5 ] || exit "$rc"
fi

step "engine timings"
if [ "$CPU" -eq 1 ]; then python benchmarks/gpu_check.py --out "$OUT" --reduced || exit 1
else python benchmarks/gpu_check.py --out "$OUT" || exit 1; fi

step "paper grid, l1 cells at reduced steps"
if [ "$CPU" -eq 1 ]; then
  args=(--device cpu --dims 2 --n-samples 500 --steps 50 --jobs 1)
else
  args=(--device cuda --dims 2,8 --steps 2000 --jobs 1)
fi
python -m hjbench run --config configs/paper.toml --priors l1 "${args[@]}" --out "$OUT/paper_l1" \
  --no-progress --no-figure > "$OUT/paper_l1.txt" 2>&1
rc=$?
tail -5 "$OUT/paper_l1.txt"
[ "$rc" -eq 0 ] || exit "$rc"
step "done: $OUT"
