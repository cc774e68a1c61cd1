"""policy_node in-process on a real rclpy graph: enable -> stamped chunks, disable -> silence; start-up errors exit 1."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import rclpy
from rclpy.executors import MultiThreadedExecutor
from rclpy.parameter import Parameter

from cdp_ros_common import names
from cdp_ros_common.conversions import duration_to_sec, pose_to_msg, sec_to_time, time_to_sec
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64
from std_srvs.srv import SetBool
from trajectory_msgs.msg import JointTrajectory

HOME = [0.0, -0.3, 0.0, -2.2, 0.0, 1.9, 0.785]


def wait_for(cond, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.02)
    return cond()


@pytest.fixture
def ros_context():
    ctx = rclpy.context.Context()
    rclpy.init(context=ctx)
    yield ctx
    rclpy.try_shutdown(context=ctx)


def test_policy_node_publishes_chunks_when_enabled(fr3_model, ros_context):
    from cdp_policy.node import PolicyNode

    ctx = ros_context
    policy = PolicyNode(
        context=ctx,
        parameter_overrides=[
            Parameter("model_path", value=str(fr3_model)),
            Parameter("seed", value=0),
            Parameter("max_obs_age_s", value=0.5),  # a busy 2-core CI machine delays 50 Hz publishers
            Parameter("diagnostics_period_s", value=0.3),
        ],
    )
    rig = rclpy.create_node("policy_test_rig", context=ctx)
    chunks: list[tuple[float, JointTrajectory]] = []
    scales: list[float] = []
    diags: list[DiagnosticArray] = []
    rig.create_subscription(JointTrajectory, names.POLICY_CHUNK, lambda m: chunks.append((time.time(), m)), 10)
    rig.create_subscription(Float64, names.SAFETY_SPEED_SCALE, lambda m: scales.append(m.data), 10)
    rig.create_subscription(DiagnosticArray, names.DIAGNOSTICS, diags.append, 10)
    js_pub = rig.create_publisher(JointState, names.JOINT_STATES, 10)
    ee_pub = rig.create_publisher(PoseStamped, names.EE_POSE, 10)
    obj_pub = rig.create_publisher(PoseStamped, names.OBJECT_POSE, 10)
    published: list[float] = []

    def publish_state():
        now = rig.get_clock().now().nanoseconds * 1e-9
        js = JointState(name=names.JOINT_NAMES + names.FINGER_NAMES, position=[*HOME, 0.04, 0.04])
        js.header.stamp = sec_to_time(now)
        js_pub.publish(js)
        ee_pub.publish(pose_to_msg(now, np.array([0.31, 0.0, 0.49]), np.array([1.0, 0.0, 0.0, 0.0])))
        obj_pub.publish(pose_to_msg(now, np.array([0.5, 0.1, 0.3]), np.array([0.0, 0.0, 0.0, 1.0])))
        published.append(now)

    rig.create_timer(0.02, publish_state)  # 50 Hz
    client = rig.create_client(SetBool, names.POLICY_ENABLE)
    executor = MultiThreadedExecutor(num_threads=4, context=ctx)
    executor.add_node(policy)
    executor.add_node(rig)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    try:
        assert client.wait_for_service(timeout_sec=10.0)
        # disabled at start: state flows, no chunks
        assert wait_for(lambda: len(published) > 40, 10.0)
        assert chunks == []

        def call(enable: bool) -> SetBool.Response:
            future = client.call_async(SetBool.Request(data=enable))
            assert wait_for(future.done, 10.0)
            return future.result()

        t_enable = time.time()
        assert call(True).success

        # Between plans the node re-sends the chunk being executed (a heartbeat for the safety
        # filter's watchdog): same stamp, same points. Three *distinct* chunks are three plans.
        def distinct():
            return {time_to_sec(m.header.stamp): (r, m) for r, m in reversed(chunks)}

        assert wait_for(lambda: len(distinct()) >= 3, 15.0), f"got {len(distinct())} distinct chunks"
        by_stamp = distinct()
        for stamp in by_stamp:
            copies = [m for _, m in chunks if time_to_sec(m.header.stamp) == stamp]
            assert all(
                [list(p.positions) for p in c.points] == [list(p.positions) for p in copies[0].points] for c in copies
            )  # heartbeats repeat the chunk, never alter it
        dt = policy.runner.dt
        stamps = []
        for stamp in sorted(by_stamp)[:3]:
            received, msg = by_stamp[stamp]
            assert msg.joint_names == names.JOINT_NAMES and msg.header.frame_id == names.BASE_FRAME
            stamp = time_to_sec(msg.header.stamp)
            assert t_enable - 0.1 <= stamp <= received + 0.01  # observation time: after enabling, before arrival
            times = np.array([duration_to_sec(p.time_from_start) for p in msg.points])
            first = round(times[0] / dt)
            np.testing.assert_allclose(times, dt * np.arange(first, first + len(times)), atol=1e-6)
            assert 1 <= len(msg.points) and first + len(msg.points) == policy.runner.n_exec
            assert all(len(p.positions) == 7 and np.isfinite(p.positions).all() for p in msg.points)
            stamps.append(stamp)
        assert stamps == sorted(stamps) and len(set(stamps)) == 3
        assert scales and all(s in (0.0, policy.cfg.slow_scale, 1.0) for s in scales)
        assert wait_for(
            lambda: any(
                d.status[0].values and any(kv.key == "enabled" and kv.value == "True" for kv in d.status[0].values)
                for d in diags
            ),
            5.0,
        )
        keys = {kv.key for kv in diags[-1].status[0].values}
        assert {
            "latency_p50_ms",
            "latency_p99_ms",
            "obs_age_s",
            "missed_deadlines",
            "dispersion_rad",
            "provider",
        } <= keys

        # disable: chunks stop (allow one in flight), the speed request is released
        assert call(False).success
        time.sleep(0.3)
        n = len(chunks)
        time.sleep(1.2)  # three chunk periods at 10 Hz / 4 actions
        assert len(chunks) == n
        assert wait_for(lambda: scales[-1] == 1.0, 2.0)
        # re-enable: chunks come back
        assert call(True).success
        assert wait_for(lambda: len(chunks) > n, 10.0)
    finally:
        executor.shutdown()
        spinner.join(timeout=5)
        policy.destroy_node()
        rig.destroy_node()


@pytest.mark.parametrize("case", ["missing", "corrupt"])
def test_node_exits_nonzero_on_bad_model(tmp_path, case):
    model = tmp_path / "m.onnx"
    if case == "corrupt":
        model.write_bytes(b"garbage" * 100)
    r = subprocess.run(
        [sys.executable, "-m", "cdp_policy.node", "--ros-args", "-p", f"model_path:={model}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 1
    expected = "model file not found" if case == "missing" else "corrupt or not an ONNX model"
    assert expected in r.stdout + r.stderr and str(model) in r.stdout + r.stderr


def test_image_policy_node_runs_on_camera_frames_and_holds_when_the_camera_stalls(image_model, ros_context):
    """The node subscribes to the model's camera topic; frames stop -> no chunks, diagnostics name the camera."""
    from cdp_policy.node import PolicyNode
    from sensor_msgs.msg import Image

    ctx = ros_context
    policy = PolicyNode(
        context=ctx,
        parameter_overrides=[
            Parameter("model_path", value=str(image_model)),
            Parameter("seed", value=0),
            Parameter("max_obs_age_s", value=0.5),
            Parameter("max_image_age_s", value=0.5),
            Parameter("diagnostics_period_s", value=0.2),
            Parameter("enabled_on_start", value=True),
        ],
    )
    rig = rclpy.create_node("policy_camera_rig", context=ctx)
    chunks: list[JointTrajectory] = []
    diags: list[dict[str, str]] = []

    def on_diag(msg: DiagnosticArray) -> None:
        for st in msg.status:
            if st.name == "policy_node":
                diags.append({"message": st.message, **{kv.key: kv.value for kv in st.values}})

    rig.create_subscription(JointTrajectory, names.POLICY_CHUNK, chunks.append, 10)
    rig.create_subscription(DiagnosticArray, names.DIAGNOSTICS, on_diag, 10)
    js_pub = rig.create_publisher(JointState, names.JOINT_STATES, 10)
    ee_pub = rig.create_publisher(PoseStamped, names.EE_POSE, 10)
    obj_pub = rig.create_publisher(PoseStamped, names.OBJECT_POSE, 10)
    img_pub = rig.create_publisher(Image, names.AGENTVIEW_IMAGE, 10)
    camera_on = threading.Event()
    camera_on.set()
    size = int(policy.runner.metadata["image_size"][0])
    pixels = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)

    def publish_state():
        now = rig.get_clock().now().nanoseconds * 1e-9
        js = JointState(name=names.JOINT_NAMES + names.FINGER_NAMES, position=[*HOME, 0.04, 0.04])
        js.header.stamp = sec_to_time(now)
        js_pub.publish(js)
        ee_pub.publish(pose_to_msg(now, np.array([0.31, 0.0, 0.49]), np.array([1.0, 0.0, 0.0, 0.0])))
        obj_pub.publish(pose_to_msg(now, np.array([0.5, 0.1, 0.3]), np.array([0.0, 0.0, 0.0, 1.0])))
        if camera_on.is_set():
            img = Image(height=size, width=size, encoding="rgb8", step=3 * size, data=pixels.tobytes())
            img.header.stamp = sec_to_time(now)
            img_pub.publish(img)

    rig.create_timer(0.05, publish_state)  # 20 Hz
    executor = MultiThreadedExecutor(num_threads=4, context=ctx)
    executor.add_node(policy)
    executor.add_node(rig)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    try:
        stamps = lambda: {time_to_sec(m.header.stamp) for m in chunks}  # noqa: E731
        assert wait_for(lambda: len(stamps()) >= 2, 20.0), f"got {len(stamps())} distinct chunks from frames"
        assert wait_for(lambda: diags and float(diags[-1].get("image_age_s.agentview", "nan")) < 0.5, 5.0)
        camera_on.clear()  # the camera stalls; the arm's state keeps coming
        assert wait_for(lambda: diags and "stale camera" in diags[-1]["message"], 5.0), diags[-1:]
        assert names.AGENTVIEW_IMAGE in diags[-1]["message"]
        time.sleep(0.3)
        n = len(chunks)
        time.sleep(1.0)
        assert len(chunks) == n, "chunks (or heartbeats) went on without camera frames"
        camera_on.set()
        assert wait_for(lambda: len(chunks) > n, 10.0), "the policy did not resume with the camera"
    finally:
        executor.shutdown()
        spinner.join(timeout=5)
        policy.destroy_node()
        rig.destroy_node()
