"""``policy_node``: the rclpy shell around :class:`cdp_policy.runner.PolicyRunner`.

Subscribes to the robot state and the object pose, ticks the runner on a timer at the
control rate, publishes time-stamped action chunks, the dispersion monitor's speed scale
and diagnostics. Disabled at start (unless ``enabled_on_start``) until ``/policy/enable``.

Inference runs in the timer's own callback group on a MultiThreadedExecutor, so state
messages keep arriving while the sampler runs (ONNX Runtime releases the GIL).
Start-up errors (missing / corrupt model, contract mismatch) are logged and the process
exits with status 1: the launcher treats the policy as a required node.
"""

from __future__ import annotations

import sys
import threading

import rclpy
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, qos_profile_sensor_data

from cdp_ros_common import diagnostics, names
from cdp_ros_common.conversions import array_to_msg, chunk_to_msg, msg_to_pose, time_to_sec
from cdp_ros_common.params import declare_dataclass
from cdp_ros_common.spinning import spin
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64, Float64MultiArray
from std_srvs.srv import SetBool
from trajectory_msgs.msg import JointTrajectory

from .observations import ObservationError
from .runner import ChunkDecision, PolicyConfig, PolicyRunner, PolicyStartError

NODE_NAME = "policy_node"


def decision_to_msg(d: ChunkDecision) -> JointTrajectory:
    """Stamp = observation time; point k keeps time_from_start k * dt, late points left out."""
    msg = chunk_to_msg(d.t_obs, d.dt, d.chunk)
    msg.points = msg.points[d.first_index :]
    return msg


