"""End to end in simulation, unattended: scripted operator -> teleop_node -> safety filter -> driver ->
franky-sim, recorded by recorder_node; the episodes are converted, a small policy is trained on
them, one is replayed, and finally the recorder is SIGKILLed mid-episode.

One stack for the module (sim_robot, franka_driver, safety_filter from launch/graph.yaml, plus
teleop_node in scripted mode and recorder_node), on a loopback address of its own. About 2 min.
"""

from __future__ import annotations

import io
import json
import shutil
import os
import random
import signal
import time
from pathlib import Path

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")

from cdp_bringup.graph import NodeSpec, load_graph, resolve  # noqa: E402
from cdp_bringup.launcher import NodeGraph  # noqa: E402
from cdp_recorder.convert import ConvertConfig, convert  # noqa: E402
from cdp_recorder.episode_file import read_episode  # noqa: E402
from cdp_recorder.recorder import EpisodeRecorder, RecorderConfig  # noqa: E402
from cdp_ros_common.names import FINGER_NAMES, JOINT_NAMES  # noqa: E402
from cdp_teleop.events import EPISODE_EVENT, encode_event  # noqa: E402
from mcap.reader import make_reader  # noqa: E402
from rclpy.serialization import deserialize_message  # noqa: E402
from sensor_msgs.msg import JointState  # noqa: E402
from std_msgs.msg import String  # noqa: E402
from trajectory_msgs.msg import JointTrajectory  # noqa: E402

pytestmark = pytest.mark.slow
EPISODES = 3
CAMERA_SIZE = 32
AGENTVIEW = "/camera/agentview/image_raw"


@pytest.fixture(scope="module")
def collected(tmp_path_factory):
    rec_dir = tmp_path_factory.mktemp("recordings")
    host = f"127.0.6.{random.Random(os.getpid()).randint(1, 100)}"
    specs = [s for s in resolve(load_graph(), {"use_sim": "true", "robot_ip": host}) if s.name != "policy_node"]
    params = specs[0].params_files
    specs.append(
        NodeSpec(
            "recorder_node",
            "cdp_recorder",
            "recorder_node",
            "cdp_recorder.node",
            True,
            0.0,
            params,
            {"output_dir": str(rec_dir), "min_free_mb": "10.0"},
        )
    )
    specs.append(
        NodeSpec(
            "teleop_node",
            "cdp_teleop",
            "teleop_node",
            "cdp_teleop.node",
            False,
            0.0,
            params,
            {
                "device": "scripted",
                "episodes": str(EPISODES),
                "exit_when_done": "true",
                "task": "reach_precise",
                "operator": "pytest-scripted",
                "max_lead_m": "0.08",
            },
        )
    )
    # The simulated agent-view camera, as an image policy would see it: recorded with the rest.
    specs.append(
        NodeSpec(
            "agentview_camera",
            "cdp_sim",
            "agentview_camera",
            "cdp_sim.agentview_node",
            True,
            0.0,
            params,
            {"image_size": f"[{CAMERA_SIZE}, {CAMERA_SIZE}]", "rate_hz": "10.0"},
        )
    )
    log = io.StringIO()
    graph = NodeGraph(specs, out=log)
    graph.start()
    teleop = next(n for n in graph.nodes if n.spec.name == "teleop_node")
    try:
        teleop.process.wait(timeout=240)
    except Exception as exc:
        graph.stop()
        raise RuntimeError("scripted collection did not finish:\n" + log.getvalue()[-8000:]) from exc
    # The teleop node exits right after its last episode's stop event; the recorder then closes
    # and renames that episode's file. On a loaded machine that takes a moment: wait for it.
    t_end = time.monotonic() + 30.0
    while len(_finished(rec_dir)) < EPISODES and time.monotonic() < t_end:
        time.sleep(0.2)
    yield graph, rec_dir, log
    graph.stop()
    out = Path(__file__).resolve().parents[4] / "outputs"
    out.mkdir(exist_ok=True)
    (out / "test_recorder_pipeline.log").write_text(log.getvalue())


