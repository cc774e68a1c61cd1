#!/usr/bin/env bash
# Rebuilds models/peg_insert/cdp_peg_24k.onnx: CDP (gamma 0.1) on 50 scripted peg_insert demonstrations
# (seed 0), the converged recipe of cdp_core/cdp_core/configs/sim_mlp.yaml (24,000 steps, cosine LR
# annealed to 0), training seed 0, DDIM 8 steps, then the 40-episode fast-path evaluation
# (seeds 100000-100039) into fast_path_eval.txt.
# About 40 minutes on an idle 2-core CPU. Run from the repository root after scripts/setup.sh.
set -euo pipefail
WORK=${WORK:-outputs/peg_model}
OUT=models/peg_insert
mkdir -p "$WORK"
[ -f "$WORK/demos/meta.json" ] || .venv/bin/cdp demos --task peg_insert --episodes 50 --seed 0 --out "$WORK/demos"
.venv/bin/cdp train --config cdp_core/cdp_core/configs/sim_mlp.yaml \
    --set data.path="$WORK/demos" --set data.max_episodes=50 --set contraction.gamma=0.1 --set train.seed=0 \
    --out "$WORK/run"
.venv/bin/cdp export --checkpoint "$WORK/run/checkpoints/latest.pt" --sampler ddim --steps 8 \
    --out "$OUT/cdp_peg_24k.onnx"
.venv/bin/cdp eval --model "$OUT/cdp_peg_24k.onnx" --task peg_insert --episodes 40 --seed 100000 \
    | tee "$OUT/cdp_peg_24k_fast_path_eval.txt"
