#!/usr/bin/env bash
# Run 7 (rdc-v7): stage I continued on rdc-v6 (same recipe), then stage II retrained with
# refinement blocks in the residual reconstruction.
exec "$(dirname "$0")/train_run.sh" v7 rdc-v7 "$@"
