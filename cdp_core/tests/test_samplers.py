"""Fixed-step samplers: they integrate the same ODE, so with many steps they agree."""

import torch

from cdp_core.checkpoint import load_policy
from cdp_core.samplers import FixedStepSampler, time_grid


def test_samplers_converge_to_the_same_solution(mlp_checkpoint):
    policy, _ = load_policy(mlp_checkpoint)
    policy.cfg.diffusion.clip_sample = False  # compare the pure ODE integrators
    torch.manual_seed(0)
    obs, noise = torch.randn(4, 2, 4) * 0.5, torch.randn(4, 8, 2)
    with torch.no_grad():
        ref = FixedStepSampler(policy, "dpmpp_2m", 200)(obs, noise)
        scale = ref.abs().max()  # a briefly trained net: the ODE's solution is not in [-1, 1]

        def err(sampler, steps):
            return float((FixedStepSampler(policy, sampler, steps)(obs, noise) - ref).abs().max() / scale)

        for sampler in ("ddim", "heun", "euler"):
            assert err(sampler, 200) < err(sampler, 25), sampler  # converging
        assert err("ddim", 200) < 0.03 and err("heun", 200) < 0.03 and err("euler", 200) < 0.1
        # the second-order multistep solver is the accurate one at few steps
        assert err("dpmpp_2m", 10) < err("euler", 10)


def test_time_grid_and_evaluation_counts(mlp_checkpoint):
    policy, _ = load_policy(mlp_checkpoint)
    for sampler in ("euler", "heun", "ddim", "dpmpp_2m"):
        grid = time_grid(policy, sampler, 5)
        assert len(grid) == 6 and all(a > b for a, b in zip(grid, grid[1:]))
    assert time_grid(policy, "ddim", 5)[-1] == 0.0 and time_grid(policy, "euler", 5)[-1] == policy.t_min
    assert FixedStepSampler(policy, "heun", 5).network_evaluations == 9
