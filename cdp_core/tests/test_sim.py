"""Simulated FR3 tasks: scene sanity, seeded reproducibility, and refusal of bad input."""

import json

import numpy as np
import pytest

pytest.importorskip("franky_sim")

from cdp_core.data import load_episodes  # noqa: E402
from cdp_core.runtime import ModelContractError  # noqa: E402
from cdp_core.sim import UnknownTaskError, get_task  # noqa: E402
from cdp_core.sim.demos import generate_demos  # noqa: E402
from cdp_core.sim.env import HOME_Q, FR3TaskEnv  # noqa: E402
from cdp_core.sim.evaluate import check_model_fits_task, rollout  # noqa: E402
from cdp_core.sim.scripted import run_demonstration  # noqa: E402


@pytest.fixture(scope="module")
def reach_env():
    return FR3TaskEnv("reach_precise")


@pytest.fixture(scope="module")
def peg_env():
    return FR3TaskEnv("peg_insert")


@pytest.mark.parametrize("env_name", ["reach_env", "peg_env"])
def test_scripted_demonstrator_succeeds_on_randomised_episodes(env_name, request):
    env = request.getfixturevalue(env_name)
    results = [run_demonstration(env, seed)[1] for seed in range(20)]
    assert sum(results) >= 19, results  # >= 95 %


@pytest.mark.parametrize("env_name", ["reach_env", "peg_env"])
def test_do_nothing_policy_never_succeeds(env_name, request):
    env = request.getfixturevalue(env_name)
    for seed in range(2):
        env.reset(seed)
        info = {"done": False}
        while not info["done"]:
            _, info = env.step(HOME_Q)
        assert not info["success"] and env.time >= env.spec.time_limit_s - 1e-6


@pytest.mark.parametrize("offset_mm, inserted", [(0.0, True), (4.0, False)])
def test_peg_hole_clearance_is_physical(peg_env, offset_mm, inserted):
    """A centred slow push goes in; 4 mm off (clearance is 1.5 mm a side) the rim stops the peg."""
    from cdp_core.robot.kinematics import tcp_pose
    from cdp_core.robot.rotations import rot_z
    from cdp_core.sim.actions import solve_ik

    env = peg_env
    env.reset(5)
    p = env.params
    rot = rot_z(p["yaw"]) @ tcp_pose(env.q)[1]
    shift = np.array([np.cos(p["yaw"]), np.sin(p["yaw"]), 0.0]) * offset_mm / 1000
    q = env.q
    for z in [*np.linspace(0.03, 0.012, 10), *np.linspace(0.012, -0.035, 20), -0.035, -0.035]:
        q = solve_ik(q, p["hole_pos"] + shift + np.array([0, 0, z]) - env.task.tip_offset * rot[:, 2], rot)
        _, info = env.step(q)
    depth_mm = 1000 * (p["hole_pos"][2] - env.tip_position()[2])
    assert info["success"] == inserted
    assert (depth_mm > 30) if inserted else (depth_mm < 2)


def test_episodes_are_seeded(reach_env):
    a = reach_env.reset(7)
    first = reach_env.step(a["joint_pos"] + 0.05)[0]
    b = reach_env.reset(7)
    second = reach_env.step(b["joint_pos"] + 0.05)[0]
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
        np.testing.assert_allclose(first[k], second[k], atol=1e-12)
    assert not np.allclose(reach_env.reset(8)["target_pos"], a["target_pos"])


def test_demos_dataset_holds_what_the_env_observed(tmp_path, reach_env):
    summary = generate_demos("reach_precise", tmp_path, episodes=2, seed=3, progress=False)
    ds = load_episodes(tmp_path)
    assert summary["episodes"] == 2 and ds.meta["task"] == "reach_precise" and ds.meta["rate_hz"] == 10.0
    episode, _ = run_demonstration(reach_env, 3)  # the first attempt uses seed 3 and succeeds
    for k, v in episode.obs.items():
        np.testing.assert_allclose(ds.episodes[0].obs[k], v, atol=1e-6)
    np.testing.assert_allclose(ds.episodes[0].action, episode.action, atol=1e-6)


def test_demo_style_sets_the_strategy_and_the_misses(reach_env):
    from cdp_core.sim.scripted import DemoStyle

    above = DemoStyle(strategies=("from_above",), miss_prob=0.0, transit_noise=0.0)
    for seed in (5, 6):
        episode, success = run_demonstration(reach_env, seed, style=above)
        target = episode.obs["target_pos"][0]
        # every demonstration passes (8-12 cm) above the target before going down to it
        over = episode.obs["ee_pos"][:, 2] - target[2]
        near_xy = np.linalg.norm(episode.obs["ee_pos"][:, :2] - target[:2], axis=1) < 0.02
        assert success and np.any(near_xy & (over > 0.07))
    # the default style is the multimodal benchmark and draws the same random numbers as the demonstrator
    # before styles existed: seed 7's actions sum to what that code recorded (datasets stay reproducible)
    a, _ = run_demonstration(reach_env, 7, style=DemoStyle())
    assert float(a.action.sum()) == pytest.approx(36.47587966918945, abs=1e-3)
    with pytest.raises(ValueError, match="strategies"):
        DemoStyle(strategies=("sideways",))


