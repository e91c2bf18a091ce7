#!/usr/bin/env bash
# deepinv adapter check in its own virtual environment (hjbench.adapters.deepinv).
#
# deepinv needs torchvision, and on these machines torchvision imports only beside the CUDA
# build torch==2.14.1 / torchvision==0.29.1 (about 6.4 GB installed), so it stays out of the
# default environment that .ci/run sets up. This script creates the venv at $DEEPINV_VENV
# (default /tmp/hjbench-deepinv-venv), or reuses it when its python runs, installs the pinned
# torch pair, deepinv and this checkout, and runs tests/test_deepinv.py with
# HJBENCH_REQUIRE_DEEPINV=1, so a deepinv that does not import is a failure, not a skip.
# Exit status nonzero on any failure, including pytest collecting no tests (exit 5).
set -uo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1 MPLBACKEND=Agg XLA_PYTHON_CLIENT_PREALLOCATE=false

VENV="${DEEPINV_VENV:-/tmp/hjbench-deepinv-venv}"
TORCH_PINS=(torch==2.14.1 torchvision==0.29.1)
# deepinv comes through the project's own extra (pyproject.toml: deepinv = [...]); the
# extra  deepinv = ["deepinv>=0.5,<0.6"].
PROJECT=(-e ".[deepinv,test]")

start=$SECONDS
step() { printf '\n== %s (%ds) ==\n' "$*" "$((SECONDS - start))"; }

step "venv at $VENV"
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import pip" >/dev/null 2>&1; then
  echo "reusing it"
else
  if [ -e "$VENV" ] && [ ! -f "$VENV/pyvenv.cfg" ]; then
    echo "$VENV exists and is not a virtual environment; set DEEPINV_VENV to another path" >&2
    exit 1
  fi
  rm -rf "$VENV"
  python -m venv "$VENV" || exit 1
fi
PY="$VENV/bin/python"

step "install ${TORCH_PINS[*]} and this checkout with its deepinv extra"
"$PY" -m pip install -qq "${TORCH_PINS[@]}" "${PROJECT[@]}" || exit 1
"$PY" -c "import torch, torchvision, deepinv; print('torch', torch.__version__, '| torchvision',
torchvision.__version__, '| deepinv', deepinv.__version__)" || exit 1

step "tests/test_deepinv.py (HJBENCH_REQUIRE_DEEPINV=1)"
HJBENCH_REQUIRE_DEEPINV=1 "$PY" -m pytest tests/test_deepinv.py -q -p no:cacheprovider
rc=$?
if [ "$rc" -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi
[ "$rc" -eq 0 ] || exit "$rc"
step "deepinv adapter check passed"
