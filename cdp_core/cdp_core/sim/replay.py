"""Replay one 1 kHz joint-target sequence through the fast path and through franky-sim's server.

The fast path (:mod:`cdp_core.sim.env`) steps franky-sim's MuJoCo FR3 in-process and calls
``robot.joint_position_control(target)`` before every 1 ms physics step. The robot-in-the-loop
path runs franky-sim's ``SimulationServer`` (the libfranka-protocol server the ROS stack
drives) in its own process with the same task scene, and the official ``pylibfranka`` client,
in a second process, streams the same targets as a joint-position motion generator at 1 kHz.

Both paths run the same scene, physics and tracking law, so any difference in where the arm
ends up comes from the network loop: a command that reaches the server one tick late leaves the
previous target applied for one more tick (a *repeat*), and two commands in one tick drop the
older one (a *skip*). :func:`compare` measures the difference (joints in rad, TCP in mm, at
checkpoints and at the end) and the loop's timing; it also replays the targets the server
actually applied through the fast path, which must reproduce the server's trajectory: that
separates "same physics" from "same timing".

``python -m cdp_core.sim.replay --task reach_precise --seconds 3 --hostname 127.0.4.1``
"""

from __future__ import annotations

import argparse
import bisect
import json
import multiprocessing as mp
import queue
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..robot.kinematics import tcp_position
from ..robot.limits import FR3
from ..robot.trajectories import minimum_jerk
from .env import HOME_Q, PHYSICS_DT, build_task_simulator
from .tasks import Task, get_task

#: The FR3's hardware velocity / acceleration / jerk limits: a command sequence beyond these is
#: rejected by a real robot.
FR3_MAX_VEL, FR3_MAX_ACC, FR3_MAX_JERK = FR3.hardware

#: Offsets from HOME_Q (rad) that the synthetic motion visits in turn: every joint moves in both
#: directions, and the tool stays well above the table and peg_insert's fixture.
_WAYPOINT_OFFSETS = np.array(
    [
        [0.25, 0.15, -0.15, 0.20, 0.20, -0.20, 0.30],
        [-0.20, -0.10, 0.20, -0.15, -0.25, 0.15, -0.30],
        [0.10, 0.05, 0.05, 0.10, 0.10, 0.10, 0.10],
    ]
)
SEGMENT_S = 0.9
HOLD_S = 0.3


# --- target sequences -------------------------------------------------------------------------


def min_jerk_targets(
    waypoints: np.ndarray, segment_s: float, hold_s: float = HOLD_S, dt: float = PHYSICS_DT
) -> np.ndarray:
    """Targets every ``dt`` s: a minimum-jerk (quintic) segment between consecutive waypoints, then a hold.

    Each segment starts and ends at rest, so velocity and acceleration are continuous; the first
    target is ``waypoints[0]`` itself (where the arm must be when the motion starts).
    """
    wp = np.asarray(waypoints, dtype=np.float64)
    if wp.ndim != 2 or wp.shape[1] != 7 or len(wp) < 2 or not np.isfinite(wp).all():
        raise ValueError(f"waypoints must be a finite [n >= 2, 7] array, got shape {wp.shape}")
    n = int(round(segment_s / dt))
    if n < 2:
        raise ValueError(f"segment_s={segment_s} is shorter than two control periods")
    s = np.arange(1, n + 1) / n
    blend = minimum_jerk(s)[:, None]
    parts = [wp[:1]]
    for a, b in zip(wp[:-1], wp[1:]):
        parts.append(a + (b - a) * blend)
    parts.append(np.repeat(wp[-1:], int(round(hold_s / dt)), axis=0))
    return np.concatenate(parts)


def synthetic_targets(
    seconds: float, start: np.ndarray = HOME_Q, segment_s: float = SEGMENT_S, hold_s: float = HOLD_S
) -> np.ndarray:
    """A smooth ``seconds``-long motion from ``start`` through fixed waypoints near it, ending in a hold."""
    segments = max(1, int(round((seconds - hold_s) / segment_s)))
    seg = (seconds - hold_s) / segments
    if seg < 0.3:
        raise ValueError(f"seconds={seconds} leaves under 0.3 s per segment: too short for this motion")
    offsets = [_WAYPOINT_OFFSETS[i % len(_WAYPOINT_OFFSETS)] for i in range(segments)]
    waypoints = np.vstack([start] + [start + o for o in offsets])
    return min_jerk_targets(waypoints, seg, hold_s)


