"""Diffusion-Policy-style training windows over episodes.

A window is ``horizon`` consecutive steps; the policy observes its first ``n_obs_steps``
and predicts all ``horizon`` actions, of which ``n_action_steps`` starting at index
``n_obs_steps - 1`` (the current step) are executed. Windows may start up to
``n_obs_steps - 1`` steps before an episode and end up to ``n_action_steps - 1`` steps
after it; the missing steps repeat the first / last step (DP's edge padding), so the
policy learns to start from rest and to hold at the end.
"""

from __future__ import annotations

import numpy as np
import torch

from ..observation import episode_observations as episode_obs
from ..observation import with_derived_dims
from .episodes import DatasetError, EpisodeDataset


class WindowDataset:
    """All windows of a dataset as in-memory tensors: ``obs [N, To, obs_dim]``, ``action [N, H, A]``.

    With ``cameras``, the frames are kept once (``frames [F, cameras, H, W, 3]`` uint8) and each
    window indexes its observed steps (``frame_index [N, To]``): :meth:`images` gathers a batch's
    ``[B, To, cameras, H, W, 3]`` without copying every frame into every window.
    """

    def __init__(
        self,
        dataset: EpisodeDataset,
        obs_keys: list[str],
        n_obs_steps: int,
        horizon: int,
        n_action_steps: int,
        cameras: list[str] | None = None,
    ):
        available = with_derived_dims(dataset.obs_dims)
        missing = [k for k in obs_keys if k not in available]
        if missing:
            raise DatasetError(f"observation keys {missing} not in dataset (it has {sorted(available)})")
        self.cameras = list(cameras or [])
        absent = [c for c in self.cameras if c not in dataset.image_shapes]
        if absent:
            raise DatasetError(f"cameras {absent} not in dataset (it has {sorted(dataset.image_shapes) or 'none'})")
        sizes = {dataset.image_shapes[c] for c in self.cameras}
        if len(sizes) > 1:
            raise DatasetError(f"cameras {self.cameras} have different frame sizes {sorted(sizes)}: use one size")
        self.image_size: tuple[int, int] = sizes.pop() if sizes else (0, 0)
        self.obs_keys = list(obs_keys)
        self.obs_dims = {k: available[k] for k in obs_keys}
        self.n_obs_steps, self.horizon, self.n_action_steps = n_obs_steps, horizon, n_action_steps
        obs_windows, act_windows, frame_windows, frames = [], [], [], []
        pad_before, pad_after = n_obs_steps - 1, n_action_steps - 1
        offset = 0
        for ep in dataset.episodes:
            obs = episode_obs(ep.obs, obs_keys)
            act = ep.action.astype(np.float32)
            n = len(ep)
            starts = np.arange(-pad_before, n - horizon + pad_after + 1)
            if len(starts) == 0:  # episode shorter than a window: one fully padded window
                starts = np.array([-pad_before])
            idx = np.clip(starts[:, None] + np.arange(horizon)[None, :], 0, n - 1)
            obs_windows.append(obs[idx[:, :n_obs_steps]])
            act_windows.append(act[idx])
            if self.cameras:
                frame_windows.append(idx[:, :n_obs_steps] + offset)
                frames.append(np.stack([ep.images[c] for c in self.cameras], axis=1))
                offset += n
        self.obs = torch.from_numpy(np.concatenate(obs_windows))
        self.action = torch.from_numpy(np.concatenate(act_windows))
        self.frames = torch.from_numpy(np.concatenate(frames)) if frames else None
        self.frame_index = torch.from_numpy(np.concatenate(frame_windows)) if frame_windows else None
        # Normaliser statistics come from the episode steps themselves, not the padded windows.
        self.flat_obs = np.concatenate([episode_obs(e.obs, obs_keys) for e in dataset.episodes])
        self.flat_action = np.concatenate([e.action for e in dataset.episodes])

    def images(self, idx: torch.Tensor) -> torch.Tensor | None:
        """uint8 ``[B, To, cameras, H, W, 3]`` for windows ``idx`` (None without cameras)."""
        if self.frames is None or self.frame_index is None:
            return None
        return self.frames[self.frame_index[idx]]

    @property
    def obs_dim(self) -> int:
        return int(self.obs.shape[-1])

    @property
    def action_dim(self) -> int:
        return int(self.action.shape[-1])

    def __len__(self) -> int:
        return int(self.obs.shape[0])