def test_rollout_replays_a_policy_and_measures_success(reach_env):
    episode, _ = run_demonstration(reach_env, 11)
    plan = iter(np.concatenate([episode.action, np.repeat(episode.action[-1:], 100, 0)]))

    def replay(_obs):
        return np.stack([next(plan) for _ in range(4)])[None]

    result = rollout(reach_env, replay, ["joint_pos"], 2, 4, 0, seed=11)
    assert result["success"] and result["final_error_mm"] < 5.0


def test_unknown_task_and_mismatched_model_are_refused():
    with pytest.raises(UnknownTaskError, match="known tasks: peg_insert, place_precise, reach_precise"):
        get_task("peg")
    toy_meta = json.loads(
        (__import__("pathlib").Path(__file__).resolve().parents[2] / "models" / "default" / "toy_cdp.json").read_text()
    )
    with pytest.raises(ModelContractError, match=r"agent_pos.*action_dim 2"):
        check_model_fits_task(toy_meta, get_task("reach_precise"))


def test_tiny_grid_runs_resumes_and_reports(tmp_path):
    from cdp_core.sim.grid import GridConfig, run_grid

    cfg = GridConfig(
        task="reach_precise",
        demos=[2],
        seeds=[0],
        steps=[1, 2],
        gammas=[0.0, 0.1],
        episodes=2,
        workers=1,
        train_overrides=[
            "data.horizon=8",
            "data.n_action_steps=4",
            "model.denoiser=mlp",
            "model.mlp_hidden=32",
            "train.steps=10",
            "train.progress=false",
            "contraction.every=1",
            "gate.auto_demos=1",
        ],
    )
    report = run_grid(cfg, tmp_path / "work", tmp_path / "report", progress=False)
    results = json.loads((tmp_path / "report" / "results.json").read_text())
    assert len(results["cells"]) == 4 and (tmp_path / "report" / "grid.png").exists()
    text = report.read_text()
    assert "| CDP 0.1 | 2 | 2 |" in text
    # paired outcomes per episode seed, and the McNemar row that uses them
    cell = results["cells"]["gamma=0.1/demos=2/seed=0/steps=2"]
    assert len(cell["successes"]) == 2 and "| CDP 0.1 | 2 | 2 | 2 |" in text
    assert cell["gate"] is not None and "scatter_mm" in cell["gate"] and "Convergence gate per training run" in text
    # a killed grid continues: drop one cell, re-run, only that cell is evaluated again
    ckpt = tmp_path / "work" / "runs" / "gamma0.1_demos2_seed0" / "checkpoints" / "latest.pt"
    mtime = ckpt.stat().st_mtime
    del results["cells"]["gamma=0.1/demos=2/seed=0/steps=2"]
    (tmp_path / "report" / "results.json").write_text(json.dumps(results))
    run_grid(cfg, tmp_path / "work", tmp_path / "report", progress=False)
    again = json.loads((tmp_path / "report" / "results.json").read_text())
    assert len(again["cells"]) == 4 and ckpt.stat().st_mtime == mtime
    assert again["cells"]["gamma=0/demos=2/seed=0/steps=1"] == results["cells"]["gamma=0/demos=2/seed=0/steps=1"]

    # a video of a chosen episode, rendered offscreen through the CLI (which selects OSMesa)
    import subprocess
    import sys

    from PIL import Image

    model = next((tmp_path / "work" / "models").glob("*.onnx"))
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "cdp_core.cli",
            "eval",
            "--model",
            str(model),
            "--task",
            "reach_precise",
            "--episodes",
            "1",
            "--workers",
            "1",
            "--video",
            str(tmp_path / "video"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    gif = next((tmp_path / "video").glob("*.gif"))
    assert Image.open(gif).n_frames >= 10


def test_paired_test_pairs_episodes_by_training_and_episode_seed():
    from cdp_core.sim.grid import _cell_key, paired_test

    def cell(gamma, seed, successes):
        return {"gamma": gamma, "demos": 10, "seed": seed, "steps": 8, "successes": successes}

    cells = {
        _cell_key(0.0, 10, 0, 8): cell(0.0, 0, [True, False, False, False]),
        _cell_key(0.1, 10, 0, 8): cell(0.1, 0, [True, True, True, False]),
        _cell_key(0.0, 10, 1, 8): cell(0.0, 1, [False] * 4),
        _cell_key(0.1, 10, 1, 8): cell(0.1, 1, [True] * 4),
    }
    t = paired_test(cells, 0.1, 10, 8)
    assert (t["b"], t["c"], t["pairs"]) == (6, 0, 8) and t["diff"] == 6 / 8
    assert t["p"] == __import__("pytest").approx(2 * 0.5**6)  # exact two-sided binomial
    assert paired_test(cells, 0.1, 25, 8) is None
