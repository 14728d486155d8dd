#!/usr/bin/env bash
# Run 6 (rdc-v6): stage I continued on rdc-v4 with Imagenette in every batch, then stage II retrained on it.
exec "$(dirname "$0")/train_run.sh" v6 rdc-v6 "$@"
