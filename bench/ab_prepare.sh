#!/usr/bin/env bash
# An A/B run in one device call, step 1 (on this machine): the tree of a baseline commit under
# tmp/base (ignored by git), without bench/results. Step 2, on the device tool with
# carry [".whl", "tmp/base"]:  bash bench/gpu_run.sh ab
# which runs the same models in this tree (GPU 0) and in tmp/base (GPU 1) at the same time.
# Why: the same code's step differs by up to 3% between two H200 machines (BENCHMARKS.md,
# fifteenth session), more than most changes; two GPUs of one machine agree far better.
# Usage: bash bench/ab_prepare.sh COMMIT
set -euo pipefail
base=${1:?usage: bash bench/ab_prepare.sh COMMIT}
rev=$(git rev-parse --verify --quiet "$base^{commit}") || { echo "ab_prepare: no commit $base" >&2; exit 1; }
rm -rf tmp/base
mkdir -p tmp/base
git archive "$rev" | tar -x -C tmp/base --exclude=bench/results
echo "$rev" > tmp/base/.ab-commit
echo "tmp/base holds $(git log -1 --format='%h %s' "$rev" | cut -c1-80) ($(du -sh tmp/base | cut -f1))"
echo "on the device tool, carry [\".whl\", \"tmp/base\"] and run: bash bench/gpu_run.sh ab"
