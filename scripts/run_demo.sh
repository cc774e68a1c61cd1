#!/usr/bin/env bash
# Main job on the embedded default: toy dataset -> train DP and CDP -> export ONNX -> report.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/cdp demo --out "${1:-outputs/demo}" "${@:2}"
