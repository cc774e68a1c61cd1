"""rclpy shell of the Franka driver: /safety/command in; /joint_states, /franka/ee_pose, /diagnostics out.

Commands pass the :class:`~franka_driver.command_guard.CommandGuard` first: only the safety
filter's publisher (checked per message by publisher GID, and on the graph at 10 Hz), only
inside the FR3 limits, the workspace box, a step limit and a distance from the measured arm;
``/franka/estop`` latches a hold the driver keeps itself. A refusal that means something is
wrong (a foreign publisher, a failed last-line check, the e-stop) brakes the arm and holds it
until ``/franka/reset``.

The 1 kHz loop is never in this process's Python: franky runs it in a C++ thread that does not
take the GIL, pylibfranka in a child process. This node only hands targets over and publishes
snapshots, so an executor hiccup delays a message, never a control cycle.

Run: ``python -m franka_driver.node --ros-args -p robot_ip:=127.0.1.30 -p realtime:=ignore``
"""

from __future__ import annotations

import math
import sys
import threading

import numpy as np
import rclpy
from cdp_ros_common import diagnostics as diag
from cdp_ros_common import names
from cdp_ros_common.conversions import MessageError, pose_to_msg
from cdp_ros_common.params import declare_dataclass
from cdp_ros_common.sole_publisher import graph_endpoints, message_gid
from cdp_ros_common.spinning import ignore_further_signals, spin
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_srvs.srv import SetBool, Trigger
from trajectory_msgs.msg import JointTrajectory

from .backend import ArmState, Backend, BackendError, DriverConfig, make_backend, tcp_pose
from .command_guard import CommandGuard, GuardConfig
from .commands import CommandMonitor, parse_joint_command, parse_pose_command


