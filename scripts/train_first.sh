#!/usr/bin/env bash
# First model (issue 3): MSE base for 100 min, then the residual stage for 25 min, 2 CPU cores.
# (Steps 0-667 of the base ran with 256x256 crops, batch 8; the rest with 128x128, batch 16.)
set -e
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
$PY -m rdcodec.train --stage base --budget-minutes 100 --out runs/base1 --crop 128 --batch 16 "$@"
$PY -m rdcodec.train --stage residual --init runs/base1/last.pt --budget-minutes 25 --out runs/res1 --crop 128 --batch 16 "$@"