def check_targets(targets: np.ndarray, start: np.ndarray = HOME_Q, dt: float = PHYSICS_DT) -> np.ndarray:
    """``targets`` as a float [n, 7] array, or a ValueError naming what a real FR3 would reject.

    The arm is at rest at ``start`` before the first target, so the checks include the step from rest.
    """
    t = np.asarray(targets, dtype=np.float64)
    if t.ndim != 2 or t.shape[1] != 7 or len(t) < 2:
        raise ValueError(f"targets must be an [n >= 2, 7] array, got shape {t.shape}")
    if not np.isfinite(t).all():
        raise ValueError("targets contain non-finite values")
    if np.abs(t[0] - start).max() > 1e-3:
        raise ValueError(f"first target is {np.abs(t[0] - start).max():.4f} rad from the start pose {start}")
    padded = np.vstack([start, start, start, t])  # at rest before the motion
    vel = np.diff(padded, axis=0) / dt
    acc = np.diff(vel, axis=0) / dt
    jerk = np.diff(acc, axis=0) / dt
    for name, value, limit in (
        ("velocity", np.abs(vel) / FR3_MAX_VEL, 1.0),
        ("acceleration", np.abs(acc) / FR3_MAX_ACC, 1.0),
        ("jerk", np.abs(jerk) / FR3_MAX_JERK, 1.0),
    ):
        if value.max() > limit:
            step, joint = np.unravel_index(np.argmax(value), value.shape)
            raise ValueError(f"targets exceed the FR3 {name} limit at step {step}, joint {joint + 1}")
    return t


# --- fast path --------------------------------------------------------------------------------

#: Physics steps the fast path holds HOME_Q before the motion: the server idles there (holding its
#: initial pose) while the client connects, so both paths start from the same settled state.
SETTLE_STEPS = 500


@dataclass
class FastRun:
    """q[k]: the arm's joints after the physics step that applied ``targets[k]``."""

    q: np.ndarray
    wall_s: float


def _run_in_process(
    task: Task, applied: np.ndarray, settle_steps: int, initial_state: np.ndarray | None = None
) -> np.ndarray:
    """q after each step applying ``applied``; from ``initial_state`` (MuJoCo's full integration state) if given."""
    import mujoco

    sim, robot = build_task_simulator(task)
    sim.init()
    sim.start()
    if initial_state is not None:
        mujoco.mj_setState(sim.model, sim.data, np.asarray(initial_state), mujoco.mjtState.mjSTATE_INTEGRATION)
    else:
        for _ in range(settle_steps):
            robot.joint_position_control(HOME_Q)
            sim.step()
    q = np.empty_like(applied)
    for k, target in enumerate(applied):
        robot.joint_position_control(target)
        sim.step()
        q[k] = robot.inner_state.q
    return q


def replay_fast_path(targets: np.ndarray, task: Task | str, settle_steps: int = SETTLE_STEPS) -> FastRun:
    """Step ``targets`` in-process, one per 1 ms physics step, as :class:`~cdp_core.sim.env.FR3TaskEnv` does."""
    task = get_task(task) if isinstance(task, str) else task
    t0 = time.perf_counter()
    q = _run_in_process(task, check_targets(targets), settle_steps)
    return FastRun(q=q, wall_s=time.perf_counter() - t0)


# --- server path ------------------------------------------------------------------------------


@dataclass
class ServerRun:
    """What the pylibfranka client measured and what franky-sim's server did, tick by tick."""

    #: client: per control cycle, robot time since the motion started (ms), measured q, wall time (s)
    client_t_ms: np.ndarray
    client_q: np.ndarray
    client_wall: np.ndarray
    client_errors: list[str]
    #: server: from the tick that processed the Move command on, per tick: the target the tracking
    #: law applied, q after the physics step, wall time (s)
    server_applied: np.ndarray
    server_q: np.ndarray
    server_wall: np.ndarray
    #: MuJoCo's full integration state entering the server's first logged tick
    server_start_state: np.ndarray
    wall_s: float


