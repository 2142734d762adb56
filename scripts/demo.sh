#!/usr/bin/env bash
# The main job, end to end on this machine: build the example layer for arm64 and inspect it.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${PLL_DEMO_OUT:-out/demo}
mkdir -p "$out"
cli=.venv/bin/lambda-layers

echo "== lambda-layers hash (program-time fingerprint: resolves, never builds)"
$cli hash examples/python-layer/requirements.txt --runtime python3.11 --arch arm64

echo "== lambda-layers build (auto builder: local when every package has a wheel, else Docker)"
$cli build examples/python-layer/requirements.txt --runtime python3.11 --arch arm64 \
  -o "$out/python-layer-arm64.zip"

echo "== lambda-layers inspect as arm64 (ok)"
$cli inspect "$out/python-layer-arm64.zip" --runtime python3.11 --arch arm64

echo "== the same zip inspected as x86_64 must fail (exit 1): the 'invalid ELF header' trap"
if $cli inspect "$out/python-layer-arm64.zip" --runtime python3.11 --arch x86_64 > "$out/x86.txt"; then
  echo "demo: inspection as x86_64 unexpectedly passed" >&2; exit 1
fi
head -8 "$out/x86.txt"
