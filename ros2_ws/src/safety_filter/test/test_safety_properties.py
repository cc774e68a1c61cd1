"""Property-based tests: whatever arrives, every output respects the promised limits.

Arbitrary sequences of chunks (huge jumps, NaN/inf, out-of-limit values, random due times and
gaps), e-stops, resets, speed scales (including NaN) and measured-state drifts; the output
stream is checked by :func:`safety_filter.verify.joint_stream_violations`, an independent
re-derivation of the limits (position with margin, position-dependent velocity,
acceleration, jerk as finite difference, workspace box, tool tilt).
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import event as note_event
from hypothesis import strategies as st

from safety_filter import CartesianSafetyFilter, SafetyConfig, SafetyFilter
from cdp_core.robot.kinematics import forward_kinematics
from cdp_core.robot.rotations import quat_to_matrix, tool_tilt
from safety_filter.verify import joint_stream_violations

Q0 = np.array([0.0, -0.3, 0.0, -2.2, 0.0, 1.9, 0.785])
CONFIG = SafetyConfig()
DT = CONFIG.dt

special = st.sampled_from([math.nan, math.inf, -math.inf, 50.0, -50.0, 3.5, -3.5])
offsets = st.lists(st.floats(-1.5, 1.5, allow_nan=False), min_size=7, max_size=7)

chunk_event = st.builds(
    lambda k, cdt, t0, base_cur, offs, jump, poison: ("chunk", k, cdt, t0, base_cur, offs, jump, poison),
    st.integers(1, 6),
    st.floats(0.01, 0.5),
    st.floats(-0.6, 0.6),
    st.booleans(),
    st.lists(offsets, min_size=6, max_size=6),
    st.floats(-4.0, 4.0),  # a huge jump added to one joint
    st.one_of(st.none(), st.tuples(st.integers(0, 5), st.integers(0, 6), special)),
)
#: Far-away goals a "push" keeps commanding for a while: below the box floor, out of the box
#: sideways / forwards, past joint limits, tool flipped over.
PUSH_GOALS = [
    Q0 + np.array([0.0, 1.2, 0.0, 0.0, 0.0, 0.0, 0.0]),
    Q0 + np.array([2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]),
    Q0 + np.array([-2.0, 0.4, 0.0, 0.6, 0.0, 0.0, 0.0]),
    Q0 + np.array([0.0, 0.8, 0.0, 1.9, 0.0, -0.5, 0.0]),
    Q0 + np.array([0.0, 0.0, 0.0, 0.0, 2.5, 0.0, 3.0]),
    Q0 + np.array([0.0, 0.0, 0.0, 0.0, 0.0, 2.0, 0.0]),
    Q0 + np.array([0.0, -1.5, 0.0, -1.0, 0.0, -1.5, 0.0]),
]
push_event = st.tuples(
    st.just("push"),
    st.integers(0, len(PUSH_GOALS) - 1),
    st.integers(10, 150),
    st.lists(st.floats(-0.3, 0.3), min_size=7, max_size=7),
)
event = st.one_of(
    chunk_event,
    chunk_event,
    chunk_event,
    push_event,
    push_event,
    push_event,
    push_event,
    st.tuples(st.just("estop"), st.one_of(st.none(), st.integers(0, 80))),  # None: stays latched
    st.just(("reset",)),
    st.tuples(st.just("speed"), st.one_of(st.floats(0.0, 1.0), st.just(math.nan), st.floats(-2.0, 3.0))),
    st.tuples(st.just("drift"), st.lists(st.floats(-0.4, 0.4, allow_nan=False), min_size=7, max_size=7)),
)
script = st.lists(st.tuples(st.integers(0, 25), event), min_size=5, max_size=30)


def _inside(q: np.ndarray, config: SafetyConfig) -> bool:
    lim = config.limits
    t = forward_kinematics(q)
    lo, hi = config.inner_box
    return bool(
        np.all(q >= lim.lower)
        and np.all(q <= lim.upper)
        and np.all(t[:3, 3] >= lo)
        and np.all(t[:3, 3] <= hi)
        and tool_tilt(t[:3, :3]) <= config.max_tilt_rad
    )


@settings(max_examples=70, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(script=script, start=st.lists(st.floats(-0.3, 0.3), min_size=7, max_size=7))
def test_every_output_respects_all_limits(script, start):
    q_start = Q0 + np.asarray(start)
    if not _inside(q_start, CONFIG):
        q_start = Q0
    f = SafetyFilter(CONFIG)
    t = 0.0
    f.sync(q_start, t)
    segments: list[list] = [[]]  # one segment: not even a resync may make the output step
    offset: np.ndarray | None = None  # measured = output + offset once a drift happened; decays

    def tick(n: int) -> None:
        nonlocal t, offset
        for _ in range(n):
            if offset is not None:
                measured = f.state[0] + offset
                if _inside(measured, CONFIG):
                    f.check_drift(measured, t)
                offset = offset * 0.97
            out = f.step(t)
            assert out is not None
            segments[-1].append(out)
            t = round(t + DT, 9)

    for wait, ev in script:
        tick(wait)
        kind = ev[0]
        if kind == "chunk":
            _, k, cdt, t0, base_cur, offs, jump, poison = ev
            base = f.state[0] if base_cur else Q0
            q = base + np.asarray(offs[:k])
            q[:, k % 7] += jump
            if poison is not None:
                row, col, value = poison
                q[row % k, col] = value
            reason = f.set_chunk(t + t0 + cdt * np.arange(k), q, "policy", t)
            if not np.isfinite(q).all():
                assert reason is not None and "NaN or infinite" in reason
        elif kind == "push":
            _, goal, ticks, noise = ev
            for _ in range(ticks):
                f.set_chunk(np.array([t]), (PUSH_GOALS[goal] + np.asarray(noise))[None], "policy", t)
                tick(1)
        elif kind == "estop":
            f.estop(t)
            if ev[1] is not None:
                tick(ev[1])
                f.reset(t)
        elif kind == "reset":
            f.reset(t)
        elif kind == "speed":
            f.set_speed_scale(ev[1])
        elif kind == "drift":
            offset = np.asarray(ev[1], dtype=np.float64)  # the arm found elsewhere (reflex, push)
    tick(60)  # no more input: the watchdog must bring everything to rest
    offset = None
    tick(200)  # measurements stop too: held, and any resync has ended or holds

    for kind in sorted({n.split(":")[0] for seg in segments for o in seg for n in o.interventions}):
        note_event(kind)  # coverage, shown by --hypothesis-show-statistics
    for seg in segments:
        if not seg:
            continue
        problems = joint_stream_violations(
            [o.position for o in seg], [o.velocity for o in seg], [o.acceleration for o in seg], CONFIG
        )
        assert problems == [], problems
    last = segments[-1][-1]
    assert np.all(last.velocity == 0.0) and np.all(last.acceleration == 0.0)
    assert last.mode in ("stale", "idle", "estop", "paused", "resync")


# -- Cartesian path ------------------------------------------------------------------------


def _quat(axis_angle) -> np.ndarray:
    """Quaternion (x, y, z, w) of 'tool down' rotated by a rotation vector."""
    r = np.asarray(axis_angle, dtype=np.float64)
    angle = np.linalg.norm(r)
    down = np.array([1.0, 0.0, 0.0, 0.0])  # 180 deg about x: tool z points to world -z
    if angle < 1e-12:
        return down
    qr = np.concatenate([np.sin(angle / 2) * r / angle, [np.cos(angle / 2)]])
    x1, y1, z1, w1 = qr
    x2, y2, z2, w2 = down
    return np.array(
        [
            w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
            w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2,
            w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2,
            w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2,
        ]
    )


pose_event = st.tuples(
    st.just("pose"),
    st.lists(st.floats(-1.5, 1.5), min_size=3, max_size=3),
    st.lists(st.floats(-2.0, 2.0), min_size=3, max_size=3),
    st.one_of(st.none(), st.tuples(st.integers(0, 6), special)),
    st.floats(-0.5, 0.3),
)
cart_event = st.one_of(
    pose_event, pose_event, st.just(("estop",)), st.just(("reset",)), st.tuples(st.just("speed"), st.floats(0.0, 1.0))
)


@settings(max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(script=st.lists(st.tuples(st.integers(0, 25), cart_event), min_size=3, max_size=20))
def test_cartesian_outputs_respect_limits(script):
    f = CartesianSafetyFilter(CONFIG)
    t = 0.0
    f.sync_joints(Q0, t)
    outs = []

    def tick(n: int) -> None:
        nonlocal t
        for _ in range(n):
            outs.append(f.step(t))
            t = round(t + DT, 9)

    for wait, ev in script:
        tick(wait)
        if ev[0] == "pose":
            _, pos, rot, poison, stamp_offset = ev
            values = np.concatenate([np.asarray(pos), _quat(rot)])
            if poison is not None:
                values[poison[0]] = poison[1]
            reason = f.set_target(values[:3], values[3:], t + stamp_offset, "teleop", t)
            if not np.isfinite(values).all():
                assert reason is not None
        elif ev[0] == "estop":
            f.estop(t)
        elif ev[0] == "reset":
            f.reset(t)
        else:
            f.set_speed_scale(ev[1])
    tick(60)

    x = np.array([o.position for o in outs])
    v = np.array([o.velocity for o in outs])
    a = np.array([o.acceleration for o in outs])
    assert np.isfinite(x).all() and np.isfinite(v).all()
    lo, hi = np.asarray(CONFIG.box_min), np.asarray(CONFIG.box_max)
    assert np.all(x >= lo - 1e-9) and np.all(x <= hi + 1e-9)
    tilts = [tool_tilt(quat_to_matrix(o.quaternion)) for o in outs]
    assert max(tilts) <= CONFIG.max_tilt_rad + 1e-6
    vt, at, jt = CONFIG.limits.cartesian_translation
    vr, ar, jr = CONFIG.limits.cartesian_rotation
    assert np.all(np.linalg.norm(v[:, :3], axis=1) <= vt + 1e-6)
    assert np.all(np.linalg.norm(v[:, 3:], axis=1) <= vr + 1e-6)
    assert np.all(np.linalg.norm(a[:, :3], axis=1) <= at + 1e-6)
    assert np.all(np.linalg.norm(a[:, 3:], axis=1) <= ar + 1e-6)
    jerk = np.diff(a, axis=0) / DT
    assert np.all(np.linalg.norm(jerk[:, :3], axis=1) <= jt * (1 + 1e-6) + 1e-6)
    assert np.all(np.linalg.norm(jerk[:, 3:], axis=1) <= jr * (1 + 1e-6) + 1e-6)
    assert np.all(outs[-1].velocity == 0.0)
