#!/usr/bin/env bash
# Run 2 (rdc-v2): 55 more minutes of the MSE base from run 1, the cognition stage I for 40 min,
# then stage II (residual branch) on the new base for 16 min. 2 CPU cores; see docs/training.md.
set -e
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
$PY -m rdcodec.train --stage base --init runs/res1/last.pt --budget-minutes 55 --out runs/base2 \
    --crop 128 --batch 16 --lr 1e-4 "$@"
$PY -m rdcodec.train --stage cognition --init runs/base2/last.pt --budget-minutes 40 --out runs/cog1 \
    --crop 128 --batch 16 --lr 5e-5 --mse-anchor 0.1 "$@"
$PY -m rdcodec.train --stage residual --init runs/cog1/last.pt --budget-minutes 16 --out runs/res2 \
    --crop 128 --batch 16 --lr 2e-4 "$@"
$PY -m rdcodec.train.export runs/res2/last.pt --name rdc-v2 --default
