#!/usr/bin/env bash
# Compare two commits of hjbench with asv, offline, in the environment that is already installed.
#
# usage: benchmarks/compare.sh [-f FACTOR] [-b REGEX] BASE [CONTENDER] [-- ASV_RUN_ARGS...]
#
#   BASE, CONTENDER  git revisions (CONTENDER defaults to HEAD); both must be committed.
#   -f FACTOR        ratio above which a change is reported (asv compare --factor; default 1.1)
#   -b REGEX         only the benchmarks matching REGEX (asv run --bench), e.g. -b 'Fit|Query'
#   ASV_RUN_ARGS     passed to `asv run`, e.g. -- -a repeat=10 --show-stderr
#
# For each commit: a detached git worktree in a temporary directory, then
#   ASV_PYTHONPATH=<worktree> PYTHONPATH=<worktree> HJBENCH_PLUGINS=baselines \
#   HJBENCH_BENCH_ROOT=<worktree> asv run --python=same --set-commit-hash <sha> --record-samples
# so the interpreter running asv (with torch and the other dependencies already installed)
# imports hjbench and baselines from that worktree; asv creates no environment and downloads
# nothing. (asv's benchmark runner drops PYTHONPATH unless ASV_PYTHONPATH is set; PYTHONPATH is
# kept for the fresh interpreters of the timeraw_ benchmarks.) The benchmark suite itself is
# this checkout's benchmarks/, the same yardstick for both commits; benchmarks/common.py refuses
# to run if hjbench does not come from the worktree. Then
#   asv compare --split --factor FACTOR <base sha> <contender sha>
# prints the table (--record-samples lets asv compare use a Mann-Whitney U test on the raw
# timing samples instead of a cruder confidence-interval overlap). Results are kept in .asv/results (asv publish / asv preview show them).
#
# Exit status: 0 when nothing got worse, 1 when a benchmark got worse (+) or newly failed (!),
# 2 on a usage or git error, or when a commit has no results (its code did not import).
set -euo pipefail

factor=1.1
bench=""
usage() { sed -n '4,9p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
while getopts ":f:b:h" opt; do
  case "$opt" in
    f) factor="$OPTARG" ;;
    b) bench="$OPTARG" ;;
    *) usage ;;
  esac
done
shift $((OPTIND - 1))
[ $# -ge 1 ] || usage
base="$1"; shift
contender="HEAD"
if [ $# -ge 1 ] && [ "$1" != "--" ]; then contender="$1"; shift; fi
[ "${1:-}" = "--" ] && shift
extra=("$@")

root="$(git -C "$(dirname "$0")" rev-parse --show-toplevel)"
cd "$root"
sha_base="$(git rev-parse --verify --quiet "${base}^{commit}")" || { echo "not a commit: $base" >&2; exit 2; }
sha_cont="$(git rev-parse --verify --quiet "${contender}^{commit}")" || { echo "not a commit: $contender" >&2; exit 2; }

tmp="$(mktemp -d -t hjbench-asv-XXXXXX)"
cleanup() {
  for wt in "$tmp"/wt-*; do
    [ -d "$wt" ] && git worktree remove --force "$wt" >/dev/null 2>&1
  done
  git worktree prune
  rm -rf "$tmp"
}
trap cleanup EXIT

asv machine --yes >/dev/null  # record this machine once, never prompt

failed_runs=""
for sha in "$sha_base" "$sha_cont"; do
  wt="$tmp/wt-${sha:0:12}"
  [ -d "$wt" ] && continue  # BASE == CONTENDER
  git worktree add --detach --quiet "$wt" "$sha"
  echo "== asv run for ${sha:0:12} ($(git log -1 --format=%s "$sha")) from $wt"
  start=$SECONDS
  rc=0
  ASV_PYTHONPATH="$wt" PYTHONPATH="$wt${PYTHONPATH:+:$PYTHONPATH}" HJBENCH_PLUGINS=baselines \
    HJBENCH_BENCH_ROOT="$wt" OMP_NUM_THREADS=1 \
    asv run --python=same --set-commit-hash "$sha" --record-samples ${bench:+--bench "$bench"} "${extra[@]}" \
    || rc=$?
  case "$rc" in
    0) ;;
    2) failed_runs="$failed_runs ${sha:0:12}" ;;  # some benchmarks failed; shown as failed below
    *) echo "== the suite could not run at ${sha:0:12} (asv run exit $rc; the error is above)" ;;
  esac
  echo "== ${sha:0:12}: $((SECONDS - start)) s"
done

echo "== asv compare --split --factor $factor ${sha_base:0:12} ${sha_cont:0:12}"
rc=0
table="$(asv compare --split --factor "$factor" "$sha_base" "$sha_cont" 2>&1)" || rc=$?
printf '%s\n' "$table"
if [ "$rc" -ne 0 ]; then
  echo "asv compare failed (exit $rc): a commit without results cannot be compared"
  exit 2
fi
[ -z "$failed_runs" ] || echo "note: some benchmarks failed at:$failed_runs (asv run --show-stderr says why)"
worse="$(printf '%s\n' "$table" | grep -cE '^\| +[+!] +\|' || true)"
if [ "$worse" -gt 0 ]; then
  echo "$worse benchmark(s) got worse by more than a factor $factor (or newly failed)"
  exit 1
fi
echo "no benchmark got worse by more than a factor $factor"
