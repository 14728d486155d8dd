#!/usr/bin/env bash
# Set up, then code the bundled example at three rates and decode each at beta 0 and 1.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
out=${1:-demo_out}
mkdir -p "$out"
for a in 0 0.5 1; do
  .venv/bin/rdcodec encode examples/kodim23.png --alpha "$a" -o "$out/kodim23_a$a.rdc" --force
  .venv/bin/rdcodec info "$out/kodim23_a$a.rdc"
  .venv/bin/rdcodec decode "$out/kodim23_a$a.rdc" --beta 0 -o "$out/kodim23_a${a}_b0.png" --force
  .venv/bin/rdcodec decode "$out/kodim23_a$a.rdc" --beta 1 -o "$out/kodim23_a${a}_b1.png" --force
done
echo "outputs in $out/"
