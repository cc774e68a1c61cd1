"""rclpy shell around :class:`SafetyFilter` / :class:`CartesianSafetyFilter`: the only path to the driver.

Subscribes ``/joint_states`` (sync, drift => hold and resync), ``/policy/action_chunk`` and
``/teleop/command`` (JointTrajectory; only ``active_source`` is used, the other is ignored and
reported), ``/safety/speed_scale`` (Float64) and, with ``command_mode: cartesian``,
``/policy/cartesian_command`` and ``/teleop/cartesian_command`` (PoseStamped in fr3_link0).
Publishes at ``rate_hz`` ``/safety/command`` (JointTrajectory, one point with positions,
velocities, accelerations) or ``/safety/cartesian_command`` (PoseStamped), plus
``/safety/intervention`` (String, on change of the reason set or at most every 0.5 s) and
``/diagnostics``. Services ``/safety/estop`` and ``/safety/reset`` (std_srvs/Trigger).

A command whose header stamp is zero counts as observed "now". Every callback takes one lock
around the filter, so the node is safe under a MultiThreadedExecutor.

Work per input message is bounded so that no flood can starve the output timer: a callback
only files the message (the latest speed scale; at most ``input_queue`` joint states and
commands, the oldest dropped, commands counted as ``superseded``), and the timer parses and
validates what was filed, then steps the filter. Reasons are counted by kind
(:mod:`safety_filter.reasons`), so neither memory nor ``/diagnostics`` grows with what a source sends.
"""

from __future__ import annotations

import collections
import dataclasses
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import rclpy
from cdp_core.robot.limits import FR3Limits
from cdp_ros_common import names
from cdp_ros_common.conversions import MessageError, msg_to_chunk, msg_to_pose, pose_to_msg, sec_to_time
from cdp_ros_common.diagnostics import ERROR, OK, STALE, WARN, array, status
from cdp_ros_common.params import declare_dataclass
from cdp_ros_common.sole_publisher import SolePublisher, graph_endpoints, message_gid
from cdp_ros_common.spinning import spin
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rcl_interfaces.msg import SetParametersResult
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64, String
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from .filter import CartesianSafetyFilter, SafetyConfig, SafetyFilter
from .reasons import Intervention, Reject, kind_of, reason


@dataclass
class NodeConfig:
    """Node-only parameters (the filter's are SafetyConfig's fields and ``limits.*``)."""

    #: "policy" or "teleop": whose commands reach the filter; the other source is ignored.
    active_source: str = "policy"
    #: "joint" (JointTrajectory chunks -> /safety/command) or "cartesian" (PoseStamped targets).
    command_mode: str = "joint"
    #: Minimum period (s) between two identical /safety/intervention messages.
    intervention_period_s: float = 0.5
    #: Period (s) of /diagnostics.
    diagnostics_period_s: float = 1.0
    #: Commands kept per source between two ticks; older ones are dropped (counted "superseded").
    input_queue: int = 4
    #: Fully qualified name of the only node whose /joint_states the filter believes (the driver;
    #: "" = any, bench tests only). Another publisher there latches a fault: a forged measured
    #: state would otherwise steer the resync.
    measured_source_node: str = "/franka_driver"


def _flat_safety_config_class() -> type:
    """SafetyConfig without its nested ``limits`` field, for declare_dataclass."""
    fields = []
    for f in dataclasses.fields(SafetyConfig):
        if f.name == "limits":
            continue
        fields.append((f.name, f.type, dataclasses.field(default=f.default)))
    return dataclasses.make_dataclass("SafetyConfigParams", fields)


def declare_safety_config(node: Node) -> SafetyConfig:
    flat = declare_dataclass(node, _flat_safety_config_class())
    limits = declare_dataclass(node, FR3Limits, prefix="limits.")
    return SafetyConfig(**dataclasses.asdict(flat), limits=limits)


