"""Paths and loopback addresses of the preflight tests (a uniquely named module: every package's
test folder has a conftest.py, so ``from conftest import ...`` is ambiguous in a full run)."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[4]
#: This package's loopback range (other test suites use other 127.0.X.Y ranges).
SIM_IP, STUB_IP, NOBODY_IP = "127.0.77.1", "127.0.77.3", "127.0.77.9"
