#!/usr/bin/env bash
# Rebuilds the bundled reach_precise policies with the project's own tools: scripted
# demonstrations -> training (the converged recipe, cdp_core/cdp_core/configs/sim_mlp.yaml) ->
# convergence gate -> ONNX export -> fast-path evaluation. Two models, the same recipe:
#   cdp_reach.onnx  CDP (gamma 0.1), the stack's default policy
#   dp_reach.onnx   its DP twin (gamma 0)
# About 35 min (DP) + 50 min (CDP) on an idle 2-core CPU; resumable (re-run after a kill).
# Run from the repository root after scripts/setup.sh.
set -euo pipefail
WORK=${WORK:-outputs/default_reach_model}
OUT=models/reach_precise
mkdir -p "$WORK"
[ -f "$WORK/demos/meta.json" ] || .venv/bin/cdp demos --task reach_precise --episodes 200 --seed 0 --out "$WORK/demos"
for pair in "dp 0" "cdp 0.1"; do
  set -- $pair
  name=$1 gamma=$2
  resume=()
  [ -f "$WORK/$name/checkpoints/latest.pt" ] && resume=(--resume)
  .venv/bin/cdp train --config cdp_core/cdp_core/configs/sim_mlp.yaml \
      --set data.path="$WORK/demos" --set contraction.gamma="$gamma" --out "$WORK/$name" "${resume[@]}"
  .venv/bin/cdp export --checkpoint "$WORK/$name/checkpoints/latest.pt" --sampler ddim --steps 8 \
      --out "$OUT/${name}_reach.onnx"
  .venv/bin/cdp eval --model "$OUT/${name}_reach.onnx" --task reach_precise --episodes 40 --seed 100000 \
      | tee "$OUT/${name}_fast_path_eval.txt"
done
