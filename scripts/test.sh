#!/usr/bin/env bash
# The test command: set up from nothing if needed, then run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/setup_metaworld.sh  # Meta-World's own environment (MuJoCo 3.3.0): cdp_core/tests/test_metaworld.py
exec .venv/bin/pytest "$@"
