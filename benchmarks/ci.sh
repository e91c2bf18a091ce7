#!/usr/bin/env bash
# CI for the asv suite, against the installed environment (asv.conf.json: "existing"; asv
# creates no environment and downloads nothing). Called by .ci/run; about a minute on 2 cores.
#
#   asv check --python=same      exit 1 if the suite does not import or a signature is wrong
#   asv run --python=same --quick --dry-run --show-stderr
#                                every benchmark once, nothing saved; exit 2 if any benchmark
#                                failed (a skip, NotImplementedError in setup, is not a failure)
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1
asv machine --yes >/dev/null
asv check --python=same
asv run --python=same --quick --dry-run --show-stderr --durations 5