def _finished(rec_dir: Path) -> list[Path]:
    return sorted(p for p in rec_dir.glob("*.mcap") if not p.name.endswith(".incomplete.mcap"))


def test_unattended_collection_records_every_episode(collected):
    graph, rec_dir, log = collected
    teleop = next(n for n in graph.nodes if n.spec.name == "teleop_node")
    assert teleop.process.returncode == 0, log.getvalue()[-4000:]
    files = _finished(rec_dir)
    assert len(files) == EPISODES, (files, log.getvalue()[-4000:])
    assert not list(rec_dir.glob("*.partial"))
    for f in files:
        ep = read_episode(f)
        meta = ep.episode
        assert meta["task"] == "reach_precise" and meta["operator"] == "pytest-scripted"
        assert meta["success"] in ("true", "false")
        assert "cdp_core" in ep.metadata["software"]
        for topic in (
            "/joint_states",
            "/franka/ee_pose",
            "/teleop/command",
            "/safety/command",
            "/perception/object_pose",
            "/episode/event",
        ):
            assert ep.topics.get(topic) and ep.topics[topic].msgs, f"{f.name}: nothing on {topic}"
        # the arm moved during the episode
        q = np.array([m.position[:7] for m in ep.topics["/joint_states"].msgs])
        assert np.ptp(q, axis=0).max() > 0.05
        # the outcome flag the operator set agrees with the simulator's success test recorded in the file
        assert ep.success == any(m.data for m in ep.topics["/task/success"].msgs), f.name


@pytest.fixture(scope="module")
def dataset(collected, tmp_path_factory):
    _, rec_dir, _ = collected
    out = tmp_path_factory.mktemp("dataset")
    report = convert([rec_dir], out, ConvertConfig())
    return out, report


def test_dataset_values_equal_the_recorded_messages(dataset):
    out, report = dataset
    assert report["summary"]["episodes"] == EPISODES, report["rejected"]
    from cdp_core.data.episodes import load_episodes

    ds = load_episodes(out)
    assert ds.meta["rate_hz"] == 10.0 and ds.action_dim == 7
    assert set(ds.obs_dims) == {"joint_pos", "ee_pos", "ee_quat", "target_pos", "gripper_width"}
    for ep, rep in zip(ds.episodes, report["episodes"]):
        # decode independently (rclpy's C deserializer, not the converter's mcap-ros2 decoder)
        rows: dict[str, list] = {"/joint_states": [], "/teleop/command": [], "/perception/object_pose": []}
        with open(rep["file"], "rb") as fh:
            for _s, ch, msg in make_reader(fh).iter_messages(topics=list(rows)):
                rows[ch.topic].append(msg.data)
        js = [deserialize_message(b, JointState) for b in rows["/joint_states"]]
        js_t = np.array([m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 for m in js])
        cmd = [deserialize_message(b, JointTrajectory) for b in rows["/teleop/command"]]
        cmd_t = np.array([m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 for m in cmd])
        assert len(ep) >= 20
        for k, t in enumerate(ep.timestamp):
            m = js[int(np.searchsorted(js_t, t, side="right")) - 1]
            idx = {n: i for i, n in enumerate(m.name)}
            np.testing.assert_array_equal(ep.obs["joint_pos"][k], np.float32([m.position[idx[j]] for j in JOINT_NAMES]))
            np.testing.assert_array_equal(
                ep.obs["gripper_width"][k], np.float32([sum(m.position[idx[j]] for j in FINGER_NAMES)])
            )
            c = cmd[int(np.searchsorted(cmd_t, t, side="right")) - 1]
            np.testing.assert_array_equal(ep.action[k], np.float32(c.points[0].positions))
        # 10 Hz grid, pauses trimmed to at most max_pause_s
        assert np.all(np.diff(ep.timestamp) > 0)
    for rep in report["episodes"]:
        js = rep["topics"]["/joint_states"]
        # rate drift (stamp rate vs arrival) grows with machine load; 50 % still flags a broken stream
        assert js["rate_hz"] > 100 and abs(js["rate_drift_pct"]) < 50, js
        assert rep["stale_samples"] <= 2  # a loaded machine can delay a message past one 10 Hz sample


