"""Shared fixtures: a small toy dataset and a briefly trained checkpoint (module-scoped, built once)."""

from __future__ import annotations

import pytest
import torch

from cdp_core.config import config_from_dict
from cdp_core.data.toy import generate_toy_dataset
from cdp_core.trainer import train


def small_config(data, **overrides) -> dict:
    cfg = {"data": {"path": str(data), "horizon": 8, "n_obs_steps": 2, "n_action_steps": 4},
           "model": {"denoiser": "mlp", "mlp_hidden": 64, "mlp_blocks": 2, "unet_dims": [16, 32], "obs_feature_dim": 16,
                     "time_embed_dim": 16},
           "train": {"steps": 40, "batch_size": 32, "lr": 1e-3, "warmup_steps": 5, "log_every": 5,
                     "checkpoint_every": 20, "progress": False}}
    for section, values in overrides.items():
        cfg.setdefault(section, {}).update(values)
    return cfg


@pytest.fixture(scope="session")
def toy_data(tmp_path_factory):
    return generate_toy_dataset(tmp_path_factory.mktemp("toy"), episodes=8, seed=0)


@pytest.fixture(scope="session")
def mlp_checkpoint(toy_data, tmp_path_factory):
    torch.manual_seed(0)
    cfg = small_config(toy_data, contraction={"gamma": 0.1, "every": 1})
    run = train(config_from_dict(cfg), tmp_path_factory.mktemp("mlp"))
    return run["checkpoint"]


@pytest.fixture(scope="session")
def unet_checkpoint(toy_data, tmp_path_factory):
    cfg = small_config(toy_data, model={"denoiser": "unet"}, train={"steps": 10})
    return train(config_from_dict(cfg), tmp_path_factory.mktemp("unet"))["checkpoint"]
