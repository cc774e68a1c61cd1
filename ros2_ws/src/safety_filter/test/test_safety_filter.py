"""Unit tests of each behaviour of the joint-space SafetyFilter (no ROS)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from safety_filter import FR3Limits, SafetyConfig, SafetyFilter
from cdp_core.robot.kinematics import forward_kinematics
from safety_filter.verify import joint_stream_violations

Q0 = np.array([0.0, -0.3, 0.0, -2.2, 0.0, 1.9, 0.785])  # TCP ~ (0.46, 0, 0.40), pointing down
DT = 0.01


class Run:
    """Steps a filter on a 100 Hz clock and records every output."""

    def __init__(self, config: SafetyConfig | None = None, q0: np.ndarray = Q0):
        self.f = SafetyFilter(config)
        self.t = 0.0
        self.outs = []
        assert self.f.sync(q0, self.t) is None

    def chunk(self, positions, dt: float = 0.1, t0: float | None = None, source: str = "policy"):
        positions = np.atleast_2d(np.asarray(positions, dtype=np.float64))
        t0 = self.t if t0 is None else t0
        return self.f.set_chunk(t0 + dt * np.arange(len(positions)), positions, source, self.t)

    def steps(self, n: int, resend=None):
        for _ in range(n):
            if resend is not None:
                resend()
            out = self.f.step(self.t)
            self.outs.append(out)
            self.t = round(self.t + DT, 9)
        return self.outs[-1]

    def violations(self, **kw):
        o = self.outs
        return joint_stream_violations(
            [x.position for x in o], [x.velocity for x in o], [x.acceleration for x in o], self.f.config, **kw
        )

    def notes(self) -> str:
        return " | ".join(n for o in self.outs for n in o.interventions)


def test_no_output_before_sync_and_commands_refused():
    f = SafetyFilter()
    assert f.step(0.0) is None
    reason = f.set_chunk(np.array([0.0]), Q0[None], "policy", 0.0)
    assert reason is not None and "not synced" in reason


def test_tracks_a_reachable_chunk_within_limits():
    r = Run()
    goal = Q0 + np.array([0.3, 0.2, -0.2, 0.2, 0.3, -0.2, 0.4])
    assert r.chunk(np.stack([Q0, Q0 + 0.5 * (goal - Q0), goal]), dt=0.4) is None
    r.steps(10)
    for _ in range(15):  # then a policy resending the goal at 10 Hz
        assert r.chunk([goal]) is None
        r.steps(10)
    assert np.allclose(r.outs[-1].position, goal, atol=1e-6)
    assert np.allclose(r.outs[-1].velocity, 0.0, atol=1e-9)
    assert r.outs[-1].mode == "tracking"
    assert r.violations() == []


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_chunk_rejected_whole_previous_command_kept(bad):
    r = Run()
    goal = Q0 + 0.2
    assert r.chunk([goal, goal]) is None
    r.steps(5)
    poisoned = np.stack([Q0 + 1.0, Q0 + 1.0])
    poisoned[1, 3] = bad
    reason = r.chunk(poisoned)
    assert reason is not None and "NaN or infinite" in reason
    assert r.f.rejected["non_finite"] == 1
    for _ in range(30):  # the earlier chunk, resent, is still what the filter follows
        r.chunk([goal, goal])
        r.steps(5)
    assert np.allclose(r.outs[-1].position, goal, atol=1e-6)
    assert all(np.isfinite(o.position).all() for o in r.outs)


@pytest.mark.parametrize(
    "times, positions, words",
    [
        (np.array([0.0, 0.1]), np.zeros((2, 6)), "shape"),
        (np.array([0.0]), np.zeros((2, 7)), "shape"),
        (np.array([0.1, 0.1]), np.tile(Q0, (2, 1)), "increase"),
        (np.array([0.0, np.nan]), np.tile(Q0, (2, 1)), "times"),
        (np.array([-5.0, -4.9]), np.tile(Q0, (2, 1)), "already over"),
        (np.array([50.0, 50.1]), np.tile(Q0, (2, 1)), "future"),
    ],
)
def test_malformed_chunks_rejected_with_reason(times, positions, words):
    r = Run()
    r.t = 1.0
    reason = r.f.set_chunk(times + (0 if words in ("already over", "future") else r.t), positions, "policy", r.t)
    assert reason is not None and words in reason
    out = r.steps(3)
    assert out.mode == "idle" and np.allclose(out.position, Q0)


def test_out_of_limit_target_clamped_with_margin():
    r = Run(SafetyConfig(box_min=(-1.0, -1.0, -1.0), box_max=(1.0, 1.0, 1.5), max_tilt_rad=3.2))
    target = Q0.copy()
    target[3] = 0.5  # joint 4 upper limit is -0.1518
    target[5] = 9.0
    r.steps(400, resend=lambda: r.chunk([target]))
    lim = r.f.limits
    assert abs(r.outs[-1].position[3] - (lim.q_max[3] - lim.position_margin)) < 1e-6
    assert abs(r.outs[-1].position[5] - (lim.q_max[5] - lim.position_margin)) < 1e-6
    assert "position_clamped" in r.notes()
    assert r.violations(check_box=False) == []


def test_huge_jump_rate_limited_and_step_clamped():
    r = Run()
    target = Q0.copy()
    target[0] = 2.5
    r.steps(40, resend=lambda: r.chunk([target]))
    assert "step_clamped" in r.notes()
    assert r.violations() == []
    v = np.array([o.velocity[0] for o in r.outs])
    assert v.max() > 0.5 * r.f.limits.velocity[0]  # it does move, just within the limits


def test_stale_input_decelerates_and_holds():
    r = Run()
    target = Q0.copy()
    target[0] = 1.5
    r.steps(30, resend=lambda: r.chunk([target]))
    moving = r.outs[-1]
    assert abs(moving.velocity[0]) > 0.3
    r.steps(100)  # nothing more arrives
    stale = [o for o in r.outs[30:] if o.mode == "stale"]
    assert stale, "the watchdog never fired"
    first = r.outs.index(stale[0])
    assert first - 30 <= round(r.f.config.stale_timeout_s / DT) + 1
    speeds = [abs(o.velocity[0]) for o in r.outs[first:]]
    assert all(b <= a + 1e-9 for a, b in zip(speeds, speeds[1:]))  # monotone deceleration
    assert np.all(r.outs[-1].velocity == 0.0) and np.all(r.outs[-1].acceleration == 0.0)
    assert np.allclose(r.outs[-1].position, r.outs[-20].position, atol=0)  # holds
    assert r.outs[-1].position[0] < target[0] - 0.1  # did not continue to the old target
    assert r.violations() == []


def test_chunk_end_holds_last_point_until_stale():
    r = Run()
    goal = Q0 + 0.05
    assert r.chunk([Q0, goal], dt=0.05) is None
    r.steps(10)  # 0.1 s: chunk over (0.05 s) but not yet stale (0.15 s)
    assert r.outs[-1].mode == "tracking"
    r.steps(30)
    assert r.outs[-1].mode == "stale"
    assert np.all(np.abs(r.outs[-1].position - Q0) <= 0.05 + 1e-9)
    assert r.violations() == []


def test_estop_latched_until_reset_and_old_chunk_never_resumes():
    r = Run()
    target = Q0.copy()
    target[0] = 1.0
    long_chunk = lambda: r.chunk([Q0, target], dt=5.0, t0=0.0)  # valid for 5 s
    r.steps(20, resend=long_chunk)
    r.f.estop(r.t)
    r.steps(80)
    held = r.outs[-1].position.copy()
    assert r.outs[-1].mode == "estop" and np.all(r.outs[-1].velocity == 0)
    assert "e-stop" in long_chunk()  # refused while latched
    r.steps(5)
    assert np.array_equal(r.outs[-1].position, held)
    r.f.reset(r.t)
    reason = long_chunk()  # the same old chunk (observed before the reset) must not resume motion
    assert reason is not None and "before the last sync/reset" in reason
    r.steps(50)
    assert r.outs[-1].mode == "idle"
    assert np.array_equal(r.outs[-1].position, held)
    assert r.chunk([target]) is None  # a new command after the reset moves the arm again
    r.steps(20)
    assert r.outs[-1].position[0] > held[0] + 0.01
    assert r.violations() == []


def test_workspace_box_rejects_target_and_output_stays_inside():
    r = Run()
    down = Q0.copy()
    down[1] += 1.1  # shoulder forward: TCP goes far down, below z = 0.03
    assert forward_kinematics(down)[2, 3] < 0.0
    r.steps(250, resend=lambda: r.chunk([down]))
    assert "workspace_rejected" in r.notes()
    z = forward_kinematics(np.array([o.position for o in r.outs]))[:, 2, 3]
    assert z.min() >= r.f.config.box_min[2] + r.f.config.box_margin - 1e-9
    assert z.min() < 0.1  # it did go down towards the floor of the box
    assert np.allclose(r.outs[-1].velocity, 0.0)
    assert r.violations() == []


def test_workspace_braking_when_fast_motion_runs_at_the_box():
    """Targets just inside the box, approached fast: the braking path keeps the TCP inside."""
    cfg = SafetyConfig(box_min=(0.15, -0.55, 0.30), max_step_rad=0.6)
    r = Run(cfg)
    down = Q0.copy()
    down[1] += 0.9
    r.steps(250, resend=lambda: r.chunk([down]))
    z = forward_kinematics(np.array([o.position for o in r.outs]))[:, 2, 3]
    assert z.min() >= 0.30 + cfg.box_margin - 1e-9
    assert r.violations() == []


def test_speed_scale_zero_holds_and_one_resumes():
    r = Run()
    target = Q0.copy()
    target[0] = 1.5
    send = lambda: r.chunk([target])
    r.steps(30, resend=send)
    assert r.f.set_speed_scale(0.0) is None
    r.steps(60, resend=send)
    assert r.outs[-1].mode == "paused" and np.all(r.outs[-1].velocity == 0)
    held = r.outs[-1].position.copy()
    r.steps(10, resend=send)
    assert np.array_equal(r.outs[-1].position, held)
    r.f.set_speed_scale(0.25)
    r.steps(60, resend=send)
    assert np.max(np.abs([o.velocity[0] for o in r.outs[-30:]])) <= 0.25 * r.f.limits.velocity[0] + 1e-9
    assert r.outs[-1].position[0] > held[0]
    assert r.violations() == []


def test_nan_speed_scale_holds():
    r = Run()
    assert r.f.set_speed_scale(float("nan")) is not None
    assert r.f.speed_scale == 0.0


def test_resync_converges_jerk_limited_to_the_measured_joints_never_a_step():
    """The arm is found far from the output while it moves (a reflex, a push): the command is
    dropped, new ones are refused, and the output travels to the measured joints inside every
    limit (no step), then rests there and takes commands again."""
    r = Run()
    target = Q0.copy()
    target[0] = 1.0
    r.steps(40, resend=lambda: r.chunk([target]))
    assert np.max(np.abs(r.outs[-1].velocity)) > 0.1  # moving at speed when it happens
    assert r.f.check_drift(r.outs[-1].position + 0.01, r.t) is None  # small lag: fine
    measured = r.outs[-1].position.copy()
    measured[2] += 0.4  # e.g. after a reflex the arm is somewhere else
    why = r.f.check_drift(measured, r.t)
    assert why is not None and why.startswith("resync:")
    out = r.steps(1)
    assert out.mode == "resync"
    assert not np.allclose(out.position, measured)  # not snapped
    refused = r.chunk([target])
    assert refused is not None and refused.startswith("resyncing")
    for _ in range(400):
        if not r.f.resyncing:
            break
        r.steps(1, resend=lambda: r.f.check_drift(measured, r.t))
    assert not r.f.resyncing, "resync never ended"
    assert np.max(np.abs(r.outs[-1].position - measured)) <= r.f.config.resync_done_rad
    assert r.violations() == [], r.violations()
    steps = np.max(np.abs(np.diff([o.position for o in r.outs], axis=0)))
    assert steps <= r.f.limits.velocity.max() * DT + 1e-9
    assert r.chunk([measured + 0.05]) is None  # takes commands again
    assert r.f.interventions["resync"] >= 1 and r.f.rejected["resyncing"] == 1


def test_resync_waits_for_estop_and_never_moves_during_it():
    r = Run()
    measured = Q0.copy()
    measured[1] += 0.3
    assert r.f.check_drift(measured, r.t) is not None
    r.f.estop(r.t)
    r.steps(50, resend=lambda: r.f.check_drift(measured, r.t))
    assert np.allclose(r.outs[-1].position, Q0) and r.outs[-1].mode == "estop"
    r.f.reset(r.t)
    for _ in range(300):
        r.steps(1, resend=lambda: r.f.check_drift(measured, r.t))
        if not r.f.resyncing:
            break
    assert np.max(np.abs(r.outs[-1].position - measured)) <= r.f.config.resync_done_rad
    assert r.violations() == []


@pytest.mark.parametrize("delay_ticks", [0, 5, 20, 40])
def test_a_delayed_arm_never_falls_a_resync_behind(delay_ticks):
    """By construction, hold threshold + braking distance < resync tolerance: an arm that
    follows the output late (here 0 to 0.4 s) is never found resync_tolerance behind, even on
    the fastest move and its reversal; an arm that freezes stays within lag_hold_rad."""
    r = Run()
    far = Q0 + np.array([1.2, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    back = Q0 - np.array([0.8, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    history = [Q0.copy()]
    worst = 0.0
    for k in range(600):
        goal = far if k < 250 else back  # full-speed move, then a reversal at speed
        r.chunk([goal])
        measured = history[max(0, len(history) - 1 - delay_ticks)]
        assert r.f.check_drift(measured, r.t) is None, f"resync at tick {k}"
        out = r.steps(1)
        history.append(out.position.copy())
        worst = max(worst, float(np.max(np.abs(out.position - measured))))
    assert r.f.interventions["resync"] == 0
    # A late arm still moving the old way after a reversal may open the gap past lag_hold_rad by
    # itself; the filter never widens it, so it stays below the resync tolerance.
    assert worst < r.f.config.resync_tolerance_rad, worst
    assert r.violations() == []


def test_a_frozen_arm_bounds_the_output_by_lag_hold():
    r = Run()
    goal = Q0 + np.array([0.0, 0.0, 0.0, 0.0, 1.5, 0.0, 0.0])
    for _ in range(300):
        r.chunk([goal])
        assert r.f.check_drift(Q0, r.t) is None
        r.steps(1)
    lead = max(float(np.max(np.abs(o.position - Q0))) for o in r.outs)
    assert lead <= r.f.config.lag_hold_rad + 1e-6
    assert np.max(np.abs(r.outs[-1].velocity)) < 1e-9  # waiting at rest, not creeping


def test_sync_inside_margin_may_move_inward_not_outward():
    q = Q0.copy()
    lim = FR3Limits()
    q[0] = lim.q_max[0] - 0.02  # inside the 0.05 margin
    r = Run(q0=q)
    out_target = q.copy()
    out_target[0] = 3.0
    r.steps(30, resend=lambda: r.chunk([out_target]))
    assert max(o.position[0] for o in r.outs) <= q[0] + 1e-9
    in_target = q.copy()
    in_target[0] = 1.0
    r.steps(60, resend=lambda: r.chunk([in_target]))
    assert r.outs[-1].position[0] < lim.upper[0]


def test_position_dependent_velocity_near_limit():
    """Joint 2 driven at its limit: velocity stays under libfranka's position-dependent bound."""
    cfg = SafetyConfig(box_min=(-1.0, -1.0, -1.0), box_max=(1.0, 1.0, 1.5), max_tilt_rad=3.2, max_step_rad=3.0)
    q = np.array([0.0, -1.0, 0.0, -1.5, 0.0, 1.5, 0.0])
    r = Run(cfg, q)
    target = q.copy()
    target[1] = 3.0
    r.steps(400, resend=lambda: r.chunk([target]))
    lo, hi = r.f.limits.velocity_bounds(np.array([o.position for o in r.outs]))
    v = np.array([o.velocity for o in r.outs])
    assert np.all(v <= hi + 1e-9)
    assert r.violations(check_box=False) == []
    assert abs(r.outs[-1].position[1] - r.f.limits.upper[1]) < 1e-6


