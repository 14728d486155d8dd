#!/usr/bin/env bash
# Set up (if needed), then run the test suite. This is the README's test command and CI's.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/python -m pytest -q "$@"