def _serve(task_name: str, hostname: str, ready: Any, stop: Any, out: Any, max_s: float) -> None:
    """Server process: franky-sim's SimulationServer on the task scene, logging every tick."""
    try:
        import franky_sim

        sim, robot = build_task_simulator(get_task(task_name))
        applied: list[np.ndarray] = []
        track = robot.joint_position_control

        # Record the target the server hands to the tracking law (called once per tick in every
        # joint-position and idle tick); the call itself is unchanged.
        def recording(target_q: Any, has_new_command: bool = True) -> None:
            applied.append(np.array(target_q, dtype=np.float64))
            track(target_q, has_new_command=has_new_command)

        robot.joint_position_control = recording
        rows_t, rows_q, rows_w = [], [], []
        start_state = None
        with sim, franky_sim.SimulationServer(sim, hostname_candidates=[hostname]) as server:
            import mujoco

            rs = server.robot_servers[0]
            size = mujoco.mj_stateSize(sim.model, mujoco.mjtState.mjSTATE_INTEGRATION)
            pre = np.empty(size)
            ready.set()
            deadline = time.monotonic() + max_s
            while not stop.is_set() and time.monotonic() < deadline:
                if start_state is None:
                    # the full physics state entering the tick, kept for the tick the motion starts in
                    mujoco.mj_getState(sim.model, sim.data, pre, mujoco.mjtState.mjSTATE_INTEGRATION)
                server.run_once()
                tick_target = applied[-1]
                applied.clear()
                if start_state is None:
                    if rs.current_motion_id == 0:
                        continue
                    start_state = pre.copy()
                rows_t.append(tick_target)
                rows_q.append(np.array(robot.inner_state.q))
                rows_w.append(time.perf_counter())
        if start_state is None:
            out.put({"error": "the server never saw a motion start"})
            return
        out.put(
            {"applied": np.array(rows_t), "q": np.array(rows_q), "wall": np.array(rows_w), "start_state": start_state}
        )
    except BaseException as e:  # the parent must hear why, not wait for a timeout
        out.put({"error": f"{type(e).__name__}: {e}"})


def _client(hostname: str, targets: list[list[float]], realtime: str, out: Any) -> None:
    """Client process: pylibfranka's joint-position motion generator, one target per robot millisecond."""
    res: dict[str, Any] = {"t_ms": [], "q": [], "wall": [], "errors": []}
    try:
        import pylibfranka as plf

        rt = {"ignore": plf.RealtimeConfig.kIgnore, "enforce": plf.RealtimeConfig.kEnforce}[realtime]
        robot = plf.Robot(hostname, rt)
        ctrl = robot.start_joint_position_control(plf.ControllerMode.JointImpedance)
        last = len(targets) - 1
        t_ms = 0
        while True:
            state, period = ctrl.readOnce()
            # Index the sequence by robot time, as a real motion generator does: a state the
            # client missed advances time by more than 1 ms and its target is skipped.
            t_ms += int(round(period.to_sec() * 1000))
            res["t_ms"].append(t_ms)
            res["q"].append(list(state.q))
            res["wall"].append(time.perf_counter())
            cmd = plf.JointPositions(targets[min(t_ms, last)])
            if t_ms >= last:
                cmd.motion_finished = True
                ctrl.writeOnce(cmd)
                break
            ctrl.writeOnce(cmd)
        state = robot.read_once()
        for name in ("current_errors", "last_motion_errors"):
            errors = getattr(state, name)
            if errors:
                res["errors"].append(f"{name}: {errors}")
    except Exception as e:
        res["errors"].append(f"{type(e).__name__}: {e}")
    out.put(res)


