"""franky backend: libfranka's 1 kHz loop and Ruckig run in franky's C++ control thread.

Each target becomes a one-waypoint ``JointWaypointMotion`` started with ``asynchronous=True``;
franky queues it behind the running motion and takes over seamlessly, so a target stream is
tracked jerk-limited at ``relative_dynamics_factor`` of the FR3 limits. No Python callback or
reaction is ever registered on a motion, so the control thread never needs the GIL: Python's
GIL holders and garbage collection in this (rclpy) process cannot stall the 1 kHz loop
(test_franka_franky_backend.py holds the GIL for 0.3 s mid-motion to check exactly that).
"""

from __future__ import annotations

import logging
import math
import threading

import numpy as np

from .backend import (
    FR3,
    ArmState,
    Backend,
    BackendError,
    DriverConfig,
    canonical_quat,
    clip_velocity,
    tcp_pose,
    validate_joint_target,
)

log = logging.getLogger(__name__)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".strip()


class GripperPoller:
    """Reads the gripper width in a background thread: libfranka's read blocks for the next UDP
    packet (~1.4 ms on franky-sim), which the state publisher must not wait for."""

    def __init__(self, read_width, period_s: float = 0.05):
        self._read_width = read_width
        self._period_s = period_s
        self.width = math.nan
        self.error = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gripper-poll", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.width = float(self._read_width())
                self.error = ""
            except Exception as exc:  # a dead gripper connection must not kill the driver
                self.error = _describe(exc)
                self.width = math.nan
            self._stop.wait(self._period_s)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)


