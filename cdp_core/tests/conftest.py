"""Shared fixtures: a small toy dataset and a briefly trained checkpoint (module-scoped, built once)."""

from __future__ import annotations

import pytest
import torch

from cdp_core.config import config_from_dict
from cdp_core.data.toy import generate_toy_dataset
from cdp_core.trainer import train
from cdp_core_test_config import small_config


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
