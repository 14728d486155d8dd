#!/usr/bin/env bash
# Run 3 (rdc-v3): stage I continued on rdc-v2 with 192-px crops, then stage II retrained on it.
exec "$(dirname "$0")/train_run.sh" v3 rdc-v3 "$@"
