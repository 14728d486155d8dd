#!/usr/bin/env bash
# Run 4 (rdc-v4): stage I continued on rdc-v3 at a lower peak lr, then stage II retrained on it.
exec "$(dirname "$0")/train_run.sh" v4 rdc-v4 "$@"
