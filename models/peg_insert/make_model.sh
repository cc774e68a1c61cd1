#!/usr/bin/env bash
# Rebuilds models/peg_insert/cdp_peg.onnx: CDP (gamma 0.1) on 50 scripted peg_insert demonstrations,
# DDIM 4 steps (the best cell of the grid at 50 demos, 8/20 there, 10/40 on seeds 100000+ in fast_path_eval.txt). The same recipe as the grid cell gamma=0.1/demos=50/seed=0 of cdp_core/results/peg_insert
# (same demos, config and seeds), so the numbers there describe this model.
# train.steps=4000 pins the old budget this model was made with (sim_mlp.yaml is now the 24k recipe).
# About 10 minutes on an idle 2-core CPU. Run from the repository root after scripts/setup.sh.
set -euo pipefail
WORK=${WORK:-outputs/peg_model}
OUT=models/peg_insert
mkdir -p "$WORK"
[ -f "$WORK/demos/meta.json" ] || .venv/bin/cdp demos --task peg_insert --episodes 50 --seed 0 --out "$WORK/demos"
.venv/bin/cdp train --config cdp_core/cdp_core/configs/sim_mlp.yaml \
    --set data.path="$WORK/demos" --set data.max_episodes=50 --set contraction.gamma=0.1 --set train.seed=0 --set train.steps=4000 \
    --out "$WORK/run"
.venv/bin/cdp export --checkpoint "$WORK/run/checkpoints/latest.pt" --sampler ddim --steps 4 \
    --out "$OUT/cdp_peg.onnx"
.venv/bin/cdp eval --model "$OUT/cdp_peg.onnx" --task peg_insert --episodes 40 --seed 100000 \
    | tee "$OUT/fast_path_eval.txt"
