#!/usr/bin/env bash
# The test command: set up from nothing if needed, then run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/setup_metaworld.sh  # Meta-World's own environment (MuJoCo 3.3.0): cdp_core/tests/test_metaworld.py
scripts/setup_lerobot.sh    # LeRobot's own dataset reader/writer (torch 2.14.1 + torchvision): cdp_core/tests/test_lerobot.py
# Lint, format and types first: seconds, and a failure names the file and line.
.venv/bin/ruff check --no-cache .
.venv/bin/ruff format --check --no-cache .
.venv/bin/mypy
exec .venv/bin/pytest "$@"
