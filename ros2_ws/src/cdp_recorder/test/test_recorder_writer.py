"""Recorder without a ROS graph: MCAP content readable by standard tools, atomic finish, discard,
leftover partials marked, full disk (file-size limit) stops recording with a clear error, idle trimming."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from cdp_recorder.convert import ConvertConfig, idle_keep_mask
from cdp_recorder.recorder import ERROR, IDLE, RECORDING, EpisodeRecorder, RecorderConfig
from cdp_recorder.schemas import SchemaError, message_definition
from cdp_recorder.writer import EpisodeWriter, mark_leftover_partials
from rclpy.serialization import serialize_message
from sensor_msgs.msg import JointState
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint


def _js(i: int) -> JointState:
    m = JointState(name=[f"fr3_joint{k}" for k in range(1, 8)], position=[0.01 * i + k for k in range(7)])
    m.header.stamp.sec, m.header.stamp.nanosec = 100 + i // 100, (i % 100) * 10_000_000
    return m


def test_mcap_is_readable_by_mcap_ros2_with_the_stored_schemas(tmp_path):
    from mcap_ros2.reader import read_ros2_messages

    w = EpisodeWriter(tmp_path, "ep")
    traj = JointTrajectory(joint_names=["a", "b"], points=[JointTrajectoryPoint(positions=[1.0, 2.0])])
    for i in range(50):
        w.write("/joint_states", "sensor_msgs/msg/JointState", serialize_message(_js(i)), 1_000 + i)
    w.write("/teleop/command", "trajectory_msgs/msg/JointTrajectory", serialize_message(traj), 2_000)
    assert w.partial.exists() and not w.final.exists()
    path = w.finish({"episode": {"task": "reach_precise", "success": "true"}})
    assert path.name == "ep.mcap" and not w.partial.exists()
    msgs = list(read_ros2_messages(str(path)))
    js = [m.ros_msg for m in msgs if m.channel.topic == "/joint_states"]
    assert len(js) == 50 and list(js[7].position) == list(_js(7).position) and js[7].header.stamp.nanosec == 70_000_000
    cmd = [m.ros_msg for m in msgs if m.channel.topic == "/teleop/command"][0]
    assert list(cmd.points[0].positions) == [1.0, 2.0]
    from mcap.reader import make_reader

    with open(path, "rb") as fh:
        r = make_reader(fh)
        assert r.get_header().profile == "ros2"
        assert {m.name: dict(m.metadata) for m in r.iter_metadata()}["episode"]["success"] == "true"


def test_schema_lookup_names_a_missing_type():
    assert "MSG: std_msgs/Header" in message_definition("sensor_msgs/msg/JointState")
    with pytest.raises(SchemaError, match="no_such_msgs/msg/Nope"):
        message_definition("no_such_msgs/msg/Nope")


def test_recorder_events_keep_discard_and_mark(tmp_path):
    logs = []
    r = EpisodeRecorder(RecorderConfig(output_dir=str(tmp_path), min_free_mb=1.0), log=logs.append)
    r.handle_event({"event": "start", "task": "reach_precise", "operator": "me"})
    assert r.state == RECORDING
    for i in range(5):
        r.write("/joint_states", serialize_message(_js(i)))
    r.handle_event({"event": "success"})
    r.handle_event({"event": "stop"})
    assert r.state == IDLE and len(r.finished) == 1
    r.handle_event({"event": "start", "task": "reach_precise"})
    r.write("/joint_states", serialize_message(_js(0)))
    r.handle_event({"event": "discard"})
    assert len(list(tmp_path.glob("*.mcap*"))) == 1  # the discarded one is gone
    from cdp_recorder.episode_file import read_episode

    ep = read_episode(r.finished[0])
    assert ep.success is True and ep.episode["operator"] == "me" and ep.episode["messages"] == "5"
    r.handle_event({"event": "stop"})  # nothing recording: ignored, said so
    assert any("ignored" in s for s in logs)


def test_leftover_partials_are_marked_never_deleted(tmp_path):
    (tmp_path / "old.mcap.partial").write_bytes(b"\x89MCAP0\r\n half an episode")
    (tmp_path / "done.mcap").write_bytes(b"keep me")
    marked = mark_leftover_partials(tmp_path)
    assert [p.name for p in marked] == ["old.incomplete.mcap"]
    assert marked[0].read_bytes().endswith(b"half an episode")
    assert (tmp_path / "done.mcap").read_bytes() == b"keep me"


FULL_DISK_CHILD = textwrap.dedent("""
    import json, resource, signal, sys
    from rclpy.serialization import serialize_message
    from sensor_msgs.msg import JointState
    from cdp_recorder.recorder import EpisodeRecorder, RecorderConfig
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG instead of killing us
    out = sys.argv[1]
    logs = []
    r = EpisodeRecorder(RecorderConfig(output_dir=out, min_free_mb=1.0, fsync_period_s=0.0, chunk_size=4096),
                        log=logs.append)
    msg = serialize_message(JointState(name=["j"] * 7, position=[0.5] * 7))
    r.handle_event({"event": "start", "task": "reach_precise"})
    for i in range(50):
        r.write("/joint_states", msg)
    r.handle_event({"event": "stop"})
    first_size = max(p.stat().st_size for p in r.finished)
    resource.setrlimit(resource.RLIMIT_FSIZE, (first_size + 20000, first_size + 20000))
    r.handle_event({"event": "start", "task": "reach_precise"})
    written = 0
    while r.state == "recording" and written < 100000:
        r.write("/joint_states", msg)
        written += 1
    print(json.dumps({"state": r.state, "error": r.error, "written": written, "kept": [str(p) for p in r.finished],
                      "logs": logs}))
""")


def test_full_disk_stops_recording_with_a_clear_error(tmp_path):
    res = subprocess.run(
        [sys.executable, "-c", FULL_DISK_CHILD, str(tmp_path)], capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["state"] == ERROR and out["written"] < 100000
    assert "disk full" in out["error"] and "EFBIG" in out["error"] and ".mcap.partial" in out["error"]
    assert any("RECORDING STOPPED" in s for s in out["logs"])
    assert len(list(tmp_path.glob("*.mcap.partial"))) == 1  # left for inspection
    from cdp_recorder.episode_file import read_episode

    assert len(read_episode(out["kept"][0]).topics["/joint_states"].msgs) == 50  # the earlier episode is intact


def test_idle_trimming_cuts_head_tail_and_long_pauses():
    rate = 10.0
    q = np.concatenate([np.zeros(20), np.linspace(0, 1, 10), np.ones(30), np.linspace(1, 2, 10), 2 * np.ones(40)])
    q = np.repeat(q[:, None], 7, axis=1)
    cfg = ConvertConfig(keep_head_s=0.3, keep_tail_s=1.0, max_pause_s=1.0)
    keep, trim = idle_keep_mask(q, q, rate, cfg)
    assert trim["head"] == 20 - 3 and trim["tail"] == 110 - (68 + 1 + 10)  # motion: steps 20..68
    assert trim["pauses"] > 0 and keep.sum() == len(q) - trim["head"] - trim["tail"] - trim["pauses"]
    kept = q[keep, 0]
    assert kept[0] == 0.0 and kept[-1] == 2.0 and np.all(np.diff(kept) >= 0)
    with pytest.raises(ValueError, match="action"):
        ConvertConfig(action="velocity")