class SafetyFilterNode(Node):
    def __init__(self, **kwargs: Any):
        super().__init__("safety_filter", **kwargs)
        self.node_config: NodeConfig = declare_dataclass(self, NodeConfig)
        self.config = declare_safety_config(self)
        nc = self.node_config
        if nc.active_source not in ("policy", "teleop"):
            raise ValueError(f"active_source must be 'policy' or 'teleop', got {nc.active_source!r}")
        if nc.command_mode not in ("joint", "cartesian"):
            raise ValueError(f"command_mode must be 'joint' or 'cartesian', got {nc.command_mode!r}")
        self.cartesian = nc.command_mode == "cartesian"
        self.filter: SafetyFilter | CartesianSafetyFilter = (
            CartesianSafetyFilter(self.config) if self.cartesian else SafetyFilter(self.config)
        )
        if nc.input_queue < 1:
            raise ValueError(f"input_queue must be >= 1, got {nc.input_queue}")
        self._lock = threading.Lock()
        self._pending: dict[str, None] = {}  # ordered set: a flood of one note stays one entry
        # Filed by the callbacks, processed by the timer (bounded work per message).
        self._inbox: collections.deque = collections.deque(maxlen=nc.input_queue)
        self._joint_inbox: collections.deque = collections.deque(maxlen=nc.input_queue)
        self._measured_source = SolePublisher(nc.measured_source_node)
        self._latest_speed: Float64 | None = None
        self._last_reasons: frozenset[str] = frozenset()
        self._last_report = -1e9
        self._ignored_source = 0
        self._malformed = 0
        self._step_times: list[float] = []
        self._last_output = None

        group = ReentrantCallbackGroup()
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.create_subscription(JointState, names.JOINT_STATES, self._on_joint_states, reliable, callback_group=group)
        self.create_subscription(
            Float64, names.SAFETY_SPEED_SCALE, self._on_speed_scale, reliable, callback_group=group
        )
        if self.cartesian:
            for topic, source in ((names.POLICY_CARTESIAN, "policy"), (names.TELEOP_CARTESIAN, "teleop")):
                self.create_subscription(
                    PoseStamped, topic, lambda m, s=source: self._on_pose(m, s), reliable, callback_group=group
                )
            self._cmd_pub = self.create_publisher(PoseStamped, names.SAFETY_CARTESIAN_COMMAND, reliable)
        else:
            for topic, source in ((names.POLICY_CHUNK, "policy"), (names.TELEOP_COMMAND, "teleop")):
                self.create_subscription(
                    JointTrajectory, topic, lambda m, s=source: self._on_chunk(m, s), reliable, callback_group=group
                )
            self._cmd_pub = self.create_publisher(JointTrajectory, names.SAFETY_COMMAND, reliable)
        self._intervention_pub = self.create_publisher(String, names.SAFETY_INTERVENTION, reliable)
        self._diag_pub = self.create_publisher(DiagnosticArray, names.DIAGNOSTICS, 10)
        self.create_service(Trigger, names.SAFETY_ESTOP, self._on_estop, callback_group=group)
        self.create_service(Trigger, names.SAFETY_RESET, self._on_reset, callback_group=group)
        # The driver keeps its own e-stop latch (it holds even against a publisher that is not
        # this filter): e-stop and reset are forwarded to it, without waiting for the answer.
        self._driver_estop = self.create_client(Trigger, names.DRIVER_ESTOP, callback_group=group)
        self._driver_reset = self.create_client(Trigger, names.DRIVER_RESET, callback_group=group)
        self.create_timer(self.config.dt, self._on_timer, callback_group=group)
        self.create_timer(nc.diagnostics_period_s, self._on_diagnostics, callback_group=group)
        self.create_timer(0.1, self._on_graph_timer, callback_group=group)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.get_logger().info(
            f"safety filter: {nc.command_mode} mode, active source {nc.active_source}, {self.config.rate_hz:g} Hz, "
            f"stale after {self.config.stale_timeout_s:g} s"
        )

    def _on_set_parameters(self, params: list[Parameter]) -> SetParametersResult:
        """Only ``active_source`` may change at run time (operator takes over / hands back)."""
        for p in params:
            if p.name != "active_source":
                return SetParametersResult(successful=False, reason=f"{p.name} cannot change while running")
            if p.value not in ("policy", "teleop"):
                return SetParametersResult(
                    successful=False, reason=f"active_source must be 'policy' or 'teleop', got {p.value!r}"
                )
        for p in params:
            with self._lock:
                if p.value != self.node_config.active_source:
                    # The old source's command is dropped: the arm brakes and holds until the new
                    # source sends a command of its own.
                    self.filter.drop_command(self._now())
                    self._inbox.clear()
                    self._note(
                        reason(
                            Intervention.HANDOVER,
                            f"input handed from {self.node_config.active_source} to {p.value}: holding",
                        )
                    )
                    self.node_config.active_source = p.value
            self.get_logger().info(f"active source: {p.value}")
        return SetParametersResult(successful=True)

    # -- helpers ---------------------------------------------------------------------------------
    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _note(self, text: str) -> None:
        """Queue a reason for /safety/intervention (caller holds the lock)."""
        self._pending[text] = None

    # -- callbacks: file the message, nothing else (bounded work per message) ---------------------
    def _on_joint_states(self, msg: JointState, info: dict) -> None:
        with self._lock:
            self._joint_inbox.append((msg, message_gid(info)))

    def _on_graph_timer(self) -> None:
        endpoints = graph_endpoints(self, names.JOINT_STATES)
        with self._lock:
            foreign = self._measured_source.update(endpoints)
            if foreign and self.filter.fault is None:
                why = f"foreign publisher on {names.JOINT_STATES}: {', '.join(foreign)}"
                self.filter.latch_fault(why)
                self._note(reason(Intervention.FAULT, why + "; holding until it is gone and /safety/reset"))
                self.get_logger().error(f"holding: {why}")

    def _on_speed_scale(self, msg: Float64) -> None:
        with self._lock:
            self._latest_speed = msg

    def _file_command(self, msg: Any, source: str) -> None:
        with self._lock:
            if source != self.node_config.active_source:
                self._ignored_source += 1
                self._note(
                    reason(
                        Intervention.IGNORED_SOURCE,
                        f"command from {source} while the active source is {self.node_config.active_source}",
                    )
                )
                return
            if len(self._inbox) == self._inbox.maxlen:
                self.filter.rejected[Reject.SUPERSEDED.value] += 1
            self._inbox.append((msg, source, self._now()))

    def _on_chunk(self, msg: JointTrajectory, source: str) -> None:
        self._file_command(msg, source)

    def _on_pose(self, msg: PoseStamped, source: str) -> None:
        self._file_command(msg, source)

    # -- processing, once per tick (caller holds the lock) ----------------------------------------
    def _process_inputs(self) -> None:
        while self._joint_inbox:
            msg, gid = self._joint_inbox.popleft()
            if self._measured_source.accepts(gid):
                self._take_joint_state(msg)
            else:
                self.filter.rejected[Reject.FOREIGN_SOURCE.value] += 1
        speed, self._latest_speed = self._latest_speed, None
        if speed is not None:
            why = self.filter.set_speed_scale(speed.data)
            if why is not None:
                self._note(reason(Intervention.REJECTED, f"speed scale: {why}"))
        while self._inbox:
            msg, source, received = self._inbox.popleft()
            if self.cartesian:
                self._take_pose(msg, source, received)
            else:
                self._take_chunk(msg, source, received)

    def _take_joint_state(self, msg: JointState) -> None:
        names_in = list(msg.name)
        try:
            if len(set(names_in)) != len(names_in):
                raise ValueError("a joint named twice")
            index = [names_in.index(j) for j in names.JOINT_NAMES]
            q = np.array([msg.position[i] for i in index], dtype=np.float64)
        except (ValueError, IndexError) as exc:
            self._malformed += 1
            self.filter.rejected[Reject.MEASURED_UNUSABLE.value] += 1
            self._note(
                reason(
                    Intervention.REJECTED,
                    f"/joint_states unusable ({exc}); needs each of {names.JOINT_NAMES} once with a position",
                )
            )
            return
        why = self.filter.check_drift(q, self._now())
        if why is not None:
            self._note(why)

    def _stamp_or_now(self, stamp_msg: Any, now: float) -> float:
        return now if (stamp_msg.sec == 0 and stamp_msg.nanosec == 0) else stamp_msg.sec + stamp_msg.nanosec * 1e-9

    def _take_chunk(self, msg: JointTrajectory, source: str, received: float) -> None:
        now = self._now()
        try:
            times, q = msg_to_chunk(msg)
        except MessageError as exc:
            self._malformed += 1
            kind = Reject(exc.kind) if exc.kind in Reject._value2member_map_ else Reject.MALFORMED
            self.filter.rejected[kind.value] += 1
            self._note(reason(Intervention.REJECTED, f"{source} command: {kind.value}: {exc}"))
            return
        if msg.header.stamp.sec == 0 and msg.header.stamp.nanosec == 0:
            times = times + received
        why = self.filter.set_chunk(times, q, source, now)  # type: ignore[union-attr]
        if why is not None:
            self._note(reason(Intervention.REJECTED, f"{source} command: {why}"))

    def _take_pose(self, msg: PoseStamped, source: str, received: float) -> None:
        now = self._now()
        if msg.header.frame_id not in ("", names.BASE_FRAME):
            self._malformed += 1
            self.filter.rejected[Reject.WRONG_FRAME.value] += 1
            self._note(
                reason(Intervention.REJECTED, f"{source} pose: frame {msg.header.frame_id!r} is not {names.BASE_FRAME}")
            )
            return
        _, pos, quat = msg_to_pose(msg)
        why = self.filter.set_target(
            pos,
            quat,
            self._stamp_or_now(msg.header.stamp, received),  # type: ignore[union-attr]
            source,
            now,
        )
        if why is not None:
            self._note(reason(Intervention.REJECTED, f"{source} pose: {why}"))

    def _on_estop(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        with self._lock:
            self.filter.estop(self._now())
            self._inbox.clear()
            self._note(reason(Intervention.ESTOP, "requested by service; latched until /safety/reset"))
        forwarded = self._forward(self._driver_estop)
        response.success = True
        response.message = "e-stop latched: decelerating and holding until /safety/reset" + (
            "" if forwarded else f" ({names.DRIVER_ESTOP} not available: the driver was not told)"
        )
        return response

    def _forward(self, client: Any) -> bool:
        """Send a Trigger to the driver without waiting (this executor must keep ticking)."""
        if not client.service_is_ready():
            self.get_logger().warning(f"{client.srv_name} not available", throttle_duration_sec=5.0)
            return False
        client.call_async(Trigger.Request())
        return True

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        with self._lock:
            if self._measured_source.foreign:
                response.success = False
                response.message = (
                    f"foreign publisher still on {names.JOINT_STATES}: {', '.join(self._measured_source.foreign)}"
                )
                return response
            self.filter.reset(self._now())
            self._inbox.clear()
            self._note(reason(Intervention.RESET, "e-stop and faults cleared; holding until a new command"))
        self._forward(self._driver_reset)
        response.success = True
        response.message = f"reset: holding until a new command arrives ({names.DRIVER_RESET} requested)"
        return response

    def _on_timer(self) -> None:
        with self._lock:
            t0 = time.perf_counter()
            self._process_inputs()
            now = self._now()
            try:
                out = self.filter.step(now)
            except FloatingPointError as exc:  # latched as a fault inside the filter; never published
                self._note(reason(Intervention.FAULT, str(exc)))
                out = None
            self._step_times.append(time.perf_counter() - t0)
            del self._step_times[:-1000]
            notes = list(self._pending) + (out.interventions if out is not None else [])
            self._pending = {}
            if out is not None:
                self._publish_command(out, now)
                self._last_output = out
            self._report(notes, now)

    def _publish_command(self, out: Any, now: float) -> None:
        if self.cartesian:
            self._cmd_pub.publish(pose_to_msg(now, out.position, out.quaternion))
            return
        msg = JointTrajectory()
        msg.header.stamp = sec_to_time(now)
        msg.header.frame_id = names.BASE_FRAME
        msg.joint_names = list(names.JOINT_NAMES)
        msg.points = [
            JointTrajectoryPoint(
                positions=out.position.tolist(),
                velocities=out.velocity.tolist(),
                accelerations=out.acceleration.tolist(),
            )
        ]
        self._cmd_pub.publish(msg)

    def _report(self, notes: list[str], now: float) -> None:
        keys = frozenset(kind_of(n) for n in notes)
        changed = keys != self._last_reasons
        if (changed and notes) or (notes and now - self._last_report >= self.node_config.intervention_period_s):
            self._intervention_pub.publish(String(data="; ".join(dict.fromkeys(notes))))
            self._last_report = now
        elif changed and not notes:
            self._intervention_pub.publish(String(data="none"))
            self._last_report = now
        self._last_reasons = keys

    def _on_diagnostics(self) -> None:
        with self._lock:
            f = self.filter
            out = self._last_output
            mode = "unsynced" if not f.synced else (out.mode if out is not None else "idle")
            step = np.asarray(self._step_times) * 1e3 if self._step_times else np.zeros(1)
            values: dict[str, Any] = {
                "mode": mode,
                "command_mode": self.node_config.command_mode,
                "active_source": self.node_config.active_source,
                "speed_scale": float(f.speed_scale),
                "estop": f.estopped,
                "fault": f.fault or "",
                "rejected_total": sum(f.rejected.values()),
                "ignored_source": self._ignored_source,
                "malformed": self._malformed,
                "ticks": f.ticks,
                "step_ms_median": float(np.median(step)),
                "step_ms_max": float(np.max(step)),
            }
            values.update({f"rejected[{k}]": v for k, v in f.rejected.items()})
            values.update({f"interventions[{k}]": v for k, v in f.interventions.items()})
        if mode in ("estop", "fault"):
            level, message = ERROR, f"{mode}: holding"
        elif mode == "unsynced":
            level, message = STALE, "waiting for /joint_states"
        elif mode in ("stale", "paused") or (out is not None and out.interventions):
            level, message = WARN, mode + (f": {out.interventions[0]}" if out is not None and out.interventions else "")
        else:
            level, message = OK, mode
        self._diag_pub.publish(array(self._now(), status("safety_filter", level, message, values, hardware_id="fr3")))


def main(args: list[str] | None = None) -> None:
    rclpy.init(args=args)
    node = None
    try:
        node = SafetyFilterNode()
        # Single-threaded: every callback is short and lock-protected, and rclpy's
        # MultiThreadedExecutor measurably delayed the 100 Hz timer (down to ~6 Hz in-process).
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        spin(executor)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()


if __name__ == "__main__":
    main()
