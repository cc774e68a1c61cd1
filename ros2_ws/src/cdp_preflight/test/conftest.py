"""Fixtures: a small FR3 policy built with the project's own tools, and loopback addresses for robot servers."""

from __future__ import annotations

from pathlib import Path

import pytest

import sys

sys.path.insert(0, str(Path(__file__).resolve().parent))

from preflight_test_env import NOBODY_IP, REPO, SIM_IP, STUB_IP  # noqa: E402,F401


@pytest.fixture(scope="session")
def fr3_model(tmp_path_factory) -> Path:
    """A reach_precise policy (demos -> a few training steps -> ONNX export): the real contract, not a good policy."""
    import torch

    from cdp_core.config import config_from_dict
    from cdp_core.export import export_onnx
    from cdp_core.sim.demos import generate_demos
    from cdp_core.trainer import train

    root = tmp_path_factory.mktemp("preflight_model")
    generate_demos("reach_precise", root / "demos", 2, seed=0, progress=False)
    torch.manual_seed(0)
    cfg = config_from_dict(
        {
            "data": {"path": str(root / "demos"), "horizon": 8, "n_obs_steps": 2, "n_action_steps": 4},
            "model": {
                "denoiser": "mlp",
                "mlp_hidden": 32,
                "mlp_blocks": 1,
                "obs_feature_dim": 16,
                "time_embed_dim": 16,
            },
            "contraction": {"gamma": 0.0},
            "train": {
                "steps": 5,
                "batch_size": 16,
                "lr": 1e-3,
                "warmup_steps": 1,
                "log_every": 5,
                "checkpoint_every": 5,
                "progress": False,
                "device": "cpu",
            },
        }
    )
    run = train(cfg, root / "run")
    out = root / "reach.onnx"
    export_onnx(run["checkpoint"], out, sampler="ddim", steps=2)
    return out