class FrankyBackend(Backend):
    """franky.Robot (+ franky.Gripper). Thread-safe: the node calls it from several executor threads."""

    def __init__(self, config: DriverConfig):
        super().__init__(config)
        self._robot = None
        self._gripper = None
        self._poller: GripperPoller | None = None
        self._gripper_status = "disabled" if not config.gripper_enabled else "not connected"
        self._lock = threading.RLock()
        self._gripper_lock = threading.Lock()
        self._error = ""
        self._last_state: ArmState | None = None

    # --- connection ---------------------------------------------------------------------
    def connect(self) -> None:
        import franky

        self._franky = franky
        rt = franky.RealtimeConfig.Enforce if self.config.realtime == "enforce" else franky.RealtimeConfig.Ignore
        try:
            robot = franky.Robot(self.config.robot_ip, realtime_config=rt)
            _apply_fr3_limits(robot)
            robot.relative_dynamics_factor = self.config.relative_dynamics_factor
            robot.set_collision_behavior(self.config.collision_torque_threshold, self.config.collision_force_threshold)
        except Exception as exc:
            raise BackendError(f"cannot connect to the arm at {self.config.robot_ip}: {_describe(exc)}") from exc
        self._robot = robot
        # libfranka raises the *calling* thread to the highest SCHED_FIFO priority when it can (root,
        # or rtprio limits), even with RealtimeConfig.Ignore. That thread is the node's main thread,
        # which then spins rclpy: at FIFO 99 it starves every other process on a small machine.
        # franky's own control thread sets its priority itself; the calling thread goes back to normal.
        _normal_scheduling_for_this_thread()
        if self.config.gripper_enabled:
            try:
                self._gripper = franky.Gripper(self.config.robot_ip)
                self._poller = GripperPoller(lambda: self._gripper.width)
                self._gripper_status = "ok"
            except Exception as exc:
                self._gripper = None
                self._gripper_status = f"gripper unavailable at {self.config.robot_ip}: {_describe(exc)}"
                log.warning(self._gripper_status)

    def _require(self):
        if self._robot is None:
            raise BackendError("backend not connected (call connect() first)")
        return self._robot

    # --- state --------------------------------------------------------------------------
    def read_state(self) -> ArmState:
        robot = self._require()
        with self._lock:
            try:
                # Surfaces an exception the control thread hit in an asynchronous motion.
                robot.poll_motion()
            except Exception as exc:
                self._set_error(exc)
            try:
                s = robot.state
            except Exception as exc:  # connection lost: keep the last state, report the error
                self._set_error(exc)
                if self._last_state is None:
                    raise BackendError(self._error) from exc
                st = self._last_state
                st.error, st.mode = self._error, "Other"
                return st
            errors = repr(s.current_errors)
            error = self._error or ("" if errors == "[]" else f"robot errors: {errors}")
            q = np.array(s.q, dtype=np.float64)
            f_t_ee = np.array(s.F_T_EE.matrix, dtype=np.float64)
            position, quat = tcp_pose(q, f_t_ee)
            st = ArmState(
                time=s.time.to_sec(),
                q=q,
                dq=np.array(s.dq, dtype=np.float64),
                tau=np.array(s.tau_J, dtype=np.float64),
                position=position,
                quat_xyzw=quat,
                gripper_width=self._poller.width if self._poller is not None else math.nan,
                mode=s.robot_mode.name,
                error=error,
                f_t_ee=f_t_ee,
            )
            self._last_state = st
            return st

    def _set_error(self, exc: BaseException) -> None:
        msg = _describe(exc)
        if msg != self._error:
            log.error("franky: %s", msg)
        self._error = msg

    # --- motion -------------------------------------------------------------------------
    def command_joint(self, q_target: np.ndarray, dq_target: np.ndarray | None = None) -> bool:
        q, dq = validate_joint_target(q_target, dq_target)
        dq = clip_velocity(dq, self.config.relative_dynamics_factor)
        franky = self._franky
        robot = self._require()
        with self._lock:
            if self._error:
                return False  # never move out of an error without an explicit recover()
            state = franky.JointState(position=q) if dq is None else franky.JointState(position=q, velocity=dq)
            try:
                robot.move(franky.JointWaypointMotion([franky.JointWaypoint(state)]), asynchronous=True)
            except Exception as exc:
                self._set_error(exc)
                return False
            return True

    def command_cartesian(self, position: np.ndarray, quat_xyzw: np.ndarray) -> bool:
        p = np.asarray(position, dtype=np.float64).reshape(-1)
        if p.shape != (3,) or not np.isfinite(p).all():
            raise ValueError(f"Cartesian target needs 3 finite coordinates, got {p}")
        quat = canonical_quat(quat_xyzw)
        franky = self._franky
        robot = self._require()
        with self._lock:
            if self._error:
                return False
            target = franky.RobotPose(franky.Affine(p, quat))
            try:
                robot.move(franky.CartesianWaypointMotion([franky.CartesianWaypoint(target)]), asynchronous=True)
            except Exception as exc:
                self._set_error(exc)
                return False
            return True

    def stop(self) -> None:
        self._brake(wait=True)

    def brake(self) -> None:
        self._brake(wait=False)

    def _brake(self, wait: bool) -> None:
        """A jerk-limited stop motion at the driver's dynamics factor; ``wait``: until it ends (3 s max)."""
        if self._robot is None:
            return
        franky, robot = self._franky, self._robot
        with self._lock:
            try:
                if not robot.is_in_control:
                    return
                stop = (
                    franky.CartesianStopMotion if self.config.command_mode == "cartesian" else franky.JointStopMotion
                )(self.config.relative_dynamics_factor)
                robot.move(stop, asynchronous=True)
                if wait:
                    robot.join_motion(timeout=3.0)
            except Exception as exc:
                self._set_error(exc)

    def recover(self) -> bool:
        robot = self._require()
        with self._lock:
            try:
                robot.poll_motion()  # consume a pending motion exception so it is not re-raised later
            except Exception:
                pass
            try:
                ok = bool(robot.recover_from_errors())
            except Exception as exc:
                self._set_error(exc)
                return False
            try:
                still = repr(robot.state.current_errors) != "[]"
            except Exception as exc:
                self._set_error(exc)
                return False
            if ok and not still:
                self._error = ""
                return True
            return False

    # --- gripper ------------------------------------------------------------------------
    @property
    def gripper_status(self) -> str:
        if self._gripper is not None and self._poller is not None and self._poller.error:
            return f"gripper error: {self._poller.error}"
        return self._gripper_status

    def gripper_move(self, width: float, speed: float) -> bool:
        if self._gripper is None:
            return False
        with self._gripper_lock:
            try:
                return bool(self._gripper.move(float(width), float(speed)))
            except Exception as exc:
                log.error("gripper move failed: %s", _describe(exc))
                return False

    def gripper_grasp(self, width: float, speed: float, force: float) -> bool:
        if self._gripper is None:
            return False
        with self._gripper_lock:
            try:
                # Wide tolerances: "closed on something anywhere between width and fully open" succeeds.
                return bool(
                    self._gripper.grasp(
                        float(width), float(speed), float(force), epsilon_inner=0.08, epsilon_outer=0.08
                    )
                )
            except Exception as exc:
                log.error("gripper grasp failed: %s", _describe(exc))
                return False

    # --- teardown -----------------------------------------------------------------------
    def close(self) -> None:
        self.stop()
        if self._poller is not None:
            self._poller.close()
            self._poller = None
        self._gripper = None
        with self._lock:
            self._robot = None  # franky disconnects in the destructor


def _apply_fr3_limits(robot) -> None:
    """franky's Ruckig limits := the FR3 table (never above franky's own maxima).

    franky's defaults differ per joint from the FR3's (accelerations up to 20 rad/s^2, jerks up to
    10,000 rad/s^3 at factor 1.0); the stack keeps one table, and the generator stays inside it.
    """
    for attr, table in (
        ("joint_velocity_limit", FR3.v_max),
        ("joint_acceleration_limit", FR3.a_max),
        ("joint_jerk_limit", FR3.j_max),
    ):
        limit = getattr(robot, attr)
        ceiling = np.asarray(limit.max, dtype=np.float64) if limit.max is not None else np.asarray(table)
        limit.set(np.minimum(np.asarray(table), ceiling).tolist())


def _normal_scheduling_for_this_thread() -> None:
    """Put the calling thread back on SCHED_OTHER (no-op where it already is or cannot be changed)."""
    import os

    try:
        if os.sched_getscheduler(0) != os.SCHED_OTHER:
            os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    except (AttributeError, OSError):
        pass