def test_libfranka_position_dependent_formula():
    lim = FR3Limits(velocity_scale=1.0)
    mid = (np.asarray(lim.q_min) + np.asarray(lim.q_max)) / 2
    lo, hi = lim.velocity_bounds(mid)
    assert np.allclose(hi, np.asarray(lim.v_max) - 1e-3) and np.allclose(lo, -np.asarray(lim.v_max) + 1e-3)
    q = mid.copy()
    q[0] = 2.7
    _, hi = lim.velocity_bounds(q)
    assert hi[0] == pytest.approx(-0.30 + math.sqrt(12.0 * (2.7501 - 2.7)) - 1e-3)
    q[0] = 2.76
    _, hi = lim.velocity_bounds(q)
    assert hi[0] == 0.0


def test_teleop_source_and_intervention_counts():
    r = Run()
    r.chunk([Q0 + 0.1], source="teleop")
    r.steps(5)
    assert r.f.ticks == 5
    r.chunk(np.full((1, 7), np.nan))
    assert sum(r.f.rejected.values()) == 1


def test_limits_validation():
    with pytest.raises(ValueError):
        FR3Limits(velocity_scale=0.0)
    with pytest.raises(ValueError):
        FR3Limits(q_min=(0.0,) * 6)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        SafetyConfig(box_min=(0.5, 0.0, 0.0), box_max=(0.5, 1.0, 1.0))


