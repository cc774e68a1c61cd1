"""cdp-record-plot on a recording written with the recorder's own writer (no ROS graph)."""

from __future__ import annotations

import json

import numpy as np
from cdp_recorder.plot import episode_series, main, plot_episode
from cdp_recorder.episode_file import read_episode
from cdp_recorder.writer import EpisodeWriter
from rclpy.serialization import serialize_message
from sensor_msgs.msg import JointState
from std_msgs.msg import String
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

JOINTS = [f"fr3_joint{k}" for k in range(1, 8)]


def _traj(q) -> bytes:
    return serialize_message(JointTrajectory(joint_names=JOINTS, points=[JointTrajectoryPoint(positions=list(q))]))


def _recording(tmp_path, with_states: bool = True):
    w = EpisodeWriter(tmp_path, "ep")
    ns = 1_000_000_000
    w.write("/episode/event", "std_msgs/msg/String", serialize_message(String(data=json.dumps({"event": "start"}))), ns)
    for i in range(100):  # 10 ms apart: 1 s
        t = ns + i * 10_000_000
        q = np.full(7, 0.01 * i)
        if with_states:
            # joint names in a different order than the command's: matched by name
            js = JointState(name=list(reversed(JOINTS)), position=list(reversed(q - 0.005)))
            w.write("/joint_states", "sensor_msgs/msg/JointState", serialize_message(js), t)
        w.write("/safety/command", "trajectory_msgs/msg/JointTrajectory", _traj(q), t + 1)
        if i % 25 == 0:
            w.write("/policy/action_chunk", "trajectory_msgs/msg/JointTrajectory", _traj(q + 0.1), t + 2)
    w.write(
        "/safety/intervention",
        "std_msgs/msg/String",
        serialize_message(String(data="velocity clipped")),
        ns + 500_000_000,
    )
    return w.finish({"episode": {"task": "reach_precise", "success": "true"}})


def test_the_series_are_the_recorded_values_on_one_clock(tmp_path):
    s = episode_series(read_episode(_recording(tmp_path)))
    assert len(s.measured_t) == 100 and len(s.commanded_t) == 100 and len(s.chunk_t) == 4
    np.testing.assert_allclose(s.measured_q[10], np.full(7, 0.1 - 0.005))  # reordered by name
    np.testing.assert_allclose(s.commanded_q[10], np.full(7, 0.1))
    np.testing.assert_allclose(s.requested_q[1], np.full(7, 0.35))
    np.testing.assert_allclose(s.chunk_t, [0.0, 0.25, 0.5, 0.75], atol=1e-6)
    assert s.interventions == [(0.5, "velocity clipped")] and s.events == [(0.0, "start")]


def test_the_cli_writes_a_png_and_refuses_a_recording_without_joint_states(tmp_path, capsys):
    out = plot_episode(_recording(tmp_path / "a"), tmp_path / "a.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 20_000
    assert main([str(_recording(tmp_path / "b", with_states=False)), "--out", str(tmp_path / "b.png")]) == 2
    assert "no /joint_states" in capsys.readouterr().err
