#!/usr/bin/env bash
# cdp_core on its own: toy dataset -> train DP and CDP -> export ONNX -> report (no robot, no ROS).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/cdp demo --out "${1:-outputs/demo}" "${@:2}"