class PolicyNode(Node):
    def __init__(self, **kwargs):
        super().__init__(NODE_NAME, **kwargs)
        self.cfg = declare_dataclass(self, PolicyConfig)
        enabled_on_start = bool(self.declare_parameter("enabled_on_start", False).value)
        diag_period = float(self.declare_parameter("diagnostics_period_s", 1.0).value)
        self.runner = PolicyRunner(self.cfg)  # PolicyStartError propagates: main() exits non-zero
        for w in self.runner.warnings:
            self.get_logger().warning(w)
        r = self.runner
        self.get_logger().info(
            f"loaded {self.cfg.model_path} on {r.provider}: obs {r.metadata['obs_keys']} x {r.metadata['n_obs_steps']}, "
            f"{r.rate_hz:g} Hz, {r.n_exec} of {r.horizon} actions per chunk from index {r.start}, "
            f"{self.cfg.dispersion_samples} draws"
        )

        # The runner's tick and enable/disable must not interleave (reset mid-inference).
        self._lock = threading.Lock()
        self._enabled = enabled_on_start
        self._current: JointTrajectory | None = None  # the chunk being executed (heartbeat)
        self._current_end = 0.0
        self._last_missed = 0
        inputs = ReentrantCallbackGroup()
        control = MutuallyExclusiveCallbackGroup()
        services = MutuallyExclusiveCallbackGroup()
        # Sensor-data QoS (best effort) matches both reliable and best-effort publishers.
        self.create_subscription(
            JointState, names.JOINT_STATES, self._on_joint_state, qos_profile_sensor_data, callback_group=inputs
        )
        self.create_subscription(
            PoseStamped, names.EE_POSE, self._on_ee_pose, qos_profile_sensor_data, callback_group=inputs
        )
        self.create_subscription(
            PoseStamped, names.OBJECT_POSE, self._on_object_pose, qos_profile_sensor_data, callback_group=inputs
        )
        for camera in r.cameras:  # an image policy: each camera the model sees, on its configured topic
            topic = r.camera_topics[camera]
            self.create_subscription(
                Image,
                topic,
                lambda msg, c=camera, t=topic: self._on_image(c, t, msg),
                qos_profile_sensor_data,
                callback_group=inputs,
            )
            self.get_logger().info(f"camera {camera!r} from {topic}")
        reliable = QoSProfile(depth=10)
        self.chunk_pub = self.create_publisher(JointTrajectory, names.POLICY_CHUNK, reliable)
        self.draws_pub = self.create_publisher(Float64MultiArray, names.POLICY_DRAWS, 10)
        self.scale_pub = self.create_publisher(Float64, names.SAFETY_SPEED_SCALE, reliable)
        self.diag_pub = self.create_publisher(DiagnosticArray, names.DIAGNOSTICS, reliable)
        self.create_service(SetBool, names.POLICY_ENABLE, self._on_enable, callback_group=services)
        self.create_timer(r.dt, self._on_tick, callback_group=control)
        self.create_timer(diag_period, self._publish_diagnostics, callback_group=control)
        self._warned_inputs: set[str] = set()

    # --- inputs ---------------------------------------------------------------------------------
    def _input_error(self, topic: str, exc: Exception) -> None:
        # once per topic: a bad publisher at 100 Hz must not flood the log; the tick refuses anyway
        if topic not in self._warned_inputs:
            self._warned_inputs.add(topic)
            self.get_logger().error(f"ignoring message on {topic}: {exc}")

    def _on_joint_state(self, msg: JointState) -> None:
        try:
            self.runner.obs.update_joint_state(time_to_sec(msg.header.stamp), msg.name, msg.position)
        except ObservationError as exc:
            self._input_error(names.JOINT_STATES, exc)

    def _on_ee_pose(self, msg: PoseStamped) -> None:
        try:
            self.runner.obs.update_ee_pose(*msg_to_pose(msg))
        except ObservationError as exc:
            self._input_error(names.EE_POSE, exc)

    def _on_object_pose(self, msg: PoseStamped) -> None:
        try:
            self.runner.obs.update_object_pose(*msg_to_pose(msg))
        except ObservationError as exc:
            self._input_error(names.OBJECT_POSE, exc)

    def _on_image(self, camera: str, topic: str, msg: Image) -> None:
        try:
            self.runner.obs.update_image(
                camera, time_to_sec(msg.header.stamp), msg.height, msg.width, msg.encoding, msg.step, msg.data
            )
        except ObservationError as exc:
            self._input_error(topic, exc)

    # --- control ---------------------------------------------------------------------------------
    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_tick(self) -> None:
        # Published under the lock too: once /policy/enable(false) has answered, no chunk follows.
        with self._lock:
            if not self._enabled:
                return
            now = self._now()
            decision = self.runner.tick(now)
            if decision is None:
                if self.runner.stats.last_reason:
                    self._current = None  # refused observation: no heartbeat, the safety filter goes stale
                    self.get_logger().warning(f"no chunk: {self.runner.stats.last_reason}", throttle_duration_sec=5.0)
                elif self._current is not None and self._current_end > now:
                    # Between plans, re-send the chunk being executed (same stamps): a heartbeat that
                    # tells the safety filter the policy is alive. When this process dies the filter
                    # sees its input go stale within its timeout, not at the end of the chunk.
                    self.chunk_pub.publish(self._current)
                return
            if decision.reason:
                self.get_logger().error(decision.reason, throttle_duration_sec=5.0)
            self._current = None
            if len(decision.positions):
                self._current = decision_to_msg(decision)
                self._current_end = float(decision.due_times[-1]) + decision.dt
                self.chunk_pub.publish(self._current)
            if decision.draws is not None:
                self.draws_pub.publish(array_to_msg(decision.draws, ("draws", "steps", "joints")))
            self.scale_pub.publish(Float64(data=float(decision.speed_scale)))

    def _on_enable(self, request: SetBool.Request, response: SetBool.Response) -> SetBool.Response:
        with self._lock:
            was = self._enabled
            self._enabled = bool(request.data)
            if self._enabled and not was:
                self.runner.reset()  # history from before the pause is not one tick apart
            self._current = None
        if was and not self._enabled:
            # The monitor's request belongs to the policy's motion; teleop must not stay throttled.
            self.scale_pub.publish(Float64(data=1.0))
        response.success = True
        response.message = "policy enabled" if self._enabled else "policy disabled"
        self.get_logger().info(response.message)
        return response

    def _publish_diagnostics(self) -> None:
        with self._lock:
            values = self.runner.diagnostics()
            enabled = self._enabled
            reason = self.runner.stats.last_reason
        values["enabled"] = enabled
        missed = int(values["missed_deadlines"])
        level, message = diagnostics.OK, "running" if enabled else "disabled"
        if enabled and reason:
            level, message = diagnostics.WARN, reason
        elif enabled and float(values["speed_scale"]) < 1.0:
            level, message = (
                diagnostics.WARN,
                f"dispersion {values['dispersion_rad']:.4g} rad: speed scale {values['speed_scale']:g}",
            )
        elif missed > self._last_missed:
            level, message = diagnostics.WARN, f"{missed - self._last_missed} missed deadlines since last report"
        self._last_missed = missed
        self.diag_pub.publish(diagnostics.array(self._now(), diagnostics.status(NODE_NAME, level, message, values)))


def main(args: list[str] | None = None) -> int:
    rclpy.init(args=args)
    try:
        node = PolicyNode()
    except PolicyStartError as exc:
        rclpy.logging.get_logger(NODE_NAME).fatal(f"cannot start: {exc}")
        rclpy.try_shutdown()
        return 1
    executor = MultiThreadedExecutor(num_threads=3)
    executor.add_node(node)
    try:
        spin(executor)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass  # Ctrl-C / SIGTERM (rclpy's signal handler shuts the context down)
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
