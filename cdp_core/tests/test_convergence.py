"""The convergence gate: measures what it claims (mm at the TCP) and refuses an under-trained model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cdp_core.cli import main
from cdp_core.config import GateConfig
from cdp_core.convergence import GateError, final_phase_windows, run_gate
from cdp_core.data.episodes import Episode

REPO = Path(__file__).resolve().parents[2]
BUNDLED_REACH = REPO / "models" / "reach_precise" / "cdp_reach.onnx"


def _tcp(actions: np.ndarray) -> np.ndarray:  # TCP-pose actions: the position is the first three values
    return np.asarray(actions, dtype=np.float64).reshape(-1, 7)[:, :3]


def _episode(rng: np.random.Generator, n: int = 40) -> Episode:
    """Moves 20 cm in 2 s, then holds: observations carry the commanded pose (so a sampler can copy it)."""
    goal = rng.uniform(-0.3, 0.3, 3)
    s = np.clip(np.arange(n) / 20, 0, 1)[:, None]
    pos = goal + (1 - s) * np.array([0.2, 0.0, 0.0])
    act = np.concatenate([pos, np.tile([0.0, 1.0, 0.0, 0.0], (n, 1))], axis=1).astype(np.float32)
    return Episode(obs={"cmd": act.copy()}, action=act)


def _sampler(noise_m: float):
    """A policy that repeats the newest observed command, plus noise_m (m) of noise per coordinate."""

    def sample(obs: np.ndarray, noise: np.ndarray, images=None) -> np.ndarray:
        out = np.repeat(obs[:, -1:, :], noise.shape[1], axis=1).astype(np.float64)
        out[..., :3] += noise_m * noise[..., :3]
        return out

    return sample


def _gate(sample, episodes, cfg=None):
    return run_gate(sample, episodes, ["cmd"], 2, 8, 7, 1, 4, _tcp, cfg or GateConfig(samples=16))


def test_final_phase_is_where_the_demo_ends():
    ep = _episode(np.random.default_rng(0))
    obs, act, frames = final_phase_windows([ep], ["cmd"], 2, 8, _tcp, radius_m=0.02, max_windows_per_episode=100)
    # the command is within 2 cm of the goal from step 18 on (1 cm per step): 22 windows
    assert len(obs) == 22 and frames is None
    assert np.allclose(obs[:, -1, :3], act[:, 1, :3])  # the current step's action belongs to the newest observation
    assert np.all(np.linalg.norm(act[:, 1, :3] - ep.action[-1, :3], axis=1) <= 0.02 + 1e-6)


def test_gate_measures_scatter_in_mm_and_decides():
    rng = np.random.default_rng(1)
    eps = [_episode(rng) for _ in range(4)]
    good = _gate(_sampler(0.0002), eps)
    assert good.passed and good.scatter_mm < 1.0 and good.action_error_mm < 1.0
    bad = _gate(_sampler(0.004), eps)  # 4 mm per coordinate: RMS 3D spread ~ 4 * sqrt(3 * 15/16) = 6.7 mm
    assert not bad.passed
    assert 5.5 < bad.scatter_mm < 8.0
    assert any("scatter" in r for r in bad.reasons) and "under-trained" in bad.summary().lower()


def test_gate_catches_a_biased_policy_whose_samples_agree():
    eps = [_episode(np.random.default_rng(2))]

    def biased(obs, noise, images=None):
        out = _sampler(0.0)(obs, noise)
        out[..., 2] += 0.006  # every sample 6 mm too high: no scatter, but it misses
        return out

    report = _gate(biased, eps)
    assert not report.passed and report.scatter_mm < 0.01 and 5.9 < report.action_error_mm < 6.1


def test_gate_refuses_bad_input():
    with pytest.raises(GateError, match="held-out"):
        _gate(_sampler(0.0), [])

    def nan_policy(obs, noise, images=None):
        return np.full(noise.shape, np.nan)

    with pytest.raises(GateError, match="non-finite"):
        _gate(nan_policy, [_episode(np.random.default_rng(3))])


@pytest.fixture(scope="module")
def reach_demos(tmp_path_factory):
    from cdp_core.sim.demos import generate_demos

    out = tmp_path_factory.mktemp("reach_demos")
    generate_demos("reach_precise", out, 3, seed=0, progress=False)
    return out


def test_cdp_train_refuses_an_under_trained_model(reach_demos, tmp_path, capsys):
    """A 30-step reach policy: `cdp train` warns loudly, exits 3 with gate.on_fail=fail, and the verdict
    travels with the checkpoint into the exported model's metadata."""
    run = tmp_path / "run"
    args = [
        "train",
        "--out",
        str(run),
        "--set",
        f"data.path={reach_demos}",
        "--set",
        "model.mlp_hidden=64",
        "--set",
        "model.mlp_blocks=1",
        "--set",
        "model.denoiser=mlp",
        "--set",
        "train.steps=30",
        "--set",
        "train.progress=false",
        "--set",
        "train.batch_size=32",
        "--set",
        "gate.auto_demos=2",
        "--set",
        "gate.on_fail=fail",
        "--set",
        "export.steps=4",
    ]
    assert main(args) == 3
    err = capsys.readouterr().err
    assert "WARNING: convergence gate FAILED" in err
    report = json.loads((run / "gate.json").read_text())
    assert report["passed"] is False and report["scatter_mm"] > report["max_scatter_mm"]
    assert (run / "gate_demos" / "meta.json").is_file()  # held-out demos were recorded, not the training ones

    model = tmp_path / "m.onnx"
    assert (
        main(["export", "--checkpoint", str(run / "checkpoints" / "latest.pt"), "--out", str(model), "--steps", "4"])
        == 0
    )
    meta = json.loads(model.with_suffix(".json").read_text())
    assert meta["convergence_gate"]["passed"] is False
    assert meta["task"] == "reach_precise"
    # the gate on the exported graph agrees with the one on the checkpoint (same held-out demos)
    assert main(["gate", "--model", str(model), "--workdir", str(run)]) == 3
    capsys.readouterr()

    # cdp compare: the same model twice on the same seeds agrees with itself episode by episode
    assert (
        main(
            [
                "compare",
                str(model),
                str(model),
                "--task",
                "reach_precise",
                "--episodes",
                "2",
                "--workers",
                "1",
                "--verbose",
            ]
        )
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert out["only_first_succeeded"] == out["only_second_succeeded"] == 0 and out["mcnemar_exact_p"] == 1.0
    assert out["models"][0]["successes"] == out["models"][1]["successes"] and len(out["models"][0]["successes"]) == 2


def test_bundled_reach_model_passes_the_gate(tmp_path):
    assert main(["gate", "--model", str(BUNDLED_REACH), "--task", "reach_precise", "--workdir", str(tmp_path)]) == 0


def test_gate_does_not_pretend_on_non_robot_actions(mlp_checkpoint, capsys):
    assert main(["gate", "--checkpoint", mlp_checkpoint]) == 2
    assert "not FR3 actions" in capsys.readouterr().err
