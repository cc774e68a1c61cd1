"""The rclpy node in-process: real publishers, subscriptions, services and executor threads.

A peer node plays a perfect driver (echoes /safety/command as /joint_states) and the policy.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import rclpy
from cdp_ros_common import names
from cdp_ros_common.conversions import chunk_to_msg, sec_to_time
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64, String
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from safety_filter.node import SafetyFilterNode
from safety_filter.verify import joint_stream_violations

Q0 = np.array([0.0, -0.3, 0.0, -2.2, 0.0, 1.9, 0.785])
QOS = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)


class Peer(Node):
    """Fake driver + policy."""

    def __init__(self, context):
        super().__init__("safety_filter_test_peer", context=context)
        self.lock = threading.Lock()
        self.commands: list[JointTrajectory] = []
        self.interventions: list[str] = []
        self.q = Q0.copy()
        self.chunk_pub = self.create_publisher(JointTrajectory, names.POLICY_CHUNK, QOS)
        self.teleop_pub = self.create_publisher(JointTrajectory, names.TELEOP_COMMAND, QOS)
        self.js_pub = self.create_publisher(JointState, names.JOINT_STATES, QOS)
        self.scale_pub = self.create_publisher(Float64, names.SAFETY_SPEED_SCALE, QOS)
        self.create_subscription(JointTrajectory, names.SAFETY_COMMAND, self._on_command, QOS)
        self.create_subscription(String, names.SAFETY_INTERVENTION, self._on_intervention, QOS)
        self.estop = self.create_client(Trigger, names.SAFETY_ESTOP)
        self.reset = self.create_client(Trigger, names.SAFETY_RESET)
        self.create_timer(0.01, self._publish_joint_states)

    def _on_command(self, msg: JointTrajectory) -> None:
        with self.lock:
            self.commands.append(msg)
            self.q = np.asarray(msg.points[0].positions)  # a perfect driver

    def _on_intervention(self, msg: String) -> None:
        with self.lock:
            self.interventions.append(msg.data)

    def _publish_joint_states(self) -> None:
        msg = JointState()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.name = list(names.JOINT_NAMES) + list(names.FINGER_NAMES)
        with self.lock:
            msg.position = [float(v) for v in self.q] + [0.04, 0.04]
        self.js_pub.publish(msg)

    def now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def snapshot(self) -> tuple[list[JointTrajectory], list[str]]:
        with self.lock:
            return list(self.commands), list(self.interventions)


def wait_for(predicate, timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.02)
    return False


@pytest.fixture
def graph():
    context = rclpy.context.Context()
    rclpy.init(context=context)
    node = SafetyFilterNode(
        context=context,
        parameter_overrides=[
            Parameter("stale_timeout_s", value=1.0),  # a busy CI machine must not trip the watchdog
            Parameter("limits.velocity_scale", value=0.4),
            Parameter("measured_source_node", value="/safety_filter_test_peer"),  # the peer plays the driver
        ],
    )
    peer = Peer(context)
    # One single-threaded executor per node, each in its own thread: rclpy's MultiThreadedExecutor
    # hosting both here ran the filter's 100 Hz timer at about 6 Hz on this machine.
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    peer_executor = SingleThreadedExecutor(context=context)
    peer_executor.add_node(peer)
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    threading.Thread(target=peer_executor.spin, daemon=True).start()
    yield node, peer
    executor.shutdown()
    peer_executor.shutdown()
    node.destroy_node()
    peer.destroy_node()
    rclpy.shutdown(context=context)
    thread.join(timeout=5)


def call(client, timeout: float = 5.0) -> Trigger.Response:
    assert client.wait_for_service(timeout_sec=timeout)
    future = client.call_async(Trigger.Request())
    assert wait_for(future.done, timeout)
    return future.result()


def positions(cmds: list[JointTrajectory]) -> np.ndarray:
    return np.array([c.points[0].positions for c in cmds])


def test_node_filters_nan_and_jumps_and_estop_holds_until_reset(graph):
    node, peer = graph
    # Synced from the fake driver's /joint_states: commands start at Q0.
    assert wait_for(lambda: len(peer.snapshot()[0]) > 5), "no /safety/command output"
    cmds, _ = peer.snapshot()
    assert cmds[-1].joint_names == list(names.JOINT_NAMES)
    assert len(cmds[-1].points) == 1
    assert np.allclose(cmds[-1].points[0].positions, Q0)

    # A chunk with a NaN is rejected and reported.
    bad = np.tile(Q0, (4, 1))
    bad[2, 1] = np.nan
    peer.chunk_pub.publish(chunk_to_msg(peer.now(), 0.1, bad))
    assert wait_for(lambda: any("NaN" in s for s in peer.snapshot()[1])), peer.snapshot()[1]

    # The inactive source is ignored and reported.
    peer.teleop_pub.publish(chunk_to_msg(peer.now(), 0.1, np.tile(Q0 + 0.3, (2, 1))))
    assert wait_for(lambda: any("ignored_source" in s for s in peer.snapshot()[1]))

    # A chunk with a huge jump (joint 1 by 2 rad at once, joint 4 past its limit).
    jump = np.tile(Q0, (20, 1))
    jump[1:, 0] += 2.0
    jump[1:, 3] = 0.3
    start = len(peer.snapshot()[0])
    peer.chunk_pub.publish(chunk_to_msg(peer.now(), 0.1, jump))
    assert wait_for(lambda: len(peer.snapshot()[0]) > start + 60)
    moving = peer.snapshot()[0][start:]
    assert np.max(np.abs(positions(moving)[:, 0] - Q0[0])) > 0.05, ("the arm never moved", peer.snapshot()[1][-8:])

    # E-stop: decelerates, then holds even though the chunk is still valid and re-sent.
    resp = call(peer.estop)
    assert resp.success and "latched" in resp.message
    time.sleep(0.8)
    peer.chunk_pub.publish(chunk_to_msg(peer.now(), 0.1, jump))
    time.sleep(0.5)
    cmds, notes = peer.snapshot()
    tail = positions(cmds[-20:])
    assert np.allclose(tail, tail[-1], atol=0), "moved while e-stopped"
    assert np.allclose(cmds[-1].points[0].velocities, 0.0)
    assert any("e-stop" in s for s in notes)

    # Reset: still holds (no resume of the old chunk), until a NEW command arrives.
    old_stamp = peer.now() - 0.5  # observed before the reset
    resp = call(peer.reset)
    assert resp.success
    peer.chunk_pub.publish(chunk_to_msg(old_stamp, 0.1, jump))
    time.sleep(0.5)
    cmds, notes = peer.snapshot()
    tail = positions(cmds[-20:])
    assert np.allclose(tail, tail[-1], atol=0), "resumed after reset without a new command"
    held = tail[-1]
    new = np.tile(held, (10, 1))
    new[1:, 2] += 0.3
    t_new = peer.now()

    def moved() -> bool:
        # Sources re-send their chunk (the policy node's heartbeat); one message alone goes stale
        # after 0.15 s, part-way through the move.
        peer.chunk_pub.publish(chunk_to_msg(t_new, 0.1, new))
        return abs(peer.snapshot()[0][-1].points[0].positions[2] - held[2]) > 0.05

    assert wait_for(moved)

    # Every command ever published: finite and within every limit (node runs at config.dt ticks).
    cmds, _ = peer.snapshot()
    p = positions(cmds)
    v = np.array([c.points[0].velocities for c in cmds])
    a = np.array([c.points[0].accelerations for c in cmds])
    assert np.isfinite(p).all() and np.isfinite(v).all() and np.isfinite(a).all()
    # Publishing is in order on one timer; a lost message would only make the check stricter
    # where it spans two ticks, so check consecutive runs where stamps are one period apart.
    stamps = np.array([c.header.stamp.sec + c.header.stamp.nanosec * 1e-9 for c in cmds])
    assert np.all(np.diff(stamps) > 0)
    problems = joint_stream_violations(p, v, a, node.config)
    assert problems == [], problems
    assert node.filter.limits.velocity_scale == pytest.approx(0.4)
    assert np.max(np.abs(v)) <= 0.4 * 2.62 + 1e-9


def test_malformed_joint_states_and_messages_do_not_crash(graph):
    from diagnostic_msgs.msg import DiagnosticArray

    node, peer = graph
    diagnostics: list[DiagnosticArray] = []
    peer.create_subscription(DiagnosticArray, names.DIAGNOSTICS, diagnostics.append, 10)
    assert wait_for(lambda: len(peer.snapshot()[0]) > 3)
    wrong = JointTrajectory()
    wrong.header.stamp = sec_to_time(peer.now())
    wrong.joint_names = ["a", "b"]
    peer.chunk_pub.publish(wrong)
    empty = JointTrajectory()
    empty.joint_names = list(names.JOINT_NAMES)
    peer.chunk_pub.publish(empty)
    peer.scale_pub.publish(Float64(data=float("nan")))
    js = JointState()
    js.name = ["something_else"]
    js.position = [1.0]
    peer.js_pub.publish(js)
    assert wait_for(lambda: node._malformed >= 3)
    n = len(peer.snapshot()[0])
    assert wait_for(lambda: len(peer.snapshot()[0]) > n + 5), "node stopped publishing"
    assert wait_for(lambda: any("lacks joints" in s for s in peer.snapshot()[1]))

    def reported() -> bool:
        for arr in list(diagnostics):
            for st in arr.status:
                values = {kv.key: kv.value for kv in st.values}
                if st.name == "safety_filter" and int(values.get("malformed", "0")) >= 3:
                    return values["mode"] in ("idle", "tracking", "stale")
        return False

    assert wait_for(reported, timeout=5.0), "no /diagnostics with the malformed-message count"


def test_cartesian_mode_publishes_pose_commands_inside_the_box():
    from geometry_msgs.msg import PoseStamped

    from cdp_ros_common.conversions import pose_to_msg
    from cdp_core.robot.kinematics import forward_kinematics
    from cdp_core.robot.rotations import W_NON_NEGATIVE, matrix_to_quat

    context = rclpy.context.Context()
    rclpy.init(context=context)
    try:
        node = SafetyFilterNode(
            context=context,
            parameter_overrides=[
                Parameter("command_mode", value="cartesian"),
                Parameter("active_source", value="teleop"),
                Parameter("stale_timeout_s", value=1.0),
                Parameter("measured_source_node", value="/cartesian_peer"),
            ],
        )
        peer = Node("cartesian_peer", context=context)
        poses: list[PoseStamped] = []
        lock = threading.Lock()

        def on_pose(msg: PoseStamped) -> None:
            with lock:
                poses.append(msg)

        peer.create_subscription(PoseStamped, names.SAFETY_CARTESIAN_COMMAND, on_pose, QOS)
        js_pub = peer.create_publisher(JointState, names.JOINT_STATES, QOS)
        target_pub = peer.create_publisher(PoseStamped, names.TELEOP_CARTESIAN, QOS)

        def joint_states() -> None:
            js_pub.publish(JointState(name=list(names.JOINT_NAMES), position=[float(v) for v in Q0]))

        peer.create_timer(0.01, joint_states)
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(node)
        peer_executor = SingleThreadedExecutor(context=context)
        peer_executor.add_node(peer)
        thread = threading.Thread(target=executor.spin, daemon=True)
        thread.start()
        threading.Thread(target=peer_executor.spin, daemon=True).start()
        home = forward_kinematics(Q0)
        assert wait_for(lambda: len(poses) > 3)
        with lock:
            p = poses[-1].pose.position
        assert np.allclose([p.x, p.y, p.z], home[:3, 3], atol=1e-9)
        now = peer.get_clock().now().nanoseconds * 1e-9
        # Below the floor of the box: clamped (and no resync, the fake driver holds Q0: the
        # drift tolerance of 5 cm is not exceeded while the target is 2 cm down).
        goal = home[:3, 3] + np.array([0.0, 0.0, -0.02])

        def reached() -> bool:
            # A teleop source re-sends its target (the 0.15 s watchdog would otherwise stop the
            # motion part-way, which is the point of the watchdog).
            target_pub.publish(
                pose_to_msg(
                    peer.get_clock().now().nanoseconds * 1e-9,
                    goal,
                    matrix_to_quat(home[:3, :3], hemisphere=W_NON_NEGATIVE),
                )
            )
            return abs(poses[-1].pose.position.z - goal[2]) < 1e-4

        assert wait_for(reached)
        bad = pose_to_msg(now, np.array([np.nan, 0.0, 0.3]), matrix_to_quat(home[:3, :3], hemisphere=W_NON_NEGATIVE))
        target_pub.publish(bad)
        time.sleep(0.3)
        with lock:
            zs = [m.pose.position.z for m in poses]
            xs = [m.pose.position.x for m in poses]
        assert np.isfinite(xs).all() and min(zs) >= 0.03
        executor.shutdown()
        peer_executor.shutdown()
        thread.join(timeout=5)
        node.destroy_node()
        peer.destroy_node()
    finally:
        rclpy.shutdown(context=context)