def _get(q: Any, proc: Any, timeout: float, what: str) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return q.get(timeout=0.2)
        except queue.Empty:
            if not proc.is_alive() and q.empty():
                raise RuntimeError(f"the {what} process exited (code {proc.exitcode}) without a result") from None
            if time.monotonic() > deadline:
                raise TimeoutError(f"no result from the {what} process within {timeout:.0f} s") from None


def replay_server(
    targets: np.ndarray, task: Task | str, hostname: str, realtime: str = "ignore", connect_timeout_s: float = 60.0
) -> ServerRun:
    """Stream ``targets`` with pylibfranka to franky-sim's server running ``task``'s scene at ``hostname``.

    Server and client each get their own process (in one process they deadlock); ``realtime`` is
    pylibfranka's RealtimeConfig: "ignore" on a kernel without real-time scheduling, "enforce" on a
    robot PC. Both processes are ended before this returns, whatever happens.
    """
    task_name = task if isinstance(task, str) else task.spec.name
    get_task(task_name)
    targets = check_targets(targets)
    if realtime not in ("ignore", "enforce"):
        raise ValueError(f"realtime must be 'ignore' or 'enforce', got {realtime!r}")
    ctx = mp.get_context("spawn")
    ready, stop = ctx.Event(), ctx.Event()
    sq, cq = ctx.Queue(), ctx.Queue()
    motion_s = len(targets) * PHYSICS_DT
    server = ctx.Process(
        target=_serve,
        name="franky-sim-server",
        daemon=True,
        args=(task_name, hostname, ready, stop, sq, connect_timeout_s + 20 * motion_s + 60),
    )
    client = None
    t0 = time.perf_counter()
    try:
        server.start()
        deadline = time.monotonic() + connect_timeout_s
        while not ready.wait(0.1):
            if not server.is_alive() or time.monotonic() > deadline:
                break
        if not ready.is_set():
            try:
                why = sq.get(timeout=5.0).get("error", "no reason given")
            except queue.Empty:
                why = f"not ready within {connect_timeout_s:.0f} s"
            raise RuntimeError(f"franky-sim server at {hostname} did not start: {why}")
        client = ctx.Process(
            target=_client, name="pylibfranka-client", daemon=True, args=(hostname, targets.tolist(), realtime, cq)
        )
        client.start()
        # The server loop runs at 0.45-0.9x real time on a busy 2-core machine: allow generously.
        cres = _get(cq, client, connect_timeout_s + 10 * motion_s + 30, "pylibfranka client")
        time.sleep(0.1)  # let the server log a few ticks past the finish
        stop.set()
        sres = _get(sq, server, 60.0, "franky-sim server")
    finally:
        stop.set()
        for proc in (client, server):
            if proc is None or proc.pid is None:  # never started
                continue
            proc.join(timeout=10)
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=5)
    if "error" in sres:
        raise RuntimeError(f"franky-sim server: {sres['error']}; pylibfranka client: {cres['errors'] or 'no error'}")
    return ServerRun(
        client_t_ms=np.array(cres["t_ms"], dtype=np.int64),
        client_q=np.array(cres["q"]).reshape(-1, 7),
        client_wall=np.array(cres["wall"]),
        client_errors=cres["errors"],
        server_applied=sres["applied"],
        server_q=sres["q"],
        server_wall=sres["wall"],
        server_start_state=sres["start_state"],
        wall_s=time.perf_counter() - t0,
    )


# --- comparison -------------------------------------------------------------------------------


