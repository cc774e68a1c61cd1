"""The diffusion policy: normalisers + observation encoder + denoiser + VP diffusion.

Everything the network sees is normalised (actions in [-1, 1], observations standardised);
callers pass and receive raw units. The contraction term is computed on the normalised
sampling drift (see :mod:`cdp_core.contraction`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .config import Config
from .contraction import contraction_loss
from .models import ConditionalUnet1D, ImageObsEncoder, ResidualMLPDenoiser, build_obs_encoder
from .normalizer import GaussianNormalizer, RangeNormalizer
from .schedule import make_schedule


@dataclass(frozen=True)
class PolicyShape:
    """The tensor contract of a policy (also written into exported model metadata)."""

    obs_dim: int
    action_dim: int
    n_obs_steps: int
    horizon: int
    n_action_steps: int
    #: Image policies: the cameras seen, in ``images``' camera order, and their frame size (H, W).
    cameras: tuple[str, ...] = ()
    image_size: tuple[int, int] = (0, 0)

    def __post_init__(self) -> None:  # checkpoints store lists (JSON-like); the contract is tuples
        object.__setattr__(self, "cameras", tuple(self.cameras))
        object.__setattr__(self, "image_size", tuple(int(v) for v in self.image_size))


class DiffusionPolicy(nn.Module):
    """A (contractive) diffusion policy over action chunks ``[B, horizon, action_dim]``."""

    def __init__(self, cfg: Config, shape: PolicyShape):
        super().__init__()
        self.cfg, self.shape = cfg, shape
        self.schedule = make_schedule(cfg.diffusion)
        self.prediction = cfg.diffusion.prediction
        self.t_min = cfg.diffusion.t_min
        self.obs_normalizer = GaussianNormalizer(shape.obs_dim)
        self.action_normalizer = RangeNormalizer(shape.action_dim)
        self.relative = cfg.data.action_representation == "relative"
        if self.relative:
            # Per action dimension: the index into one observation step it is relative to (-1: absolute).
            self.register_buffer("action_ref_index", torch.full((shape.action_dim,), -1, dtype=torch.long))
        self.obs_encoder = build_obs_encoder(cfg.model, shape.n_obs_steps, shape.obs_dim)
        m = cfg.model
        cond_dim = self.obs_encoder.out_dim
        self.image_encoder: ImageObsEncoder | None = None
        if shape.cameras:
            self.image_encoder = ImageObsEncoder(
                list(shape.cameras), shape.image_size, m.image_encoder, m.image_feature_dim, m.image_crop
            )
            cond_dim += self.image_encoder.out_dim(shape.n_obs_steps)
        if m.denoiser == "unet":
            self.denoiser: nn.Module = ConditionalUnet1D(
                shape.horizon,
                shape.action_dim,
                cond_dim,
                m.unet_dims,
                m.unet_kernel_size,
                m.unet_groups,
                m.time_embed_dim,
            )
        elif m.denoiser == "mlp":
            self.denoiser = ResidualMLPDenoiser(
                shape.horizon, shape.action_dim, cond_dim, m.mlp_hidden, m.mlp_blocks, m.time_embed_dim
            )
        else:
            raise ValueError(f"unknown denoiser {m.denoiser!r} (known: unet, mlp)")

    # --- action representation --------------------------------------------------------
    def set_action_reference(self, index: list[int]) -> None:
        """Relative representation: action dimension ``i`` is relative to observation entry ``index[i]`` (-1: absolute)."""
        if not self.relative:
            raise ValueError("set_action_reference needs data.action_representation = relative")
        if len(index) != self.shape.action_dim or not all(-1 <= i < self.shape.obs_dim for i in index):
            raise ValueError(
                f"action reference index {index} does not fit action_dim {self.shape.action_dim} / "
                f"obs_dim {self.shape.obs_dim}"
            )
        self.action_ref_index.copy_(torch.as_tensor(index, dtype=torch.long))

    def _action_reference(self, obs: torch.Tensor) -> torch.Tensor:
        """``[B, 1, A]``: the current observation's entries the actions are relative to (0 where absolute)."""
        idx = self.action_ref_index
        mask = (idx >= 0).to(obs.dtype)
        return (obs[:, -1, :].index_select(1, idx.clamp(min=0)) * mask).unsqueeze(1)

    def to_model_actions(self, action: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
        """Raw (absolute) action chunks ``[B, H, A]`` -> what the network models (raw units)."""
        return action - self._action_reference(obs) if self.relative else action

    def from_model_actions(self, x: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`to_model_actions`: the network's actions (raw units) -> absolute actions."""
        return x + self._action_reference(obs) if self.relative else x

    # --- network in normalised space -------------------------------------------------
    def encode_obs(self, obs: torch.Tensor, images: torch.Tensor | None = None) -> torch.Tensor:
        """Raw observations ``[B, n_obs_steps, obs_dim]`` (+ uint8 ``images [B, To, C, H, W, 3]``
        for an image policy) -> conditioning feature ``[B, F]``."""
        cond = self.obs_encoder(self.obs_normalizer.normalize(obs))
        if self.image_encoder is None:
            return cond
        if images is None:
            raise ValueError(f"this is an image policy (cameras {list(self.shape.cameras)}): pass images")
        return torch.cat([cond, self.image_encoder(images)], dim=-1)

    def predict_eps_x0(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The network's prediction at noisy ``x`` and time ``t [B]``, as (eps, x0) in normalised units."""
        out = self.denoiser(x, t, cond)
        alpha = self.schedule.alpha(t).view(-1, 1, 1)
        sigma = self.schedule.sigma(t).view(-1, 1, 1)
        if self.prediction == "epsilon":
            return out, (x - sigma * out) / alpha
        return (x - alpha * out) / sigma, out

    def normalized_sampling_drift(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """``G/h = sigma_t x - eps(x, t)``: the backwards-in-t drift divided by ``h(t) > 0``."""
        eps, _ = self.predict_eps_x0(x, t, cond)
        return self.schedule.sigma(t).view(-1, 1, 1) * x - eps

    # --- training --------------------------------------------------------------------
    def sample_times(self, n: int, upper_fraction: float, device: torch.device) -> torch.Tensor:
        hi = self.schedule.t_max * upper_fraction
        return self.t_min + (hi - self.t_min) * torch.rand(n, device=device)

    def compute_loss(
        self, obs: torch.Tensor, action: torch.Tensor, step: int = 0, images: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """Denoising loss (+ gamma * contraction loss) for a batch of raw-unit windows.

        The contraction term runs on steps divisible by ``contraction.every``, weighted by
        ``gamma * every`` (lazy regularisation).

        Returns a dict with ``loss`` (to back-propagate), ``diffusion_loss`` and, when
        gamma > 0, ``contraction_loss`` and ``lambda_max`` (mean estimate over the subset).
        """
        cond = self.encode_obs(obs, images)
        x0 = self.action_normalizer.normalize(self.to_model_actions(action, obs))
        b = x0.shape[0]
        t = self.sample_times(b, 1.0, x0.device)
        eps = torch.randn_like(x0)
        alpha, sigma = self.schedule.alpha(t).view(-1, 1, 1), self.schedule.sigma(t).view(-1, 1, 1)
        xt = alpha * x0 + sigma * eps
        out = self.denoiser(xt, t, cond)
        target = eps if self.prediction == "epsilon" else x0
        diffusion = torch.mean((out - target) ** 2)
        result = {"diffusion_loss": diffusion.detach()}
        loss = diffusion
        c = self.cfg.contraction
        if c.gamma > 0 and step % c.every == 0:
            c_loss, lam = self.contraction_term(x0, cond)
            loss = loss + c.gamma * c.every * c_loss
            result.update(contraction_loss=c_loss.detach(), lambda_max=lam.mean())
        result["loss"] = loss
        return result

    def contraction_term(self, x0: torch.Tensor, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Contraction loss on a subset of the batch at freshly sampled times (see ContractionConfig)."""
        c = self.cfg.contraction
        n = x0.shape[0] if c.samples <= 0 else min(c.samples, x0.shape[0])
        x0, cond = x0[:n], cond[:n]
        t = self.sample_times(n, c.t_fraction, x0.device)
        xt = self.schedule.alpha(t).view(-1, 1, 1) * x0 + self.schedule.sigma(t).view(-1, 1, 1) * torch.randn_like(x0)
        return contraction_loss(lambda z: self.normalized_sampling_drift(z, t, cond), xt, c)

    def forward(
        self, obs: torch.Tensor, action: torch.Tensor, step: int = 0, images: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """Training entry point (DDP synchronises gradients of what ``forward`` computes)."""
        return self.compute_loss(obs, action, step, images)
