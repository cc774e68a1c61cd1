"""The eigenvalue estimate against the exact symmetrised Jacobian, and the loss plumbing."""

import pytest
import torch

from cdp_core.config import ContractionConfig, config_from_dict
from cdp_core.contraction import contraction_loss, estimate_lambda_max, exact_sym_jacobian_eigvals, frobenius_penalty
from cdp_core.policy import DiffusionPolicy, PolicyShape


def _drift(denoiser: str, seed: int = 0):
    torch.manual_seed(seed)
    cfg = config_from_dict(
        {
            "data": {"horizon": 8, "n_action_steps": 4},
            "model": {"denoiser": denoiser, "unet_dims": [16, 32], "mlp_hidden": 64},
        }
    )
    policy = DiffusionPolicy(cfg, PolicyShape(obs_dim=5, action_dim=3, n_obs_steps=2, horizon=8, n_action_steps=4))
    x = torch.randn(4, 8, 3)  # chunked actions: D = 24
    t = torch.tensor([0.05, 0.3, 0.6, 0.9])
    cond = policy.encode_obs(torch.randn(4, 2, 5)).detach()
    return policy, (lambda z: policy.normalized_sampling_drift(z, t, cond)), x


@pytest.mark.parametrize("denoiser", ["mlp", "unet"])
def test_lanczos_matches_exact_eigenvalues(denoiser):
    _, fn, x = _drift(denoiser)
    exact = exact_sym_jacobian_eigvals(fn, x)
    lam = estimate_lambda_max(fn, x, iterations=12, estimator="lanczos", differentiable=True)
    spread = exact[:, -1] - exact[:, 0]
    # within 3 % of the spectrum's width (relative error on lambda itself is meaningless near 0)
    assert torch.all((lam.detach() - exact[:, -1]).abs() <= 0.03 * spread + 1e-4), (lam, exact[:, -1])


def test_power_estimator_finds_algebraic_max_not_dominant_magnitude():
    # A spectrum whose largest-magnitude eigenvalue is negative: plain power iteration would
    # return -5; the shifted iteration must return the algebraic maximum 1.
    diag = torch.tensor([-5.0, -3.0, 0.2, 1.0])
    fn = lambda z: z * diag  # noqa: E731 - per-sample linear map, Jacobian diag
    x = torch.randn(3, 4)
    lam = estimate_lambda_max(fn, x, iterations=40, estimator="power", differentiable=False)
    assert torch.allclose(lam, torch.ones(3), atol=0.05)
    lam_l = estimate_lambda_max(fn, x, iterations=4, estimator="lanczos", differentiable=False)
    assert torch.allclose(lam_l, torch.ones(3), atol=1e-4)


def test_rayleigh_quotient_carries_parameter_gradient():
    policy, fn, x = _drift("mlp")
    lam = estimate_lambda_max(fn, x, iterations=6)
    lam.sum().backward()
    grads = [p.grad for p in policy.denoiser.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert sum(g.abs().sum() for g in grads) > 0


def test_frobenius_penalty_estimates_exact_norm():
    _, fn, x = _drift("mlp", seed=1)
    exact = exact_sym_jacobian_eigvals(fn, x)
    beta = 0.1
    want = ((exact + beta) ** 2).sum(-1) / exact.shape[1]
    torch.manual_seed(0)
    got = frobenius_penalty(fn, x, beta, probes=400).detach()
    assert torch.allclose(got, want, rtol=0.15), (got, want)


def test_hinge_is_zero_when_contracting():
    fn = lambda z: -2.0 * z  # noqa: E731 - strongly contracting: lambda_max = -2
    loss, lam = contraction_loss(fn, torch.randn(5, 4, 2, requires_grad=False), ContractionConfig(gamma=0.1, beta=0.1))
    assert float(loss) == 0.0 and torch.allclose(lam, torch.full((5,), -2.0), atol=1e-4)
