"""The small training config the cdp_core tests share (a module of its own: every ROS package's
test folder has a conftest.py too, so ``from conftest import ...`` is ambiguous in a full run)."""

from __future__ import annotations


def small_config(data, **overrides) -> dict:
    cfg = {
        "data": {"path": str(data), "horizon": 8, "n_obs_steps": 2, "n_action_steps": 4},
        "model": {
            "denoiser": "mlp",
            "mlp_hidden": 64,
            "mlp_blocks": 2,
            "unet_dims": [16, 32],
            "obs_feature_dim": 16,
            "time_embed_dim": 16,
        },
        "train": {
            "steps": 40,
            "batch_size": 32,
            "lr": 1e-3,
            "warmup_steps": 5,
            "log_every": 5,
            "checkpoint_every": 20,
            "progress": False,
        },
    }
    for section, values in overrides.items():
        cfg.setdefault(section, {}).update(values)
    return cfg
