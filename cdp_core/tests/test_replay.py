"""The same 1 kHz joint-target sequence through the fast path and through franky-sim's libfranka server.

The server test starts a real franky-sim SimulationServer (own process, on this worker's
loopback address 127.0.4.11) and streams with the real pylibfranka client (own process).
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("franky_sim")

from cdp_core.sim.env import HOME_Q  # noqa: E402
from cdp_core.sim.replay import (  # noqa: E402
    FR3_MAX_ACC,
    FR3_MAX_JERK,
    check_targets,
    compare,
    replay_fast_path,
    replay_server,
    synthetic_targets,
)

HOSTNAME = "127.0.4.11"

# Both joint-impedance laws hold a target against MuJoCo's joint friction (frictionloss up to
# 1.137 Nm against kp 2000-4500 Nm/rad), so an arm at rest may sit anywhere in a dead band of
# frictionloss/kp, up to ~5.7e-4 rad per joint, depending on how it got there. Two runs whose
# history differs by a repeated or skipped 1 ms command may therefore rest up to about twice
# that apart: 2e-3 rad, which at the FR3's ~0.5-0.9 m lever arms is well under 1 mm at the TCP.
# Measured: 1e-6 to 7e-5 rad and under 0.003 mm (see results/replay/README.md).
FINAL_JOINT_TOL_RAD = 2e-3
FINAL_TCP_TOL_MM = 1.0


def test_synthetic_targets_are_a_valid_motion_generator_command():
    t = synthetic_targets(3.0)
    assert t.shape == (3001, 7)
    assert np.array_equal(t[0], HOME_Q)
    assert np.array_equal(t[-1], t[-300])  # ends in a hold, so both paths come to rest
    acc = np.diff(t, n=2, axis=0) / 1e-6
    jerk = np.diff(t, n=3, axis=0) / 1e-9
    assert (np.abs(acc) < FR3_MAX_ACC).all() and (np.abs(jerk) < FR3_MAX_JERK).all()
    assert np.abs(t - HOME_Q).max() > 0.2  # it does move
    check_targets(t)


def test_check_targets_rejects_what_a_robot_would():
    t = synthetic_targets(1.5)
    jump = t.copy()
    jump[700:, 3] += 0.01  # a 1 cm/1 ms step: 10 rad/s, far beyond the velocity limit
    with pytest.raises(ValueError, match="velocity"):
        check_targets(jump)
    with pytest.raises(ValueError, match="start pose"):
        check_targets(t + 0.1)
    with pytest.raises(ValueError, match="non-finite"):
        check_targets(np.where(np.arange(len(t))[:, None] == 5, np.nan, t))
    with pytest.raises(ValueError, match=r"\[n >= 2, 7\]"):
        check_targets(t[:, :6])


def test_fast_path_and_franky_sim_server_end_in_the_same_place():
    targets = synthetic_targets(1.5)
    fast = replay_fast_path(targets, "reach_precise")
    srv = replay_server(targets, "reach_precise", HOSTNAME)
    report = compare(targets, fast, srv, "reach_precise")

    assert report["libfranka_errors"] == []
    # the client streamed the whole sequence (robot time reached its end)
    assert report["timing"]["client_robot_time_ms"] >= len(targets) - 1
    # same scene, same physics, same tracking law: the server's own applied targets replayed
    # in-process from its own start state reproduce its trajectory exactly
    assert report["decomposition"]["physics_identity_rad"] < 1e-12
    for key in ("server_vs_fast", "client_vs_fast"):
        d = report["final"][key]
        assert d["joint_max_abs_rad"] < FINAL_JOINT_TOL_RAD, (key, d)
        assert d["tcp_mm"] < FINAL_TCP_TOL_MM, (key, d)
    # and the arm really went somewhere on both paths (not both stuck at home)
    assert np.abs(np.array(report["final"]["server_q"]) - HOME_Q).max() > 0.2
    assert np.abs(np.array(report["final"]["client_q"]) - targets[-1]).max() < FINAL_JOINT_TOL_RAD


def test_repeats_and_skips_are_counted_from_the_applied_targets():
    from cdp_core.sim.replay import _target_indices

    t = synthetic_targets(1.5)
    revisit = np.vstack([t[:-300], t[-302::-1][:50]])  # goes back over its own path
    applied = np.vstack([t[:1], t[:10], t[10:11], t[12:20], t[-5:]])  # a repeat at 10, a skip of 11
    idx = _target_indices(applied, t)
    assert list(idx[:12]) == [0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
    assert list(idx[12:14]) == [12, 13]
    steps = np.diff(idx[1:])
    assert (steps[:19] == 0).sum() == 0 and (steps == 2).sum() == 1
    # a target met again later in the sequence is still a repeat where it is applied twice in a row
    idx = _target_indices(np.vstack([revisit[:1200], revisit[1199:1200], revisit[1200:]]), revisit)
    assert (np.diff(idx) == 0).sum() == 1 and (np.diff(idx) == 1).sum() == len(idx) - 2


def test_a_server_that_cannot_start_is_a_clear_error():
    with pytest.raises(RuntimeError, match="did not start.*127.0.4.300"):
        replay_server(synthetic_targets(1.5), "reach_precise", "127.0.4.300")
