#!/usr/bin/env bash
# First model (issue 3): MSE base for 85 min, then the residual stage for 25 min, 2 CPU cores.
set -e
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
$PY -m rdcodec.train --stage base --budget-minutes 85 --out runs/base1 "$@"
$PY -m rdcodec.train --stage residual --init runs/base1/last.pt --budget-minutes 25 --out runs/res1 "$@"