def test_drop_command_holds_and_refuses_commands_observed_before_the_hand_over():
    """Source hand-over: the old source's chunk is dropped and cannot come back."""
    import numpy as np

    from safety_filter.filter import SafetyConfig, SafetyFilter

    f = SafetyFilter(SafetyConfig())
    q0 = np.array([0.0, -0.3, 0.0, -2.2, 0.0, 1.9, 0.785])
    f.sync(q0, 0.0)
    target = q0 + 0.2
    t = 0.0
    for k in range(30):
        if k % 5 == 0:  # the source keeps sending (heartbeat), as the policy node does
            assert f.set_chunk(np.array([0.0, 5.0]), np.stack([q0, target]), "policy", t) is None
        t += f.config.dt
        out = f.step(t)
    assert np.max(np.abs(out.velocity)) > 1e-3  # moving
    f.drop_command(t)
    assert f.set_chunk(np.array([t - 0.05, t + 5.0]), np.stack([q0, target]), "policy", t) is not None
    for _ in range(300):
        t += f.config.dt
        out = f.step(t)
    assert np.max(np.abs(out.velocity)) < 1e-9  # braked to a hold


def test_a_lagging_arm_slows_the_filter_down_and_it_waits():
    """Measured joints behind the output: speed scales down, then holds until the arm catches up."""
    import numpy as np

    from safety_filter.filter import SafetyConfig, SafetyFilter

    f = SafetyFilter(SafetyConfig())
    q0 = np.array([0.0, -0.3, 0.0, -2.2, 0.0, 1.9, 0.785])
    f.sync(q0, 0.0)
    target = q0 + np.array([1.0, 0, 0, 0, 0, 0, 0])
    t, outs = 0.0, []
    for k in range(150):
        if k % 5 == 0:
            f.set_chunk(np.array([t, t + 10.0]), np.stack([target, target]), "policy", t)
        t += f.config.dt
        f.check_drift(q0, t)  # the arm does not move at all
        outs.append(f.step(t))
    lead = max(abs(o.position[0] - q0[0]) for o in outs)
    assert lead < f.config.resync_tolerance_rad  # waited (braking included) instead of running into a resync
    assert f.interventions["resync"] == 0
    assert any("lagging" in " ".join(o.interventions) for o in outs)


def test_reasons_are_a_bounded_set_of_kinds_whatever_the_input():
    """Stamps, values and shapes that vary never create new counter keys (diagnostics stay bounded)."""
    from safety_filter.reasons import Intervention, Reject, kind_of

    r = Run()
    rng = np.random.default_rng(3)
    for k in range(400):
        t0 = r.t + rng.uniform(-30.0, 30.0)
        q = Q0 + rng.normal(0.0, 0.5, size=(int(rng.integers(1, 4)), 7))
        if k % 7 == 0:
            q[0, k % 7] = np.nan
        r.f.set_chunk(t0 + 0.1 * np.arange(len(q)), q, "policy", r.t)
        r.f.set_speed_scale(rng.choice([np.nan, rng.uniform(-1, 2)]))
        r.steps(1)
    assert set(r.f.rejected) <= {k.value for k in Reject}, r.f.rejected
    assert set(r.f.interventions) <= {k.value for k in Intervention}, r.f.interventions
    assert len(r.f.rejected) > 3
    assert all(kind_of(n) is not Intervention.OTHER for o in r.outs for n in o.interventions)
