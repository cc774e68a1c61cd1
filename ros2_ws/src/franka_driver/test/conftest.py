"""Fixtures: a franky-sim server per test, in its own process, on its own loopback address.

A libfranka client in the server's process deadlocks, and a just-closed address can linger in
TIME_WAIT, so every test gets a fresh address from this package's range 127.0.1.1-127.0.1.200.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
HOME_Q = (0.0, -0.3, 0.0, -2.2, 0.0, 1.9, 0.785)
_next = {"host": 100 + (os.getpid() % 20) * 5}  # spread runs over the range; each test takes the next


def _address() -> str:
    host = _next["host"]
    _next["host"] = 100 + (host - 100 + 1) % 100
    return f"127.0.1.{host}"


class SimServer:
    def __init__(self, address: str, q0=HOME_Q):
        self.address = address
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "sim_server.py"), address, *map(str, q0)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60.0
        line = ""
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if "READY" in line or self.proc.poll() is not None:
                break
        if "READY" not in line:
            self.kill()
            raise RuntimeError(f"franky-sim server on {address} did not start: {line!r}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=5.0)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5.0)


@pytest.fixture
def sim_server():
    server = SimServer(_address())
    yield server
    server.kill()
