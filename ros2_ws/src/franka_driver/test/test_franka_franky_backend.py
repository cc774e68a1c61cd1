"""FrankyBackend against a franky-sim server (its own process, its own loopback address)."""

from __future__ import annotations

import time

import numpy as np
import pytest
from backend_helpers import OFFSET, stream_to, wait_until_reached

from franka_driver.backend import DriverConfig
from franka_driver.franky_backend import FrankyBackend


@pytest.fixture
def backend(sim_server):
    be = FrankyBackend(
        DriverConfig(backend="franky", robot_ip=sim_server.address, realtime="ignore", gripper_enabled=True)
    )
    be.connect()
    yield be
    be.close()


def test_streamed_targets_are_reached_without_errors(backend):
    st = backend.read_state()
    assert st.error == "" and st.mode == "Idle"
    target = st.q + OFFSET
    errors = stream_to(backend, target, duration_s=1.5, rate_hz=50.0)
    assert errors == []
    err = wait_until_reached(backend, target, tol=2e-3)
    assert err < 2e-3, f"final joint error {err * 1e3:.2f} mrad"
    assert backend.read_state().error == ""


def test_control_thread_does_not_need_the_gil(backend):
    """Hold the GIL for 0.3 s mid-motion: the C++ loop must keep moving the arm and stay error-free."""
    q0 = backend.read_state().q
    # Far enough that the motion outlasts the test at the default dynamics factor (0.6): franky's
    # state stops advancing when a motion ends.
    target = q0 + 3 * OFFSET
    assert backend.command_joint(target)
    time.sleep(0.1)
    before = backend.read_state()
    big = list(range(3_000_000, 0, -1))
    t0 = time.monotonic()
    while time.monotonic() - t0 < 0.3:
        big.sort()  # list.sort on ints never releases the GIL
        big.reverse()
    after = backend.read_state()
    assert after.time - before.time > 0.25  # robot time advanced while we held the GIL ...
    assert np.abs(after.q - before.q).max() > 0.01  # ... and so did the motion
    assert after.error == ""
    assert wait_until_reached(backend, target, tol=2e-3) < 2e-3


def test_stop_brings_the_arm_to_rest(backend):
    q0 = backend.read_state().q
    assert backend.command_joint(q0 + 3 * OFFSET)
    # Stop mid-move: at the default dynamics factor (0.6) 0.5 s would already be most of the way.
    time.sleep(0.2)
    backend.stop()
    # franky-sim's idle hold first settles the PD tracking lag (mrad; a few 10 mrad when the
    # simulator runs below real time on a loaded machine), then the arm must stay put.
    time.sleep(0.5)
    st = backend.read_state()
    time.sleep(0.3)
    st2 = backend.read_state()
    assert np.abs(st2.q - st.q).max() < 1e-2
    assert np.abs(st2.q - (q0 + 3 * OFFSET)).max() > 0.05  # well short of the target
    assert st2.error == ""


def test_gripper_moves(backend):
    assert backend.gripper_status == "ok"
    assert backend.gripper_move(0.06, 0.05)
    time.sleep(0.2)  # the width poller runs at 20 Hz
    assert abs(backend.read_state().gripper_width - 0.06) < 2e-3
    assert backend.gripper_move(0.03, 0.05)
    time.sleep(0.2)
    assert abs(backend.read_state().gripper_width - 0.03) < 2e-3


def test_lost_connection_is_reported_and_commands_refused(sim_server):
    be = FrankyBackend(
        DriverConfig(backend="franky", robot_ip=sim_server.address, realtime="ignore", gripper_enabled=False)
    )
    be.connect()
    try:
        q0 = be.read_state().q
        assert be.command_joint(q0 + OFFSET)
        time.sleep(0.3)
        sim_server.kill()
        deadline = time.monotonic() + 15.0
        while time.monotonic() < deadline and not be.read_state().error:
            time.sleep(0.05)
        st = be.read_state()
        assert st.error, "a dead connection must show up as an error"
        print(f"franky error after losing the server: {st.error}")
        assert be.command_joint(q0) is False  # never moves out of an error by itself
        assert be.recover() is False
    finally:
        be.close()
