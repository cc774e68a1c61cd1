"""The contraction loss of Contractive Diffusion Policies, from Jacobian-vector products only.

Derivation for this package's convention (``t``: 0 = data, 1 = noise; VP schedule)
----------------------------------------------------------------------------------
The probability-flow ODE is ``dx/dt = F(x, t) = f(t) x + h(t) eps(x, t)`` with
``f = d log alpha/dt < 0`` and ``h = g^2 / (2 sigma) = -f / sigma > 0``. Sampling runs it
*backwards*: with ``s = 1 - t`` the sampler integrates ``dx/ds = G(x, t) = -F(x, t)``.
Two sampling trajectories ``x, y`` approach each other (Euclidean metric) when the
symmetric part of ``dG/dx`` is negative definite:

    lambda_max(sym dG/dx) = -f - h * lambda_min(sym J_eps) < 0
    <=>  lambda_min(sym J_eps) > -f/h = sigma_t.

So in *this* time direction the condition bounds the smallest eigenvalue of the
eps-Jacobian from below (the paper's ``lambda_max(sym J) < -f/h`` is the same statement
for a drift written in the sampling direction). We never special-case the sign: the
loss penalises the largest eigenvalue of the symmetrised Jacobian of the normalised
sampling drift

    G_hat(x, t) = G(x, t) / h(t) = sigma_t x - eps_theta(x, t),      contraction <=> lambda_max(sym dG_hat/dx) < 0,

which holds for either parameterisation (x0-prediction converts to eps first; the chain
rule does the rest). Dividing by ``h > 0`` keeps the sign and puts all noise levels on
one scale, as the paper's ``lambda + f/h`` does.

Estimating lambda_max cheaply
-----------------------------
``sym(J) v = (J v + J^T v) / 2`` costs a Jacobian-vector and a vector-Jacobian product
(both by reverse mode, see :class:`SymJacobian`). Power iteration finds the
eigenvalue of largest *magnitude*, which for a trained denoiser is usually the strongly
contracting (large negative) direction off the data manifold, not the algebraically
largest one we need; so the default estimator is Lanczos (Ritz values converge to both
ends of the spectrum), and the ``power`` estimator shifts by the dominant eigenvalue
when that is negative. Iterations run without a parameter graph; the estimate that is
back-propagated is the Rayleigh quotient ``u^T J u`` at the (detached) top Ritz vector
``u``, whose parameter gradient is exactly that of lambda_max at convergence
(Hellmann-Feynman), for the cost of one more VJP.
"""

from __future__ import annotations

from typing import Callable

import torch

from .config import ContractionConfig

DriftFn = Callable[[torch.Tensor], torch.Tensor]


def _unit(v: torch.Tensor) -> torch.Tensor:
    return v / v.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def _flat(fn: DriftFn, shape: torch.Size) -> DriftFn:
    """Wrap ``fn`` (on ``[B, *shape]``) as a map on flat ``[B, D]`` vectors."""
    return lambda z: fn(z.view(z.shape[0], *shape)).reshape(z.shape[0], -1)


class SymJacobian:
    """``v -> sym(J) v`` for the per-sample Jacobian ``J = d fn(x) / dx`` at ``x [B, D]``, by reverse mode only.

    ``J^T v`` is one VJP through a graph recorded once. ``J v`` is the double-backward
    trick: ``J^T u`` is linear in a dummy ``u``, so ``J v = d <J^T u, v> / du``. On CPU this
    is ~10x cheaper than forward-mode AD (``torch.func.jvp``), whose derivative formulas
    for LayerNorm/GroupNorm/Mish cost about eight forward passes each.

    Samples must be independent in ``fn`` (no batch norm), so the batched Jacobian is
    block diagonal and one product serves the whole batch.
    """

    def __init__(self, fn: DriftFn, x: torch.Tensor):
        with torch.enable_grad():
            self.x = x.detach().clone().requires_grad_(True)
            self.out = fn(self.x)
            self.u = torch.zeros_like(self.out, requires_grad=True)
            (self.jtu,) = torch.autograd.grad(self.out, self.x, self.u, create_graph=True)

    def jtv(self, v: torch.Tensor, create_graph: bool = False) -> torch.Tensor:
        return torch.autograd.grad(self.out, self.x, v, retain_graph=True, create_graph=create_graph)[0]

    def jv(self, v: torch.Tensor, create_graph: bool = False) -> torch.Tensor:
        return torch.autograd.grad(self.jtu, self.u, v, retain_graph=True, create_graph=create_graph)[0]

    def __call__(self, v: torch.Tensor) -> torch.Tensor:
        return 0.5 * (self.jv(v) + self.jtv(v))