def test_a_small_policy_trains_on_the_recorded_dataset(dataset, tmp_path):
    from cdp_core.config import config_from_dict
    from cdp_core.testing import small_config
    from cdp_core.trainer import train

    out, _ = dataset
    cfg = small_config(out, train={"steps": 20, "batch_size": 16, "warmup_steps": 2, "checkpoint_every": 20})
    result = train(config_from_dict(cfg), tmp_path / "run")
    assert Path(result["checkpoint"]).is_file()
    losses = [
        json.loads(line)["loss"]
        for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
        if "loss" in json.loads(line)
    ]
    assert losses and all(np.isfinite(losses))


def test_camera_frames_go_into_the_dataset_aligned_by_capture_stamp(collected, tmp_path):
    """--camera: per grid step the recorded frame closest to the arm state it goes with; an image
    policy trains on the result (teleop -> record -> convert -> train with images)."""
    from cdp_core.config import config_from_dict
    from cdp_core.data.episodes import load_episodes
    from cdp_core.testing import small_config
    from cdp_core.trainer import train
    from cdp_recorder.convert import frames_for_grid
    from sensor_msgs.msg import Image

    _, rec_dir, _ = collected
    out = tmp_path / "img"
    cfg = ConvertConfig(cameras=(f"agentview={AGENTVIEW}",), image_size=(16, 16))
    report = convert([rec_dir], out, cfg)
    assert report["summary"]["episodes"] == EPISODES, report["rejected"]
    ds = load_episodes(out)
    assert ds.image_shapes == {"agentview": (16, 16)}
    for ep, rep in zip(ds.episodes, report["episodes"]):
        assert ep.images["agentview"].shape == (len(ep), 16, 16, 3) and ep.images["agentview"].dtype == np.uint8
        frames, stamps, js_t = [], [], []
        with open(rep["file"], "rb") as fh:
            for _s, ch, msg in make_reader(fh).iter_messages(topics=[AGENTVIEW, "/joint_states"]):
                m = deserialize_message(msg.data, Image if ch.topic == AGENTVIEW else JointState)
                t = m.header.stamp.sec + m.header.stamp.nanosec * 1e-9
                if ch.topic == AGENTVIEW:
                    frames.append(np.frombuffer(bytes(m.data), np.uint8).reshape(CAMERA_SIZE, CAMERA_SIZE, 3))
                    stamps.append(t)
                else:
                    js_t.append(t)
        order, js_t = np.argsort(stamps), np.sort(js_t)
        stamps, frames = np.array(stamps)[order], [frames[i] for i in order]
        # recompute each kept step's frame independently: the state's stamp, then the closest frame
        ref = js_t[np.searchsorted(js_t, ep.timestamp, side="right") - 1]
        pick = np.array(
            [min(np.flatnonzero(stamps <= t), key=lambda i: abs(stamps[i] - r)) for t, r in zip(ep.timestamp, ref)]
        )
        np.testing.assert_array_equal(pick, frames_for_grid(stamps, ep.timestamp, ref, 0.3)[0])
        assert np.all(ep.timestamp - stamps[pick] <= 0.3)  # none stale: the camera kept up at 10 Hz
        import cv2

        for k in range(0, len(ep), 7):
            want = cv2.resize(frames[pick[k]], (16, 16), interpolation=cv2.INTER_AREA)
            np.testing.assert_array_equal(ep.images["agentview"][k], want)
        assert rep["topics"][AGENTVIEW]["count"] > 10
    run = train(
        config_from_dict(
            small_config(
                out,
                data={"cameras": ["agentview"], "obs_keys": ["joint_pos", "ee_pos"]},
                model={"image_feature_dim": 8},
                train={"steps": 4, "batch_size": 8, "warmup_steps": 1, "checkpoint_every": 4},
                gate={"holdout_episodes": 0},
            )
        ),
        tmp_path / "run",
    )
    assert Path(run["checkpoint"]).is_file()
    with pytest.raises(ValueError, match="camera=/topic"):
        ConvertConfig(cameras=("agentview",))


