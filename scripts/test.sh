#!/usr/bin/env bash
# The test command: set up from nothing if needed, then run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/pytest "$@"
