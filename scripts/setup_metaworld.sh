#!/usr/bin/env bash
# The Meta-World environment: .venv-metaworld with metaworld 3.1.1 and the MuJoCo 3.3.0 it needs
# (franky-sim in .venv needs MuJoCo 4, so the two cannot share an environment), the same pinned
# PyTorch, and cdp_core without its FR3-simulator extra. Idempotent: re-running is cheap.
#   scripts/setup_metaworld.sh && .venv-metaworld/bin/cdp metaworld --work outputs/mw --out cdp_core/results/metaworld
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=.venv-metaworld
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
stamp=$VENV/.cdp-setup-stamp
hash=$(cat scripts/setup_metaworld.sh cdp_core/pyproject.toml | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$hash" ]; then
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q "torch==2.13.0"
  "$VENV/bin/python" -m pip install -q "metaworld==3.1.1" "mujoco==3.3.0" scipy
  # compat: see scripts/setup.sh (its transitional-mode note is known, so filtered)
  PYTHONWARNINGS="ignore:Compat editable installs" "$VENV/bin/python" -m pip install -q -e cdp_core --config-settings editable_mode=compat
  echo "$hash" > "$stamp"
fi
