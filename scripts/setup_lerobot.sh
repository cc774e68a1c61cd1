#!/usr/bin/env bash
# LeRobot's own dataset reader/writer, for the round-trip tests against a client no one here wrote:
# .venv-lerobot with the lerobot-dataset package (a standalone LeRobotDataset). It imports
# torchvision, and PyPI's torchvision does not load beside the project's CPU build of torch 2.13.0,
# so this environment has torch 2.14.1 + torchvision 0.29.1 (the pair on this machine's package
# mirror; a CUDA build that runs on the CPU, about 6 GB). Only the tests' client script runs here
# (cdp_core/tests/lerobot_client.py); the project never imports it. Idempotent: re-running is cheap.
# LeRobot decodes camera video with torchcodec (torchvision 0.29 has no video reader any more),
# which loads the system's FFmpeg libraries: Debian bookworm's FFmpeg 5 runtime packages.
set -euo pipefail
cd "$(dirname "$0")/.."
FFMPEG_LIBS=(libavcodec59 libavformat59 libavutil57 libswscale6 libswresample4 libavdevice59 libavfilter8)
missing=()
for p in "${FFMPEG_LIBS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; } || \
    echo "warning: could not apt-get install ${missing[*]}; LeRobot's video decoding will fail" >&2
fi
PY=${PYTHON:-python3}
VENV=.venv-lerobot
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
stamp=$VENV/.cdp-setup-stamp
hash=$(sha256sum scripts/setup_lerobot.sh | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$hash" ]; then
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q "torch==2.14.1" "torchvision==0.29.1" "lerobot-dataset==0.4.4" "torchcodec==0.17.0"
  echo "$hash" > "$stamp"
fi
