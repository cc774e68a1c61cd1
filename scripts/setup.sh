#!/usr/bin/env bash
# One set-up path from a fresh machine: Debian packages, a virtual environment in .venv,
# pinned PyTorch and the project's packages (editable). Idempotent: re-running is cheap.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the project needs.
# Only installed when missing.
# libosmesa6: offscreen MuJoCo rendering (videos, simulated camera); libusb-1.0-0: pyrealsense2;
# libhidapi-hidraw0: the SpaceMouse (pyspacemouse -> easyhid -> hidapi over hidraw).
APT_PACKAGES=(libosmesa6 libusb-1.0-0 libhidapi-hidraw0)
missing=()
for p in "${APT_PACKAGES[@]+"${APT_PACKAGES[@]}"}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null || \
    echo "warning: could not apt-get install ${missing[*]}; continuing with what is there" >&2
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
. .venv/bin/activate
stamp=.venv/.cdp-setup-stamp
ROS_PACKAGES=(cdp_ros_common cdp_sim franka_driver safety_filter cdp_policy cdp_perception cdp_teleop cdp_recorder
  cdp_bringup cdp_preflight cdp_eval)
hash=$(cat scripts/setup.sh cdp_core/pyproject.toml ros2_ws/requirements.txt ros2_ws/src/*/setup.py \
  | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$hash" ]; then
  python -m pip install -q --upgrade pip
  # The CPU wheel of this exact version is what CI and developer machines have; a range
  # would pull the newest CUDA build (gigabytes). The robot PC's Docker image brings CUDA.
  python -m pip install -q "torch==2.13.0"
  # compat mode puts cdp_core/ on sys.path (a .pth entry), so "import cdp_core" also works when
  # run from the repository root, where the cdp_core/ folder would otherwise shadow the package.
  # setuptools prints a page per editable install: for cdp_core that compat mode is transitional
  # (if it is ever removed the install fails loudly, nothing breaks silently), for the others a
  # note about same-named folders. Both are known here, so the first run reads clean.
  export PYTHONWARNINGS="ignore:Compat editable installs,ignore:Editable installation"
  python -m pip install -q -e "cdp_core[sim]" pytest --config-settings editable_mode=compat
  # The test command's lint, format check and type check (ruff.toml, mypy.ini).
  python -m pip install -q "ruff==0.17.6" "mypy==1.13.0"
  # The ROS 2 stack: rclpy and messages from PyPI wheels, franky / pylibfranka, then the
  # ament_python packages themselves (the same packages colcon builds on the robot PC).
  python -m pip install -q -r ros2_ws/requirements.txt
  # The ROS packages in setuptools' default (lenient) editable mode: no folder of theirs sits at
  # the repository root, so nothing shadows them (cdp_core alone needs compat, above).
  pkg_args=()
  for pkg in "${ROS_PACKAGES[@]}"; do
    pkg_args+=(-e "ros2_ws/src/$pkg")
  done
  python -m pip install -q "${pkg_args[@]}"
  unset PYTHONWARNINGS
  echo "$hash" > "$stamp"
fi
