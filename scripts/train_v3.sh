#!/usr/bin/env bash
# Run 3 (rdc-v3): stage I continued on rdc-v2 with 192-px crops, then stage II retrained on it.
# The options live in scripts/configs/; see docs/training.md for what each run measured.
set -e
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
$PY -m rdcodec.train --config scripts/configs/v3-cognition.toml "$@"
$PY -m rdcodec.train --config scripts/configs/v3-residual.toml "$@"
$PY -m rdcodec.train.export runs/res3/last.pt --name rdc-v3 --default