def _target_indices(applied: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """For each applied target, its index in ``targets``, -1 if it is none of them.

    A value that occurs several times in ``targets`` (a hold, a revisited waypoint) maps to the
    occurrence nearest the expected next index, so a tick that applies the same unique target
    again counts as a repeat and a hold counts as progress.
    """
    where: dict[bytes, list[int]] = {}
    for i, t in enumerate(targets):
        where.setdefault(t.tobytes(), []).append(i)
    out, expect = np.full(len(applied), -1), 0
    for j, a in enumerate(applied):
        idx = where.get(np.ascontiguousarray(a, dtype=np.float64).tobytes())
        if idx:
            k = bisect.bisect_left(idx, expect)
            out[j] = min(idx[max(k - 1, 0) : k + 1], key=lambda i: abs(i - expect))
            expect = out[j] + 1
    return out


def _pct(x: np.ndarray) -> dict[str, float]:
    if len(x) == 0:
        return {}
    return {"median": float(np.median(x)), "p99": float(np.percentile(x, 99)), "max": float(np.max(x))}


def compare(
    targets: np.ndarray, fast: FastRun, srv: ServerRun, task: Task | str, checkpoint_s: float = 0.5
) -> dict[str, Any]:
    """Where the two paths put the arm: joint (rad) and TCP (mm) differences at checkpoints and the end, plus timing.

    Alignment: fast step k applied ``targets[k]``; on the server, step k is the k-th tick after the
    one that first applied ``targets[0]``; the client's state at robot time t ms can reflect
    targets up to ``t - 1`` (the one sent in answer to the previous state), so it is set beside
    fast step t - 1.
    """
    task = get_task(task) if isinstance(task, str) else task
    targets = np.asarray(targets, dtype=np.float64)
    n = len(targets)

    def diff(qa: np.ndarray, qb: np.ndarray) -> dict[str, float]:
        tcp = np.linalg.norm(tcp_position(qa) - tcp_position(qb))
        return {"joint_max_abs_rad": float(np.abs(qa - qb).max()), "tcp_mm": float(tcp * 1000)}

    idx = _target_indices(srv.server_applied, targets)
    if not (idx == 0).any():
        raise RuntimeError("the server never applied the first target: the client's commands did not arrive")
    j0 = int(np.argmax(idx == 0))
    sq = srv.server_q[j0:]
    m = min(len(sq), n)
    report: dict[str, Any] = {"task": task.spec.name, "seconds": n * PHYSICS_DT, "targets": n}

    every = int(round(checkpoint_s / PHYSICS_DT))
    c_idx = {int(t): i for i, t in enumerate(srv.client_t_ms)}
    rows = []
    for k in sorted({*range(every - 1, n, every), n - 1}):
        row: dict[str, Any] = {"t_s": round((k + 1) * PHYSICS_DT, 3)}
        if k < m:
            row["server_vs_fast"] = diff(sq[k], fast.q[k])
        if k + 1 in c_idx:
            row["client_vs_fast"] = diff(srv.client_q[c_idx[k + 1]], fast.q[k])
        rows.append(row)
    report["checkpoints"] = rows

    final_client = srv.client_q[-1]
    k_client = min(int(srv.client_t_ms[-1]) - 1, n - 1)
    report["final"] = {
        "fast_q": fast.q[-1].tolist(),
        "client_q": final_client.tolist(),
        "server_q": sq[m - 1].tolist(),
        "client_vs_fast": diff(final_client, fast.q[k_client]),
        "server_vs_fast": diff(sq[m - 1], fast.q[m - 1]),
    }
    err = np.abs(sq[:m] - fast.q[:m]).max(axis=1)
    tcp = [diff(sq[k], fast.q[k])["tcp_mm"] for k in range(0, m, 5)]  # every 5 ms is plenty for a max
    report["trajectory_max_server_vs_fast"] = {
        "joint_max_abs_rad": float(err.max()),
        "at_t_s": round((int(err.argmax()) + 1) * PHYSICS_DT, 3),
        "tcp_mm": float(max(tcp)),
    }

    # Same physics? The targets the server applied, from the server's own start state, in-process.
    q_same = _run_in_process(task, srv.server_applied, 0, srv.server_start_state)
    # Timing alone: the nominal targets from the server's state when the first one was applied.
    q_timing = _run_in_process(task, targets[:m], 0, _state_after(task, srv, j0))
    report["decomposition"] = {
        "physics_identity_rad": float(np.abs(q_same - srv.server_q).max()),
        "timing_only_trajectory_max_rad": float(np.abs(q_timing - sq[:m]).max()),
        "timing_only_final_rad": float(np.abs(q_timing[-1] - sq[m - 1]).max()),
        "start_state_only_final_rad": float(np.abs(q_timing[-1] - fast.q[m - 1]).max()),
    }

    steps = np.diff(idx[j0 : j0 + m])
    dur = np.diff(srv.client_t_ms)
    report["timing"] = {
        "client_cycles": int(len(srv.client_t_ms)),
        "client_robot_time_ms": int(srv.client_t_ms[-1]),
        "client_lost_states": int(np.clip(dur - 1, 0, None).sum()),
        "client_cycle_wall_ms": _pct(np.diff(srv.client_wall) * 1000),
        "server_tick_wall_ms": _pct(np.diff(srv.server_wall[j0 : j0 + m]) * 1000),
        "server_rate_hz": float((m - 1) / max(srv.server_wall[j0 + m - 1] - srv.server_wall[j0], 1e-9)),
        "server_repeated_targets": int((steps == 0).sum()),
        "server_skipped_targets": int(np.clip(steps - 1, 0, None).sum()),
        "server_start_ticks": j0,
        "fast_path_wall_s": fast.wall_s,
        "server_path_wall_s": srv.wall_s,
    }
    report["libfranka_errors"] = list(srv.client_errors)
    return report


def _state_after(task: Task, srv: ServerRun, ticks: int) -> np.ndarray:
    """The server's full physics state after its first ``ticks`` logged ticks (re-run exactly in-process)."""
    import mujoco

    sim, robot = build_task_simulator(task)
    sim.init()
    sim.start()
    mujoco.mj_setState(sim.model, sim.data, srv.server_start_state, mujoco.mjtState.mjSTATE_INTEGRATION)
    for target in srv.server_applied[:ticks]:
        robot.joint_position_control(target)
        sim.step()
    state = np.empty(mujoco.mj_stateSize(sim.model, mujoco.mjtState.mjSTATE_INTEGRATION))
    mujoco.mj_getState(sim.model, sim.data, state, mujoco.mjtState.mjSTATE_INTEGRATION)
    return state


def run(task: str, seconds: float, hostname: str, realtime: str = "ignore") -> dict[str, Any]:
    """Build the synthetic sequence, replay it on both paths, compare."""
    t = get_task(task)
    targets = synthetic_targets(seconds)
    fast = replay_fast_path(targets, t)
    srv = replay_server(targets, t, hostname, realtime)
    return compare(targets, fast, srv, t)


def _print(report: dict[str, Any]) -> None:
    print(f"task {report['task']}: {report['seconds']:.3f} s, {report['targets']} targets at 1 kHz")
    for row in report["checkpoints"]:
        parts = [f"t={row['t_s']:.3f}s"]
        for key in ("server_vs_fast", "client_vs_fast"):
            if key in row:
                parts.append(f"{key}: {row[key]['joint_max_abs_rad']:.2e} rad / {row[key]['tcp_mm']:.3f} mm")
        print("  " + "  ".join(parts))
    for key, d in report["final"].items():
        if key.endswith("_q"):
            continue
        print(f"  final {key}: {d['joint_max_abs_rad']:.2e} rad, TCP {d['tcp_mm']:.4f} mm")
    tr = report["trajectory_max_server_vs_fast"]
    print(
        f"  trajectory max server vs fast: {tr['joint_max_abs_rad']:.2e} rad (at t={tr['at_t_s']} s), "
        f"TCP {tr['tcp_mm']:.4f} mm"
    )
    print("  decomposition: " + json.dumps(report["decomposition"]))
    print("  timing: " + json.dumps(report["timing"]))
    print(f"  libfranka errors: {report['libfranka_errors'] or 'none'}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="reach_precise")
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--hostname", default="127.0.4.1", help="loopback address for the franky-sim server")
    ap.add_argument(
        "--realtime",
        choices=("ignore", "enforce"),
        default="ignore",
        help="pylibfranka RealtimeConfig (enforce on a robot PC with an RT kernel)",
    )
    ap.add_argument("--out", default=None, help="JSON report (default results/replay/<task>_<seconds>s.json)")
    args = ap.parse_args(argv)
    report = run(args.task, args.seconds, args.hostname, args.realtime)
    _print(report)
    out = Path(args.out or f"results/replay/{args.task}_{args.seconds:g}s.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")
    return 1 if report["libfranka_errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
