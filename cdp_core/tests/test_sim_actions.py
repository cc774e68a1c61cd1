"""Cartesian (ee_pose) actions: IK execution, datasets, model metadata and who refuses them."""

import json

import numpy as np
import pytest

pytest.importorskip("franky_sim")

from cdp_core.data import load_episodes  # noqa: E402
from cdp_core.runtime import ModelContractError  # noqa: E402
from cdp_core.sim import get_task  # noqa: E402
from cdp_core.sim.actions import ActionExecutor, ActionSpaceError, check_action_space, ee_pose_of  # noqa: E402
from cdp_core.sim.demos import generate_demos  # noqa: E402
from cdp_core.sim.env import HOME_Q, FR3TaskEnv  # noqa: E402
from cdp_core.sim.evaluate import check_model_fits_task, rollout  # noqa: E402
from cdp_core.sim.scripted import run_demonstration  # noqa: E402


@pytest.fixture(scope="module")
def ee_env():
    return FR3TaskEnv("peg_insert", action_space="ee_pose")


def test_ee_pose_actions_are_executed_through_ik(ee_env):
    """A TCP pose 3 cm away is reached: the IK targets place the TCP there and the arm follows."""
    ee_env.reset(0)
    goal = ee_pose_of(ee_env.q)
    goal[:3] += [0.03, -0.02, -0.03]
    ex = ActionExecutor("ee_pose")
    ex.reset(ee_env.q)
    q_goal = ex.joint_targets(goal)
    np.testing.assert_allclose(ee_pose_of(q_goal)[:3], goal[:3], atol=1e-4)
    for _ in range(15):
        ee_env.step(goal)
    pos, quat = ee_env.tip_pose()
    assert np.linalg.norm(pos - goal[:3]) < 2e-3
    assert abs(abs(float(quat @ goal[3:])) - 1.0) < 1e-4  # same orientation


def test_malformed_ee_actions_are_refused(ee_env):
    ee_env.reset(1)
    good = ee_pose_of(ee_env.q)
    with pytest.raises(ActionSpaceError, match="no valid orientation"):
        ee_env.step(np.concatenate([good[:3], np.zeros(4)]))
    with pytest.raises(ActionSpaceError, match="7 finite values"):
        ee_env.step(np.concatenate([good[:6], [np.nan]]))
    with pytest.raises(ActionSpaceError, match="known: joint_position, ee_pose"):
        check_action_space("cartesian_velocity")


def test_ee_dataset_holds_the_same_motions_as_the_joint_one(tmp_path, ee_env):
    """Same seed, two action spaces: identical observations, and each ee action is the FK of the joint one."""
    joint_env = FR3TaskEnv("peg_insert")
    ep_j, ok_j = run_demonstration(joint_env, 4)
    ep_e, ok_e = run_demonstration(ee_env, 4)
    assert ok_j and ok_e
    np.testing.assert_allclose(ep_e.obs["ee_pos"], ep_j.obs["ee_pos"], atol=5e-4)
    fk = np.stack([ee_pose_of(a) for a in ep_j.action])
    np.testing.assert_allclose(ep_e.action, fk, atol=1e-5)

    generate_demos("peg_insert", tmp_path, episodes=1, seed=4, progress=False, action_space="ee_pose")
    ds = load_episodes(tmp_path)
    assert ds.meta["action_space"] == "ee_pose" and ds.meta["action_names"][0] == "tcp_x"


def test_replayed_ee_demo_succeeds(ee_env):
    episode, ok = run_demonstration(ee_env, 6)
    assert ok
    plan = iter(np.concatenate([episode.action, np.repeat(episode.action[-1:], 200, 0)]))

    def replay(_obs):
        return np.stack([next(plan) for _ in range(4)])[None]

    result = rollout(ee_env, replay, ["joint_pos"], 2, 4, 0, seed=6)
    assert result["success"]


def test_joint_only_callers_refuse_ee_models():
    meta = {
        "obs_keys": ["joint_pos"],
        "obs_dims": {"joint_pos": 7},
        "action_dim": 7,
        "action_space": "ee_pose",
        "rate_hz": 10.0,
    }
    check_model_fits_task(meta, get_task("peg_insert"))  # the fast path executes it
    with pytest.raises(ModelContractError, match="action space is 'ee_pose'; this path executes joint_position"):
        check_model_fits_task(meta, get_task("peg_insert"), action_spaces=("joint_position",))


def test_home_is_a_fixed_point_of_both_spaces(ee_env):
    ex = ActionExecutor("ee_pose")
    ex.reset(HOME_Q)
    np.testing.assert_allclose(ex.joint_targets(ee_pose_of(HOME_Q)), HOME_Q, atol=1e-6)


def test_ee_model_exports_its_action_space_and_evaluates(tmp_path):
    """Train -> export -> fast-path evaluation of an ee_pose policy; dispersion is in joint space (rad)."""
    from cdp_core.config import config_from_dict
    from cdp_core.export import export_onnx
    from cdp_core.sim.evaluate import evaluate_model
    from cdp_core.trainer import train

    generate_demos("peg_insert", tmp_path / "demos", episodes=1, seed=0, progress=False, action_space="ee_pose")
    cfg = config_from_dict(
        {
            "data": {"path": str(tmp_path / "demos"), "horizon": 8, "n_obs_steps": 2, "n_action_steps": 4},
            "model": {
                "denoiser": "mlp",
                "mlp_hidden": 32,
                "mlp_blocks": 1,
                "obs_feature_dim": 16,
                "time_embed_dim": 16,
            },
            "train": {
                "steps": 5,
                "batch_size": 16,
                "warmup_steps": 1,
                "log_every": 5,
                "checkpoint_every": 5,
                "progress": False,
                "device": "cpu",
            },
        }
    )
    run = train(cfg, tmp_path / "run")
    meta = export_onnx(run["checkpoint"], tmp_path / "ee.onnx", sampler="ddim", steps=2)
    assert meta["action_space"] == "ee_pose" and meta["action_names"][-1] == "tcp_qw"
    summary = evaluate_model(
        str(tmp_path / "ee.onnx"), "peg_insert", [10_000], workers=1, dispersion_obs=1, dispersion_seeds=4
    )
    assert summary["action_space"] == "ee_pose" and summary["episodes"] == 1
    assert 0.0 < summary["dispersion_rad"] < 3.0  # joint-space spread of an untrained model: finite, not metres
    # the checkpoint itself, through the CLI: exported to a temporary graph, same episode, same result
    import subprocess
    import sys

    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "cdp_core.cli",
            "eval",
            "--checkpoint",
            str(run["checkpoint"]),
            "--sampler",
            "ddim",
            "--steps",
            "2",
            "--task",
            "peg_insert",
            "--episodes",
            "1",
            "--workers",
            "1",
            "--verbose",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    from_ckpt = json.loads(r.stdout)
    assert from_ckpt["model"] == str(run["checkpoint"]) and from_ckpt["steps"] == 2
    assert from_ckpt["rows"][0]["final_offset_mm"] == summary["rows"][0]["final_offset_mm"]
    r = subprocess.run(
        [sys.executable, "-m", "cdp_core.cli", "eval", "--task", "peg_insert"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode != 0 and "exactly one of --model" in r.stderr
