"""The point of CDP, on the 2-D multimodal toy task: contraction below threshold, smaller action spread.

DP and CDP share data, architecture, seed and steps; only gamma differs. These are
statistical claims on a small problem; the sizes were chosen so that both hold with a wide
margin (see the numbers in the issue note), and either can fail if the loss stops working.
"""

import numpy as np
import torch

from cdp_core.checkpoint import load_policy
from cdp_core.config import config_from_dict
from cdp_core.data.toy import generate_toy_dataset, toy_start_observations
from cdp_core.evaluate import action_dispersion, lambda_max_profile
from cdp_core.samplers import FixedStepSampler
from cdp_core.trainer import build_policy_from_data, train

TIMES = [0.3, 0.5, 0.7, 0.9]


def _train(data, out, gamma):
    torch.manual_seed(0)
    cfg = config_from_dict(
        {
            "data": {"path": str(data), "horizon": 8, "n_action_steps": 4},
            "model": {"denoiser": "mlp", "mlp_hidden": 128},
            "contraction": {"gamma": gamma, "samples": 16, "every": 1},
            "train": {
                "steps": 700,
                "batch_size": 64,
                "lr": 1e-3,
                "warmup_steps": 50,
                "log_every": 50,
                "checkpoint_every": 10_000,
                "progress": False,
            },
        }
    )
    run = train(cfg, out)
    policy, _ = load_policy(run["checkpoint"])
    _, windows, _ = build_policy_from_data(cfg)
    idx = torch.linspace(0, len(windows) - 1, 32).long()
    prof = lambda_max_profile(policy, windows.obs[idx], windows.action[idx], TIMES, iterations=12)
    sampler = FixedStepSampler(policy, "ddim", 10)

    def sample(o, n):
        with torch.no_grad():
            return sampler(torch.from_numpy(o), torch.from_numpy(n)).numpy()

    disp = action_dispersion(sample, toy_start_observations(8, 2), (8, 2), seeds=32)
    return prof.mean(1), disp


def test_cdp_contracts_and_reduces_action_spread(tmp_path):
    data = generate_toy_dataset(tmp_path / "toy", episodes=20, seed=0)
    lam_dp, disp_dp = _train(data, tmp_path / "dp", 0.0)
    lam_cdp, disp_cdp = _train(data, tmp_path / "cdp", 1.0)
    print("lambda_max DP", np.round(lam_dp, 3), "CDP", np.round(lam_cdp, 3))
    print("dispersion DP", disp_dp, "CDP", disp_cdp)
    assert lam_dp.max() > 0.0, "DP should expand somewhere on this multimodal task"
    assert lam_cdp.max() < 0.0, "CDP should contract at every measured noise level"
    assert disp_cdp["chunk_std"] < 0.8 * disp_dp["chunk_std"]
