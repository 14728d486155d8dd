#!/usr/bin/env bash
# Create .venv and install rdcodec with its test extras (idempotent; ~2 minutes the first time).
# torch 2.14.1 + torchvision 0.29.1 are pinned because compressai imports torchvision and these
# are the pair that installs and imports cleanly on this platform (see docs/install.md).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
if ! .venv/bin/python -c "import rdcodec, compressai, constriction, pytest, hypothesis" >/dev/null 2>&1; then
  .venv/bin/pip install --quiet --disable-pip-version-check torch==2.14.1 torchvision==0.29.1
  .venv/bin/pip install --quiet --disable-pip-version-check -e '.[test]'
fi