class FrankaDriverNode(Node):
    def __init__(self, backend: Backend | None = None, **kwargs):
        super().__init__("franka_driver", **kwargs)
        self.config: DriverConfig = declare_dataclass(self, DriverConfig)
        self.guard = CommandGuard(declare_dataclass(self, GuardConfig, prefix="guard."))
        cfg = self.config
        self.backend = backend if backend is not None else make_backend(cfg)
        if backend is None:
            self._connect_with_retry()
        self.monitor = CommandMonitor(timeout_s=cfg.command_timeout_s)
        self._lock = threading.Lock()  # monitor + command hand-over (subscription vs. timer threads)
        self._last_state: ArmState | None = None
        self._published = 0
        self._repeated = 0  # states not re-published because the robot time had not advanced
        self._last_published_time = math.nan
        self._last_error = ""

        self._io_group = MutuallyExclusiveCallbackGroup()
        # Gripper moves and recovery block for up to seconds: they get their own thread.
        self._srv_group = MutuallyExclusiveCallbackGroup()
        self.pub_joints = self.create_publisher(JointState, names.JOINT_STATES, 10)
        self.pub_pose = self.create_publisher(PoseStamped, names.EE_POSE, 10)
        self.pub_diag = self.create_publisher(DiagnosticArray, names.DIAGNOSTICS, 10)
        self._command_topic = names.SAFETY_COMMAND if cfg.command_mode == "joint" else names.SAFETY_CARTESIAN_COMMAND
        if cfg.command_mode == "joint":
            self.create_subscription(
                JointTrajectory, names.SAFETY_COMMAND, self._on_joint_command, 10, callback_group=self._io_group
            )
        else:
            self.create_subscription(
                PoseStamped, names.SAFETY_CARTESIAN_COMMAND, self._on_pose_command, 10, callback_group=self._io_group
            )
        self.create_timer(0.1, self._on_graph_timer, callback_group=self._io_group)
        self.create_service(Trigger, names.DRIVER_ESTOP, self._on_estop, callback_group=self._io_group)
        self.create_service(Trigger, names.DRIVER_RESET, self._on_reset, callback_group=self._io_group)
        self.create_timer(1.0 / cfg.state_rate_hz, self._on_state_timer, callback_group=self._io_group)
        self.create_timer(1.0 / cfg.diagnostics_rate_hz, self._on_diagnostics_timer, callback_group=self._io_group)
        self.create_service(Trigger, names.DRIVER_RECOVER, self._on_recover, callback_group=self._srv_group)
        self.create_service(SetBool, names.GRIPPER_MOVE, self._on_gripper, callback_group=self._srv_group)
        self.get_logger().info(
            f"franka_driver up: backend={cfg.backend} robot_ip={cfg.robot_ip} mode={cfg.command_mode} "
            f"realtime={cfg.realtime} state_rate={cfg.state_rate_hz} Hz gripper={self.backend.gripper_status}"
        )

    def _connect_with_retry(self) -> None:
        import time

        t_end = time.monotonic() + self.config.connect_timeout_s
        while True:
            try:
                self.backend.connect()
                return
            except BackendError as exc:
                if time.monotonic() >= t_end:
                    raise
                self.get_logger().info(
                    f"{exc}; retrying for {t_end - time.monotonic():.0f} s more", throttle_duration_sec=5.0
                )
                time.sleep(0.5)

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    # --- commands -----------------------------------------------------------------------
    def _guard_refused(self, why: str | None, was_holding: bool) -> bool:
        """After a guard check: brake once when it just latched a hold; True if refused (lock held)."""
        if why is None:
            return False
        self.monitor.on_rejected(why)
        if self.guard.holding and not was_holding:
            self.backend.brake()
            self.monitor.forget_target()
            self.get_logger().error(f"holding the arm: {why}")
        else:
            self.get_logger().warning(f"refused command: {why}", throttle_duration_sec=1.0)
        return True

    def _on_joint_command(self, msg: JointTrajectory, info: dict) -> None:
        try:
            q, dq = parse_joint_command(msg)
        except MessageError as exc:
            self._reject(str(exc))
            return
        st = self._last_state
        with self._lock:
            was_holding = self.guard.holding
            tcp = tcp_pose(q, st.f_t_ee)[0] if st is not None else None
            stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
            why = self.guard.check(
                message_gid(info), q, dq, st.q if st is not None else None, tcp, stamp if stamp > 0 else None
            )
            if self._guard_refused(why, was_holding):
                return
            if not self.config.use_command_velocity:
                dq = None
            if self.backend.command_joint(q, dq):
                self.monitor.on_accepted(self._now(), q, dq)
            else:
                self.monitor.refused += 1

    def _on_pose_command(self, msg: PoseStamped, info: dict) -> None:
        try:
            pos, quat = parse_pose_command(msg)
        except MessageError as exc:
            self._reject(str(exc))
            return
        with self._lock:
            was_holding = self.guard.holding
            # Joint-space checks do not apply to a pose; the box does (franky's IK owns the joints).
            why = self.guard.check(
                message_gid(info), self._last_state.q if self._last_state else np.zeros(7), None, None, pos
            )
            if self._guard_refused(why, was_holding):
                return
            if self.backend.command_cartesian(pos, quat):
                self.monitor.on_accepted(self._now(), np.zeros(7), None)
            else:
                self.monitor.refused += 1

    def _on_graph_timer(self) -> None:
        endpoints = graph_endpoints(self, self._command_topic)
        with self._lock:
            fault = self.guard.update_publishers(endpoints)
            if fault is not None:
                self.backend.brake()
                self.monitor.forget_target()
        if fault is not None:
            self.get_logger().error(f"holding the arm: {fault}")

    def _on_estop(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        with self._lock:
            self.guard.estop()
            self.backend.brake()
            self.monitor.forget_target()
        self.get_logger().warning("e-stop: braking and holding until /franka/reset")
        response.success, response.message = (
            True,
            "e-stop latched in the driver: braking and holding until /franka/reset",
        )
        return response

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        with self._lock:
            ok, message = self.guard.reset()
        response.success, response.message = ok, message
        self.get_logger().info(f"reset: {message}")
        return response

    def _reject(self, reason: str) -> None:
        with self._lock:
            self.monitor.on_rejected(reason)
        self.get_logger().warning(f"rejected command: {reason}", throttle_duration_sec=1.0)

    # --- state --------------------------------------------------------------------------
    def _on_state_timer(self) -> None:
        now = self._now()
        with self._lock:
            hold = self.monitor.hold_due(now)
            if hold is not None:  # the stream that carried velocities stopped: come to rest at its last target
                self.backend.command_joint(hold, None)
        try:
            st = self.backend.read_state()
        except BackendError as exc:
            self.get_logger().error(f"no robot state: {exc}", throttle_duration_sec=1.0)
            return
        self._last_state = st
        if st.error and st.error != self._last_error:
            self.get_logger().error(f"robot error: {st.error}")
        self._last_error = st.error
        if st.time == self._last_published_time:
            # No new sample from the robot since the last message (the control loop was late, or
            # the connection is gone): re-sending it with a fresh stamp would tell the filter and
            # the policy the arm stopped. Skip it; a stream that stops makes its readers hold.
            self._repeated += 1
            return
        self._last_published_time = st.time
        js = JointState()
        js.header.stamp = self.get_clock().now().to_msg()
        js.name = names.JOINT_NAMES + names.FINGER_NAMES
        half = st.gripper_width / 2.0 if math.isfinite(st.gripper_width) else 0.0
        js.position = [float(v) for v in st.q] + [half, half]
        js.velocity = [float(v) for v in st.dq] + [0.0, 0.0]
        js.effort = [float(v) for v in st.tau] + [0.0, 0.0]
        self.pub_joints.publish(js)
        pose = pose_to_msg(0.0, st.position, st.quat_xyzw, frame_id=names.BASE_FRAME)
        pose.header.stamp = js.header.stamp
        self.pub_pose.publish(pose)
        self._published += 1

    def _on_diagnostics_timer(self) -> None:
        now = self._now()
        st = self._last_state
        with self._lock:
            m = self.monitor
            values = {
                "robot_mode": st.mode if st else "unknown",
                "error": st.error if st else "no state yet",
                "command_rate_hz": m.rate(now),
                "commands_accepted": m.accepted,
                "commands_rejected": m.rejected,
                "commands_refused_in_error": m.refused,
                "last_reject_reason": m.last_reject_reason,
                "last_command_age_s": m.age(now),
                "states_published": self._published,
                "states_not_new": self._repeated,
                "gripper": self.backend.gripper_status,
                "backend": self.config.backend,
                "estop": self.guard.estopped,
                "guard_fault": self.guard.fault,
                "guard_refused": self.guard.refused,
                "command_source": self.guard.config.command_source_node or "(any)",
                "foreign_publishers": ", ".join(self.guard.foreign),
            }
            holding = self.guard.estopped or self.guard.fault
        if st is None or st.error:
            level, message = diag.ERROR, (st.error if st else "no robot state")
        elif holding:
            level, message = diag.ERROR, ("e-stop latched: holding" if self.guard.estopped else self.guard.fault)
        elif self.config.gripper_enabled and self.backend.gripper_status != "ok":
            level, message = diag.WARN, self.backend.gripper_status
        else:
            level, message = diag.OK, f"{st.mode}"
        self.pub_diag.publish(
            diag.array(now, diag.status("franka_driver", level, message, values, hardware_id=self.config.robot_ip))
        )

    # --- services -----------------------------------------------------------------------
    def _on_recover(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        with self._lock:
            # Nothing streamed before the fault may be held or replayed after it.
            self.monitor.forget_target()
            self.guard.forget_last()
        ok = self.backend.recover()
        st = self.backend.read_state()
        response.success = bool(ok and not st.error)
        response.message = (
            "recovered; holding position until the next command"
            if response.success
            else (f"recovery failed: {st.error or 'robot still in error'}")
        )
        self.get_logger().info(response.message)
        return response

    def _on_gripper(self, request: SetBool.Request, response: SetBool.Response) -> SetBool.Response:
        cfg = self.config
        if not cfg.gripper_enabled:
            response.success, response.message = False, "gripper disabled (parameter gripper_enabled)"
            return response
        if request.data:
            ok = self.backend.gripper_move(cfg.gripper_open_width, cfg.gripper_speed)
            what = f"open to {cfg.gripper_open_width:.3f} m"
        else:
            ok = self.backend.gripper_grasp(0.0, cfg.gripper_speed, cfg.gripper_force)
            what = f"close with {cfg.gripper_force:.0f} N"
        response.success = bool(ok)
        response.message = what if ok else f"gripper could not {what} ({self.backend.gripper_status})"
        return response

    def shutdown(self) -> None:
        """Stop motion (jerk-limited), report that the arm rests, then release the backend.

        The arm's safety at shutdown does not depend on the order in which the graph stops: the
        driver takes no command once its executor stopped, and brakes to rest itself here.
        """
        import time

        try:
            self.backend.stop()
            # The command comes to rest first; the arm follows a moment later (tracking lag). The
            # driver disconnects once the *measured* joints rest: peak-to-peak below 0.5 mrad over
            # 0.1 s (joint velocities chatter around zero in a stiff hold), or after 3 s.
            window: list[tuple[float, np.ndarray]] = []
            spread, rested, t_end = float("inf"), False, time.monotonic() + 3.0
            try:
                while time.monotonic() < t_end:
                    now = time.monotonic()
                    window = [(t, q) for t, q in window if now - t <= 0.1] + [(now, self.backend.read_state().q)]
                    if now - window[0][0] >= 0.09:
                        spread = float(np.max(np.ptp(np.array([q for _, q in window]), axis=0)))
                        if spread < 5e-4:
                            rested = True
                            break
                    time.sleep(0.005)
                words = "at rest" if rested else "STILL MOVING"
                print(
                    f"franka_driver: stopped; arm {words} before disconnecting (joints moved {spread * 1e3:.2f} mrad "
                    "in the last 0.1 s)",
                    flush=True,
                )
            except BackendError as exc:
                print(f"franka_driver: stopped; no final state ({exc})", flush=True)
        finally:
            self.backend.close()


def main(args: list[str] | None = None) -> int:
    rclpy.init(args=args)  # installs SIGINT / SIGTERM handlers that shut the context down
    node = None
    code = 0
    try:
        node = FrankaDriverNode()
        executor = MultiThreadedExecutor(num_threads=3)
        executor.add_node(node)
        spin(executor)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except BackendError as exc:
        print(f"franka_driver: {exc}", file=sys.stderr)
        code = 1
    finally:
        ignore_further_signals()  # also when the signal came before spinning (connecting)
        if node is not None:
            node.shutdown()
            node.destroy_node()
        rclpy.try_shutdown()
    return code


if __name__ == "__main__":
    sys.exit(main())
