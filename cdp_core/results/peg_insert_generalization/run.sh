#!/usr/bin/env bash
# Issue 13 peg experiment: the TCP-relative hole offset in the observation (12k steps, DP, 50 demos).
set -euo pipefail
cd "$(dirname "$0")/../../.."  # the repository root
name=$1; shift
OMP_NUM_THREADS=1 .venv/bin/cdp train --config cdp_core/cdp_core/configs/sim_mlp.yaml \
  --set data.path=${DATA:-outputs/r13b/peg50} --set train.steps=12000 --set contraction.gamma=0.0 --set train.seed=0 \
  --set "data.obs_keys=${KEYS:-[joint_pos, ee_pos, ee_quat, gripper_width, hole_pose, hole_pose_offset]}" \
  "$@" --out outputs/r13b/$name > outputs/r13b/$name.log 2>&1
.venv/bin/cdp export --checkpoint outputs/r13b/$name/checkpoints/latest.pt --sampler ddim --steps 8 --out outputs/r13b/$name.onnx >> outputs/r13b/$name.log 2>&1