def test_replay_reproduces_the_recorded_motion(collected):
    from cdp_recorder.replay import load_commands
    from cdp_recorder.replay_node import replay

    _, rec_dir, _ = collected
    f = _finished(rec_dir)[0]
    rec = load_commands(f)
    # A long final hold: on a loaded machine the simulator runs below real time and the arm
    # arrives late (the safety filter waits for it), but it must arrive.
    q_end = replay(str(f), hold_s=6.0)
    assert np.max(np.abs(q_end - rec.q_end)) < 0.02, q_end - rec.q_end
    assert np.max(np.abs(rec.q_end - rec.q_start)) > 0.05  # the replayed episode did move the arm


def test_sigkill_mid_episode_keeps_earlier_episodes_and_marks_the_partial(collected):
    graph, rec_dir, _ = collected
    before = {f: read_episode(f) for f in _finished(rec_dir)}
    recorder = next(n for n in graph.nodes if n.spec.name == "recorder_node")
    own = not rclpy.ok()
    if own:
        rclpy.init()
    node = rclpy.create_node("kill_probe")
    pub = node.create_publisher(String, EPISODE_EVENT, 10)
    try:
        deadline = time.monotonic() + 10
        while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        pub.publish(String(data=encode_event("start", time.time(), task="reach_precise", operator="kill-test")))
        deadline = time.monotonic() + 10
        while not list(rec_dir.glob("*.mcap.partial")) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(2.5)  # past at least two fsync periods
        os.killpg(recorder.process.pid, signal.SIGKILL)
        recorder.process.wait(5)
    finally:
        node.destroy_node()
        if own:
            rclpy.shutdown()
    partials = list(rec_dir.glob("*.mcap.partial"))
    assert len(partials) == 1
    for f, ep in before.items():  # every earlier episode is intact: same messages, metadata, summary
        again = read_episode(f)
        assert {t: len(m.msgs) for t, m in again.topics.items()} == {t: len(m.msgs) for t, m in ep.topics.items()}
        assert again.metadata == ep.metadata
        with open(f, "rb") as fh:
            assert make_reader(fh).get_summary() is not None
    # what was fsync'd before the kill is readable from the partial with a streaming reader
    from mcap.stream_reader import StreamReader
    from mcap.records import Message

    n_msgs = 0
    with open(partials[0], "rb") as fh:
        try:
            for rec in StreamReader(fh, skip_magic=False).records:
                n_msgs += isinstance(rec, Message)
        except Exception:  # noqa: BLE001 - the unfinished tail
            pass
    assert n_msgs > 100
    # the next recorder start marks it (never deletes it) and reports it
    r = EpisodeRecorder(RecorderConfig(output_dir=str(rec_dir)), log=lambda s: None)
    assert [p.name for p in r.recovered] == [partials[0].name.replace(".mcap.partial", ".incomplete.mcap")]
    assert r.recovered[0].stat().st_size == partials[0].stat().st_size if partials[0].exists() else True
    assert not list(rec_dir.glob("*.mcap.partial")) and r.recovered[0].exists()
    assert len(_finished(rec_dir)) == len(before)


def test_a_recorded_episode_plots_commanded_against_measured(collected):
    from cdp_recorder.plot import episode_series, plot_episode

    _, rec_dir, _ = collected
    f = _finished(rec_dir)[0]
    s = episode_series(read_episode(f))
    assert len(s.measured_t) > 20 and len(s.commanded_t) > 20 and len(s.requested_t) > 5
    assert {name for _, name in s.events} >= {"start"}
    # the filter's commands end where the arm ends (it tracked them)
    assert np.max(np.abs(s.commanded_q[-1] - s.measured_q[-1])) < 0.05
    outputs = Path(__file__).resolve().parents[4] / "outputs"
    outputs.mkdir(exist_ok=True)
    shutil.copy(f, outputs / "recorded_episode.mcap")  # kept for a look after the run
    out = plot_episode(f, outputs / "recorded_episode.png")
    assert out.stat().st_size > 20_000
