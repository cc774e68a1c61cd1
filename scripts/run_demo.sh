#!/usr/bin/env bash
# Main job on the embedded default: the ROS 2 stack (franky-sim FR3 + Franka driver + safety
# filter + policy node with the bundled CDP model) runs seeded reach_precise episodes, then
# prints the success rate and the policy's latency. Extra arguments go to cdp-sim-demo, e.g.
#   scripts/run_demo.sh --episodes 10 model:=models/my_policy.onnx backend:=pylibfranka
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/cdp-sim-demo "$@"
