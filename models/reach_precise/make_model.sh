#!/usr/bin/env bash
# Rebuilds models/reach_precise/cdp_reach.onnx, the stack's default policy, with the project's
# own tools: scripted demonstrations -> CDP training -> ONNX export -> fast-path evaluation.
# About 15 minutes on an idle 2-core CPU. Run from the repository root after scripts/setup.sh.
set -euo pipefail
WORK=${WORK:-outputs/default_reach_model}
OUT=models/reach_precise
mkdir -p "$WORK"
[ -f "$WORK/demos/meta.json" ] || .venv/bin/cdp demos --task reach_precise --episodes 200 --seed 0 --out "$WORK/demos"
.venv/bin/cdp train --config cdp_core/cdp_core/configs/sim_mlp.yaml \
    --set data.path="$WORK/demos" --set train.steps=4000 --set contraction.gamma=0.1 \
    --out "$WORK/run"
.venv/bin/cdp export --checkpoint "$WORK/run/checkpoints/latest.pt" --sampler ddim --steps 8 \
    --out "$OUT/cdp_reach.onnx"
.venv/bin/cdp eval --model "$OUT/cdp_reach.onnx" --task reach_precise --episodes 40 --seed 100000 \
    | tee "$OUT/fast_path_eval.txt"
