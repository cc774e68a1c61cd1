"""LeRobot v3 datasets both ways, checked against LeRobot's own reader and writer.

The unit tests run in the project's environment. The round-trip tests run LeRobot's
``LeRobotDataset`` (the ``lerobot-dataset`` package) in its own environment, ``.venv-lerobot``
(``scripts/setup_lerobot.sh``, which ``scripts/test.sh`` runs), through ``lerobot_client.py``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cdp_core.data.episodes import (
    DatasetError,
    Episode,
    EpisodeDataset,
    load_episodes,
    write_dataset_meta,
    write_episode,
)
from cdp_core.data.lerobot import LeRobotExport, export_lerobot, load_lerobot
from cdp_core.data.toy import generate_toy_dataset

REPO = Path(__file__).resolve().parents[2]
LEROBOT_PY = REPO / ".venv-lerobot" / "bin" / "python"
CLIENT = Path(__file__).with_name("lerobot_client.py")
needs_lerobot = pytest.mark.skipif(not LEROBOT_PY.exists(), reason="no .venv-lerobot: run scripts/setup_lerobot.sh")


def _dataset(tmp_path: Path, episodes: int = 3) -> EpisodeDataset:
    return load_episodes(generate_toy_dataset(tmp_path / "toy", episodes, seed=1))


def _client(*args: str) -> None:
    r = subprocess.run([str(LEROBOT_PY), str(CLIENT), *args], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]


# --- in the project's environment ------------------------------------------------------------


def test_export_then_load_returns_the_same_episodes_and_facts(tmp_path):
    ds = _dataset(tmp_path)
    root = export_lerobot(ds, tmp_path / "lr", LeRobotExport(fps=10, task="reach the goal"))
    back = load_lerobot(root)
    assert back.obs_dims == ds.obs_dims and back.action_dim == ds.action_dim
    assert len(back.episodes) == len(ds.episodes)
    for a, b in zip(ds.episodes, back.episodes, strict=True):
        for k in ds.obs_dims:
            np.testing.assert_array_equal(b.obs[k], a.obs[k].astype(np.float32))
        np.testing.assert_array_equal(b.action, a.action.astype(np.float32))
        np.testing.assert_allclose(b.timestamp, np.arange(len(a)) / 10.0, atol=1e-6)
    # what a deployment checks survives (LeRobot has no field for it)
    assert back.meta["task"] == ds.meta["task"] and back.meta["rate_hz"] == 10.0
    assert back.meta["tasks"] == ["reach the goal"] and back.meta["action_names"] == ds.meta["action_names"]
    # and the trainer's loader reads it by format name
    assert len(load_episodes(root, "lerobot").episodes) == len(ds.episodes)


def test_stats_are_those_of_the_exported_values(tmp_path):
    ds = _dataset(tmp_path)
    root = export_lerobot(ds, tmp_path / "lr", LeRobotExport(fps=10, task="t"))
    stats = json.loads((root / "meta" / "stats.json").read_text())
    actions = np.concatenate([e.action for e in ds.episodes]).astype(np.float32).astype(np.float64)
    np.testing.assert_allclose(stats["action"]["mean"], actions.mean(0), rtol=1e-6)
    np.testing.assert_allclose(stats["action"]["std"], actions.std(0), rtol=1e-6)
    np.testing.assert_allclose(stats["action"]["q50"], np.quantile(actions, 0.5, axis=0), rtol=1e-6)
    assert stats["action"]["count"] == [len(actions)]
    info = json.loads((root / "meta" / "info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["total_frames"] == len(actions)
    assert info["features"]["action"]["shape"] == [ds.action_dim]


def test_a_recording_off_the_frame_grid_is_refused_not_retimed(tmp_path):
    ds = _dataset(tmp_path)
    ep = ds.episodes[0]
    ep.timestamp = np.arange(len(ep)) * 0.1
    ep.timestamp[5:] += 0.3  # three frames dropped
    with pytest.raises(DatasetError, match="not on a 10"):
        export_lerobot(ds, tmp_path / "lr", LeRobotExport(fps=10, task="t"))
    assert not (tmp_path / "lr").exists()


def test_an_existing_folder_is_not_overwritten_unless_asked(tmp_path):
    ds = _dataset(tmp_path)
    (tmp_path / "lr").mkdir()
    (tmp_path / "lr" / "mine.txt").write_text("keep")
    with pytest.raises(DatasetError, match="exists"):
        export_lerobot(ds, tmp_path / "lr", LeRobotExport(fps=10, task="t"))
    assert (tmp_path / "lr" / "mine.txt").read_text() == "keep"
    export_lerobot(ds, tmp_path / "lr", LeRobotExport(fps=10, task="t"), overwrite=True)
    assert not (tmp_path / "lr" / "mine.txt").exists()


def test_bad_lerobot_folders_get_errors_that_name_the_problem(tmp_path):
    ds = _dataset(tmp_path)
    root = export_lerobot(ds, tmp_path / "lr", LeRobotExport(fps=10, task="t"))
    with pytest.raises(DatasetError, match="no meta/info.json"):
        load_lerobot(tmp_path)
    info_path = root / "meta" / "info.json"
    info = json.loads(info_path.read_text())
    info_path.write_text(json.dumps({**info, "codebase_version": "v2.1"}))
    with pytest.raises(DatasetError, match="only v3.x"):
        load_lerobot(root)
    info_path.write_text(json.dumps({**info, "features": {k: v for k, v in info["features"].items() if k != "action"}}))
    with pytest.raises(DatasetError, match="no 'action' feature"):
        load_lerobot(root)
    info_path.write_text(json.dumps(info))
    data = next((root / "data").glob("*/*.parquet"))
    data.write_bytes(data.read_bytes()[:100])
    with pytest.raises(DatasetError, match="unreadable data file"):
        load_lerobot(root)


def test_camera_features_are_named_as_left_out(tmp_path):
    ds = _dataset(tmp_path)
    root = export_lerobot(ds, tmp_path / "lr", LeRobotExport(fps=10, task="t"))
    info_path = root / "meta" / "info.json"
    info = json.loads(info_path.read_text())
    info["features"]["observation.images.agentview"] = {"dtype": "video", "shape": [96, 96, 3], "names": None}
    info_path.write_text(json.dumps(info))
    assert load_lerobot(root).meta["skipped_features"] == ["observation.images.agentview"]


def test_cli_exports_a_dataset_with_its_own_rate_and_task(tmp_path):
    src = tmp_path / "eps"
    write_dataset_meta(src, {"joint_pos": 7}, 7, rate_hz=10.0, task="reach_precise", action_space="joint_position")
    rng = np.random.default_rng(0)
    for i in range(2):
        write_episode(src, i, Episode(obs={"joint_pos": rng.normal(size=(12, 7))}, action=rng.normal(size=(12, 7))))
    out = tmp_path / "lr"
    r = subprocess.run(
        [sys.executable, "-m", "cdp_core.cli", "dataset", "export", str(src), "--out", str(out)],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    back = load_lerobot(out)
    assert back.meta["tasks"] == ["reach_precise"] and back.meta["action_space"] == "joint_position"
    assert back.obs_dims == {"joint_pos": 7}


# --- against LeRobot's own LeRobotDataset ----------------------------------------------------


@needs_lerobot
def test_lerobot_reads_an_exported_dataset_with_identical_values(tmp_path):
    ds = _dataset(tmp_path, episodes=4)
    root = export_lerobot(ds, tmp_path / "lr", LeRobotExport(fps=10, task="reach the goal"))
    _client("read", str(root), str(tmp_path / "read.npz"))
    got = np.load(tmp_path / "read.npz")
    summary = json.loads((tmp_path / "read.json").read_text())
    assert summary["num_episodes"] == 4 and summary["fps"] == 10 and summary["tasks"] == ["reach the goal"]
    assert summary["num_frames"] == ds.num_steps
    for k in ds.obs_dims:
        np.testing.assert_array_equal(
            got[f"observation.{k}"], np.concatenate([e.obs[k] for e in ds.episodes]).astype(np.float32)
        )
    np.testing.assert_array_equal(got["action"], np.concatenate([e.action for e in ds.episodes]).astype(np.float32))
    np.testing.assert_array_equal(
        got["episode_index"], np.concatenate([np.full(len(e), i) for i, e in enumerate(ds.episodes)])
    )
    np.testing.assert_array_equal(got["frame_index"], np.concatenate([np.arange(len(e)) for e in ds.episodes]))
    # LeRobot's delta_timestamps address the same future actions as the frames' indices
    np.testing.assert_array_equal(got["action_chunk_0"], ds.episodes[0].action[:4].astype(np.float32))
    assert not got["action_chunk_0_pad"].any()
    assert "action" in summary["stats_keys"]


@needs_lerobot
def test_a_dataset_written_by_lerobot_trains_a_policy_that_runs(tmp_path):
    import onnxruntime as ort

    from cdp_core.testing import train_small_policy

    spec = {"seed": 0, "state_dim": 3, "action_dim": 3, "fps": 10, "episodes": 4, "length": 24, "task": "go home"}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    root = tmp_path / "made"
    _client("write", str(root), str(tmp_path / "spec.json"))
    ds = load_lerobot(root)
    assert len(ds.episodes) == 4 and ds.obs_dims == {"state": 3} and ds.meta["tasks"] == ["go home"]
    assert ds.meta["rate_hz"] == 10.0
    onnx_path = train_small_policy(root, tmp_path / "train", steps=10, data_format="lerobot")
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    feeds = {}
    for inp in sess.get_inputs():
        shape = [d if isinstance(d, int) else 1 for d in inp.shape]
        feeds[inp.name] = np.zeros(shape, dtype=np.float32)
    actions = sess.run(None, feeds)[0]
    assert actions.shape[-1] == 3 and np.isfinite(actions).all()


# --- camera frames as video --------------------------------------------------------------------


def _image_dataset(tmp_path: Path, episodes: int = 3, n: int = 12, size: int = 32) -> EpisodeDataset:
    """Episodes with a camera whose frames show a square moving over a gradient (video-friendly, not flat)."""
    rng = np.random.default_rng(4)
    root = tmp_path / "img_eps"
    write_dataset_meta(root, {"joint_pos": 7}, 7, rate_hz=10.0, task="t", cameras={"agentview": [size, size]})
    yy, xx = np.mgrid[0:size, 0:size]
    for i in range(episodes):
        frames = np.empty((n, size, size, 3), np.uint8)
        for t in range(n):
            f = np.stack([xx * 255 // size, yy * 255 // size, np.full_like(xx, 40 * i)], axis=-1)
            c = 4 + (t + 3 * i) % (size - 12)
            f[c : c + 8, c : c + 8] = [250, 250, 250]
            frames[t] = f
        write_episode(
            root,
            i,
            Episode(
                obs={"joint_pos": rng.normal(size=(n, 7))},
                action=rng.normal(size=(n, 7)),
                images={"agentview": frames},
            ),
        )
    return load_episodes(root)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / max(mse, 1e-12)))


def test_camera_frames_export_as_video_and_load_back(tmp_path):
    ds = _image_dataset(tmp_path)
    root = export_lerobot(ds, tmp_path / "lr", LeRobotExport(fps=10, task="t"))
    info = json.loads((root / "meta" / "info.json").read_text())
    ft = info["features"]["observation.images.agentview"]
    assert ft["dtype"] == "video" and ft["shape"] == [32, 32, 3] and ft["info"]["video.codec"] == "h264"
    assert (root / "videos" / "observation.images.agentview" / "chunk-000" / "file-000.mp4").is_file()
    stats = json.loads((root / "meta" / "stats.json").read_text())["observation.images.agentview"]
    assert np.asarray(stats["mean"]).shape == (3, 1, 1)
    back = load_lerobot(root)
    assert back.image_shapes == {"agentview": (32, 32)} and back.meta["skipped_features"] == []
    for a, b in zip(ds.episodes, back.episodes, strict=True):
        got, want = b.images["agentview"], a.images["agentview"]
        assert got.shape == want.shape and got.dtype == np.uint8
        assert _psnr(got, want) > 30.0  # lossy (H.264, 4:2:0 chroma), but the same pictures
        np.testing.assert_array_equal(b.obs["joint_pos"], a.obs["joint_pos"].astype(np.float32))
    # Frames of one episode are not those of its neighbour (the spans line up).
    e0, e1 = back.episodes[0].images["agentview"], back.episodes[1].images["agentview"]
    assert np.abs(e0.astype(int) - e1.astype(int)).mean() > 5
    video = root / "videos" / "observation.images.agentview" / "chunk-000" / "file-000.mp4"
    video.write_bytes(video.read_bytes()[:200])
    with pytest.raises(DatasetError, match="file-000.mp4"):
        load_lerobot(root)


def test_an_odd_frame_size_is_refused_before_anything_is_written(tmp_path):
    ds = _image_dataset(tmp_path, size=33)
    with pytest.raises(DatasetError, match="camera agentview: frame size 33x33 must be even"):
        export_lerobot(ds, tmp_path / "lr", LeRobotExport(fps=10, task="t"))
    assert not (tmp_path / "lr").exists()


@needs_lerobot
def test_lerobot_decodes_exported_camera_video_to_the_same_frames(tmp_path):
    ds = _image_dataset(tmp_path, episodes=2)
    root = export_lerobot(ds, tmp_path / "lr", LeRobotExport(fps=10, task="t"))
    _client("read", str(root), str(tmp_path / "read.npz"))
    got = np.load(tmp_path / "read.npz")["observation.images.agentview"]  # [N, 3, H, W] float in [0, 1]
    want = np.concatenate([e.images["agentview"] for e in ds.episodes])
    assert got.shape == (len(want), 3, 32, 32)
    assert _psnr(np.round(got.transpose(0, 2, 3, 1) * 255), want) > 30.0
