#!/usr/bin/env bash
# One training run from its config files: stage I (cognition), then stage II (residual) on
# that base, then export of the result as shipped weights and the new default.
#   scripts/train_run.sh v4 rdc-v4 [options passed to both stages]
# reads scripts/configs/<run>-cognition.toml and <run>-residual.toml; a run without a
# cognition config retrains only stage II on the base its residual config names (init).
# See docs/training.md.
set -e
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
run=$1 name=$2
shift 2
if [ -f "scripts/configs/$run-cognition.toml" ]; then
    $PY -m rdcodec.train --config "scripts/configs/$run-cognition.toml" "$@"
fi
$PY -m rdcodec.train --config "scripts/configs/$run-residual.toml" "$@"
out=$($PY -c 'import sys, tomllib; print(tomllib.load(open(sys.argv[1], "rb"))["out"])' "scripts/configs/$run-residual.toml")
$PY -m rdcodec.train.export "$out/last.pt" --name "$name" --default
