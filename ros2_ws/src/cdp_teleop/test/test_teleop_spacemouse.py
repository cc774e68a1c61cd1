"""SpaceMouse teleop: the mapping (pure), and the reader fed HID reports through pyspacemouse's own
decoder (its SpaceMouseDevice with the SpaceMouse Wireless spec) from a replayed report stream in
place of the USB device, on a virtual clock the test advances (no timing in the assertions)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from cdp_teleop.devices import SpaceMouse, SpaceMouseReader
from cdp_teleop.events import DISCARD
from cdp_teleop.mapping import (
    GRIPPER_TOGGLE,
    RECORD_TOGGLE,
    SpaceMouseLayout,
    SpaceMouseMapper,
    SpaceMouseSample,
    TeleopConfig,
    TeleopCore,
)

REPORTS = Path(__file__).parent / "data" / "spacemouse_wireless_reports.txt"


def sample(t: float, lin=(0, 0, 0), ang=(0, 0, 0), buttons=(0, 0)) -> SpaceMouseSample:
    return SpaceMouseSample(np.array(lin, float), np.array(ang, float), tuple(buttons), t)


# --- mapping ---------------------------------------------------------------------------------


def test_a_deflection_moves_the_tcp_along_the_base_axes_scaled_past_the_deadzone():
    m = SpaceMouseMapper(SpaceMouseLayout(deadzone=0.1, full_scale=0.7))
    inp = m.update([sample(0.0, lin=(0.7, -0.4, 0.05), ang=(0.0, 0.0, 0.9))], now=0.01)
    assert inp.deadman
    np.testing.assert_allclose(inp.linear, [1.0, -0.5, 0.0])  # z inside the deadzone
    np.testing.assert_allclose(inp.angular, [0.0, 0.0, 1.0])  # saturates at full_scale


def test_facing_the_robot_from_the_front_turns_the_device_frame_half_way():
    m = SpaceMouseMapper(SpaceMouseLayout(base_yaw_deg=180.0, deadzone=0.0, full_scale=1.0))
    inp = m.update([sample(0.0, lin=(0.5, 0.25, 0.5), ang=(0.5, 0.0, 0.5))], now=0.0)
    np.testing.assert_allclose(inp.linear, [-0.5, -0.25, 0.5], atol=1e-12)  # pushed away = towards the robot base
    np.testing.assert_allclose(inp.angular, [-0.5, 0.0, 0.5], atol=1e-12)


def test_a_centred_puck_or_a_silent_device_means_no_motion():
    m = SpaceMouseMapper(SpaceMouseLayout(stale_s=0.25))
    assert not m.update([sample(0.0, lin=(0.05, -0.05, 0.0))], now=0.0).deadman  # inside the deadzone
    assert m.update([sample(1.0, lin=(0.6, 0, 0))], now=1.1).deadman
    late = m.update([], now=1.3)  # no report for 0.3 s: the device was unplugged or stalled
    assert not late.deadman and not late.linear.any()


def test_button_presses_between_two_polls_are_not_lost():
    m = SpaceMouseMapper()
    inp = m.update([sample(0.00, buttons=(1, 0)), sample(0.01, buttons=(0, 0))], now=0.03)
    assert inp.events == [GRIPPER_TOGGLE]
    inp = m.update([sample(0.04, buttons=(0, 1)), sample(0.09, buttons=(0, 0))], now=0.1)
    assert inp.events == [RECORD_TOGGLE]


def test_holding_the_record_button_discards_once_and_does_not_toggle():
    m = SpaceMouseMapper(SpaceMouseLayout(long_press_s=1.0))
    assert m.update([sample(0.0, buttons=(0, 1))], now=0.0).events == []
    assert m.update([], now=0.5).events == []
    assert m.update([], now=1.05).events == [DISCARD]
    assert m.update([], now=1.5).events == []
    assert m.update([sample(1.6, buttons=(0, 0))], now=1.6).events == []  # the release does not start one


def test_the_teleop_core_moves_the_target_only_while_deflected():
    core = TeleopCore(TeleopConfig())
    q0 = np.array([0.0, -0.3, 0.0, -2.2, 0.0, 1.9, 0.785])
    core.measured(q0)
    m = SpaceMouseMapper()
    start = core.target_pos.copy()
    core.step(m.update([sample(0.0, lin=(0.7, 0, 0))], now=0.0), 0.1)
    assert core.target_pos[0] - start[0] > 1e-3 and abs(core.target_pos[1] - start[1]) < 1e-4
    moved = core.target_pos.copy()
    core.step(m.update([sample(0.1, lin=(0, 0, 0))], now=0.1), 0.1)
    np.testing.assert_allclose(core.target_pos, moved)


# --- reader: replayed HID reports through pyspacemouse's decoder -----------------------------


class VirtualClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


class ReplayedHID:
    """Stands in for easyhid's Device: hands out the recorded reports whose time has come."""

    product_string, manufacturer_string, release_number, serial_number = "SpaceMouse Wireless", "3Dconnexion", 1, ""

    def __init__(self, reports: list[tuple[float, bytes]], clock: VirtualClock, fail_after: int | None = None):
        self.reports, self.clock, self.fail_after = list(reports), clock, fail_after
        self.served = 0
        self.closed = False

    def open(self) -> None:
        pass

    def set_nonblocking(self, _enable: bool) -> None:
        pass

    def read(self, size: int = 64) -> bytes:
        if self.fail_after is not None and self.served >= self.fail_after:
            raise OSError("read error: device disconnected")
        if self.reports and self.reports[0][0] <= self.clock():
            self.served += 1
            return self.reports.pop(0)[1][:size]
        return b""

    def close(self) -> None:
        self.closed = True