@torch.no_grad()
def lanczos_top_eigvec(
    op: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    iterations: int,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Batched Lanczos with full re-orthogonalisation; returns (top Ritz value [B], unit Ritz vector [B, D])."""
    b, d = x.shape
    k = min(iterations, d)  # beyond D the Krylov space is exhausted
    q = _unit(torch.randn(b, d, dtype=x.dtype, device=x.device, generator=generator))
    basis, alphas, betas = [], [], []
    for j in range(k):
        w = op(q)
        a = (q * w).sum(-1)
        basis.append(q)
        alphas.append(a)
        if j == k - 1:
            break
        # Full re-orthogonalisation, twice ("twice is enough"): the residual is often 20x
        # smaller than op(q) (clustered spectra), and one float32 pass then lets the
        # lost orthogonality grow by that factor every iteration.
        for _ in range(2):
            for v in basis:
                w = w - (w * v).sum(-1, keepdim=True) * v
        beta = w.norm(dim=-1)
        # Breakdown: the Krylov space is invariant (the start vector lay in few eigenvectors).
        # Continue from a fresh random direction orthogonal to the basis with a zero coupling;
        # T stays V^T A V, so its Ritz values stay inside A's spectrum.
        broken = beta <= 1e-6 * w.new_tensor(1.0).maximum(a.abs())
        if broken.any():
            fresh = torch.randn(b, d, dtype=x.dtype, device=x.device, generator=generator)
            for _ in range(2):
                for v in basis:
                    fresh = fresh - (fresh * v).sum(-1, keepdim=True) * v
            w = torch.where(broken[:, None], _unit(fresh), w)
            beta = torch.where(broken, torch.zeros_like(beta), beta)
        betas.append(beta)
        q = torch.where(broken[:, None], w, w / beta.clamp_min(1e-30)[:, None])
    tri = torch.diag_embed(torch.stack(alphas, -1))
    if betas:
        off = torch.diag_embed(torch.stack(betas, -1), offset=1)
        tri = tri + off + off.transpose(-1, -2)
    if not torch.isfinite(tri).all():
        raise FloatingPointError(
            "non-finite Jacobian-vector product in the contraction estimate "
            "(the denoiser produced NaN/inf); lower the learning rate or gamma"
        )
    tri = tri.to(torch.float64)  # k x k: double precision is free and makes eigh robust
    evals, evecs = torch.linalg.eigh(tri)
    ritz = torch.einsum("bk,kbd->bd", evecs[:, :, -1].to(x.dtype), torch.stack(basis))
    return evals[:, -1].to(x.dtype), _unit(ritz)


@torch.no_grad()
def power_top_eigvec(
    op: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    iterations: int,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Shifted power iteration for the algebraically largest eigenvalue ([B], unit vector [B, D]).

    Phase 1 finds the dominant eigenvalue mu; where mu < 0, phase 2 iterates on
    ``A - mu I`` (spectrum shifted to >= 0, dominant = lambda_max - mu).
    """
    b, d = x.shape
    q = _unit(torch.randn(b, d, dtype=x.dtype, device=x.device, generator=generator))
    for _ in range(iterations):
        q = _unit(op(q))
    mu = (q * op(q)).sum(-1)
    shift = mu.clamp(max=0.0)[:, None]
    q = _unit(torch.randn(b, d, dtype=x.dtype, device=x.device, generator=generator))
    for _ in range(iterations):
        q = _unit(op(q) - shift * q)
    return (q * op(q)).sum(-1), q


def estimate_lambda_max(
    fn: DriftFn,
    x: torch.Tensor,
    iterations: int = 4,
    estimator: str = "lanczos",
    differentiable: bool = True,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """lambda_max of ``sym(d fn / dx)`` per sample, for ``x`` of any shape ``[B, ...]`` (action chunks).

    With ``differentiable=True`` the result carries gradients to the parameters ``fn``
    closes over (through one extra VJP at the detached top eigenvector).
    """
    z = x.detach().reshape(x.shape[0], -1)
    op = SymJacobian(_flat(fn, x.shape[1:]), z)
    if estimator == "lanczos":
        lam, u = lanczos_top_eigvec(op, z, iterations, generator)
    elif estimator == "power":
        lam, u = power_top_eigvec(op, z, iterations, generator)
    else:
        raise ValueError(f"unknown eigenvalue estimator {estimator!r} (known: lanczos, power)")
    if not differentiable:
        return lam
    # u^T sym(J) u = u . (J^T u): one more VJP, recorded for the parameter gradient.
    return (u * op.jtv(u, create_graph=True)).sum(-1)


def frobenius_penalty(
    fn: DriftFn, x: torch.Tensor, beta: float, probes: int = 1, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Hutchinson estimate of ``||sym J + beta I||_F^2 / D`` per sample (the authors' released form).

    Unbiased for ``E_v ||(sym J + beta I) v||^2 / D`` with ``v ~ N(0, I)``; divided by D so
    the weight means the same for a flat action and a 16-step chunk.
    """
    z = x.detach().reshape(x.shape[0], -1)
    op = SymJacobian(_flat(fn, x.shape[1:]), z)
    total = z.new_zeros(z.shape[0])
    for _ in range(probes):
        v = torch.randn(z.shape, dtype=z.dtype, device=z.device, generator=generator)
        sym_v = 0.5 * (op.jv(v, create_graph=True) + op.jtv(v, create_graph=True))
        total = total + ((sym_v + beta * v) ** 2).sum(-1)
    return total / (probes * z.shape[1])


def contraction_loss(fn: DriftFn, x: torch.Tensor, cfg: ContractionConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """The CDP penalty for one batch: (loss scalar, lambda_max estimate per sample, detached).

    ``hinge``: mean of ``relu(lambda_max + beta)``: zero once every sample's sampling flow
    contracts with margin ``beta`` (the paper's ``max(-beta, lambda)`` shifted by beta so a
    satisfied constraint reads 0 in TensorBoard). ``frobenius``: see :func:`frobenius_penalty`.
    """
    if cfg.form == "hinge":
        lam = estimate_lambda_max(fn, x, cfg.iterations, cfg.estimator, differentiable=True)
        return torch.relu(lam + cfg.beta).mean(), lam.detach()
    if cfg.form == "frobenius":
        loss = frobenius_penalty(fn, x, cfg.beta, cfg.probes).mean()
        lam = estimate_lambda_max(fn, x, cfg.iterations, cfg.estimator, differentiable=False)
        return loss, lam
    raise ValueError(f"unknown contraction form {cfg.form!r} (known: hinge, frobenius)")


def exact_sym_jacobian_eigvals(fn: DriftFn, x: torch.Tensor) -> torch.Tensor:
    """Reference: all eigenvalues of sym(J) per sample from the full autograd Jacobian ([B, D], ascending).

    O(B * D) backward passes: for tests and diagnostics on small problems only.
    """
    b = x.shape[0]
    d = x[0].numel()
    jac = torch.autograd.functional.jacobian(lambda z: fn(z), x.detach()).reshape(b, d, b, d)
    blocks = jac[torch.arange(b), :, torch.arange(b), :]  # per-sample diagonal blocks [B, D, D]
    return torch.linalg.eigvalsh(0.5 * (blocks + blocks.transpose(1, 2)))
