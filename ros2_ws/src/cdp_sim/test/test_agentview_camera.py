"""agentview_camera: renders cdp_core's scene from the graph's state, stamped with the state it shows."""

import subprocess
import sys
import threading
import time

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")

from cdp_core.sim.cameras import cameras_by_name, use_offscreen_gl  # noqa: E402
from cdp_core.sim.env import HOME_Q  # noqa: E402
from cdp_ros_common import names  # noqa: E402
from cdp_ros_common.conversions import pose_to_msg, sec_to_time, time_to_sec  # noqa: E402
from geometry_msgs.msg import PoseStamped  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from sensor_msgs.msg import Image, JointState  # noqa: E402

SIZE = 32
HOLE = (np.array([0.55, 0.05, 0.06]), np.array([0.0, 0.0, 0.0, 1.0]))


def test_frames_show_the_published_state_at_its_stamp():
    proc = subprocess.Popen(
        [sys.executable, "-m", "cdp_sim.agentview_node", "--ros-args", "-p", "task:=peg_insert"]
        + ["-p", f"image_size:=[{SIZE},{SIZE}]", "-p", "rate_hz:=10.0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    ctx = rclpy.context.Context()
    rclpy.init(context=ctx)
    node = rclpy.create_node("agentview_probe", context=ctx)
    images: list[Image] = []
    node.create_subscription(Image, names.AGENTVIEW_IMAGE, images.append, 10)
    js_pub = node.create_publisher(JointState, names.JOINT_STATES, 10)
    pose_pub = node.create_publisher(PoseStamped, names.OBJECT_POSE, 10)
    q = {"now": np.array(HOME_Q, dtype=float)}
    sent: dict[float, np.ndarray] = {}

    def publish():
        now = node.get_clock().now().nanoseconds * 1e-9
        js = JointState(name=names.JOINT_NAMES + names.FINGER_NAMES, position=[*q["now"], 0.02, 0.02])
        js.header.stamp = sec_to_time(now)
        sent[time_to_sec(js.header.stamp)] = q["now"].copy()
        js_pub.publish(js)
        pose_pub.publish(pose_to_msg(now, *HOLE))

    node.create_timer(0.05, publish)
    ex = SingleThreadedExecutor(context=ctx)
    ex.add_node(node)
    threading.Thread(target=ex.spin, daemon=True).start()
    try:
        t_end = time.monotonic() + 60
        while len(images) < 3 and time.monotonic() < t_end and proc.poll() is None:
            time.sleep(0.1)
        assert len(images) >= 3, proc.stdout.read().decode() if proc.poll() is not None else "no frames"
        msg = images[-1]
        assert (msg.height, msg.width, msg.encoding, msg.step) == (SIZE, SIZE, "rgb8", 3 * SIZE)
        stamp = time_to_sec(msg.header.stamp)
        assert stamp in sent, "a frame's stamp must be the joint message it shows"
        frame = np.frombuffer(bytes(msg.data), np.uint8).reshape(SIZE, SIZE, 3)
        # the very picture a demonstration renders for this state (cdp_core's scene and camera)
        use_offscreen_gl()
        from cdp_core.sim.env import FR3TaskEnv
        from cdp_core.sim.tasks import get_task

        env = FR3TaskEnv("peg_insert", cameras=cameras_by_name(["agentview"], (SIZE, SIZE)))
        want = env.render_state(sent[stamp], 0.02, get_task("peg_insert").params_from_object_pose(*HOLE))["agentview"]
        assert np.abs(frame.astype(int) - want.astype(int)).mean() < 1.0
        # the arm moves: so does the picture
        q["now"] = q["now"] + np.array([0.6, 0.3, 0.0, 0.3, 0.0, 0.0, 0.0])
        n = len(images)
        t_end = time.monotonic() + 20
        while len(images) < n + 3 and time.monotonic() < t_end:
            time.sleep(0.1)
        moved = np.frombuffer(bytes(images[-1].data), np.uint8).reshape(SIZE, SIZE, 3)
        assert np.abs(moved.astype(int) - frame.astype(int)).mean() > 1.0
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        ex.shutdown()
        node.destroy_node()
        rclpy.try_shutdown(context=ctx)