def recorded_reports() -> list[tuple[float, bytes]]:
    rows = []
    for line in REPORTS.read_text().splitlines():
        if line and not line.startswith("#"):
            t_ms, hexbytes = line.split()
            rows.append((int(t_ms) / 1e3, bytes.fromhex(hexbytes)))
    return rows


def wireless_device(hid: ReplayedHID):
    pyspacemouse = pytest.importorskip("pyspacemouse")
    spec = pyspacemouse.apply_axis_convention(
        pyspacemouse.get_device_specs()["SpaceMouseWireless"], pyspacemouse.AxisConvention.ROS
    )
    dev = pyspacemouse.SpaceMouseDevice(info=spec, device=hid)
    dev.open()
    return dev


def advance(reader: SpaceMouseReader, clock: VirtualClock, t: float, served: int, hid: ReplayedHID) -> None:
    clock.t = t
    deadline = time.monotonic() + 5.0
    while hid.served < served or reader.reports < served:
        assert time.monotonic() < deadline, "the reader thread did not take the reports"
        time.sleep(0.002)


def test_replayed_reports_push_the_tcp_forward_then_toggle_gripper_and_recording():
    reports = recorded_reports()
    clock = VirtualClock()
    hid = ReplayedHID(reports, clock)
    mouse = SpaceMouse(SpaceMouseLayout(), device=wireless_device(hid))
    mouse.reader.clock = clock
    try:
        n_push = sum(1 for t, r in reports if r[0] == 1 and t <= 0.2)
        advance(mouse.reader, clock, 0.2, n_push, hid)
        inp = mouse.poll(0.2)
        # pushed away from the operator = +x of the base; the counter-clockwise twist = +yaw
        assert inp.deadman and inp.linear[0] > 0.9 and abs(inp.linear[1]) < 1e-9 and abs(inp.linear[2]) < 1e-9
        assert inp.angular[2] > 0.1 and abs(inp.angular[0]) < 1e-9
        advance(mouse.reader, clock, 0.208, n_push + 1, hid)
        assert not mouse.poll(0.208).deadman  # released
        advance(mouse.reader, clock, 0.36, len(reports), hid)
        assert mouse.poll(0.36).events == [GRIPPER_TOGGLE, RECORD_TOGGLE]
    finally:
        mouse.close()
    assert hid.closed and not mouse.reader.thread.is_alive()


def test_a_device_that_fails_mid_push_stops_the_motion_and_says_why():
    clock = VirtualClock()
    hid = ReplayedHID(recorded_reports(), clock, fail_after=5)
    mouse = SpaceMouse(SpaceMouseLayout(stale_s=0.25), device=wireless_device(hid))
    mouse.reader.clock = clock
    try:
        clock.t = 0.2
        deadline = time.monotonic() + 5.0
        while mouse.error is None:
            assert time.monotonic() < deadline
            time.sleep(0.002)
        assert "disconnected" in mouse.error
        assert mouse.poll(0.2).deadman  # the last push is 0 ms old ...
        clock.t = 0.5
        assert not mouse.poll(0.5).deadman  # ... and not believed once stale
    finally:
        mouse.close()


def test_take_never_waits_for_a_device_whose_read_hangs():
    release = threading.Event()

    class HangingDevice:
        name = "hanging"

        def read(self):
            release.wait(10.0)  # a USB read that does not come back
            raise OSError("gone")

        def close(self):
            release.set()

    reader = SpaceMouseReader(HangingDevice())
    t0 = time.monotonic()
    for _ in range(100):
        assert reader.take() == []
    assert time.monotonic() - t0 < 1.0  # bounded far above the ~1 ms this takes, not a timing test
    reader.close()
