"""Chunk-relative actions: the network models a - state, every consumer still receives absolute actions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cdp_core.config import ConfigError, config_from_dict
from cdp_core.data import DatasetError
from cdp_core.export import export_onnx
from cdp_core.runtime import OnnxPolicy
from cdp_core.samplers import FixedStepSampler
from cdp_core.trainer import action_reference_index, build_policy_from_data, train
from cdp_core_test_config import small_config

KEYS = ["ee_pos", "ee_quat", "gripper_width", "joint_pos", "target_pos"]
DIMS = {"ee_pos": 3, "ee_quat": 4, "gripper_width": 1, "joint_pos": 7, "target_pos": 3}


def test_reference_index_points_at_the_state_the_actions_are_relative_to():
    assert action_reference_index("joint_position", KEYS, DIMS, 7) == list(range(8, 15))
    assert action_reference_index("ee_pose", KEYS, DIMS, 7) == [0, 1, 2, -1, -1, -1, -1]  # quaternion stays absolute
    with pytest.raises(DatasetError, match="joint_pos"):
        action_reference_index("joint_position", ["ee_pos", "target_pos"], DIMS, 7)
    with pytest.raises(ConfigError, match="action_representation"):
        config_from_dict({"data": {"action_representation": "delta"}})


@pytest.fixture(scope="module")
def reach_demos(tmp_path_factory):
    from cdp_core.sim.demos import generate_demos

    out = tmp_path_factory.mktemp("reach_rel")
    generate_demos("reach_precise", out, 2, seed=0, progress=False)
    return out


def test_relative_policy_models_offsets_and_exports_absolute_targets(reach_demos, tmp_path):
    values = small_config(reach_demos, train={"steps": 10})
    values["data"]["action_representation"] = "relative"
    cfg = config_from_dict(values)
    policy, windows, _ = build_policy_from_data(cfg)
    joint = slice(8, 15)
    rel = policy.to_model_actions(windows.action, windows.obs)
    expect = windows.action - windows.obs[:, -1:, joint]
    assert torch.allclose(rel, expect)
    assert torch.allclose(policy.from_model_actions(rel, windows.obs), windows.action)
    # the action normaliser covers the offsets, not the absolute joint angles
    span = 2.0 / policy.action_normalizer.scale
    assert torch.all(span <= (expect.amax((0, 1)) - expect.amin((0, 1))) + 1e-4)

    run = train(cfg, tmp_path / "run")
    meta = export_onnx(run["checkpoint"], tmp_path / "rel.onnx", "ddim", 4)
    assert meta["action_representation"] == "relative" and meta["action_space"] == "joint_position"
    model = OnnxPolicy(tmp_path / "rel.onnx")
    from cdp_core.checkpoint import load_policy

    torch_policy, _ = load_policy(run["checkpoint"])
    obs = windows.obs[:5].numpy()
    noise = np.random.default_rng(0).standard_normal((5, *model.noise_shape)).astype(np.float32)
    onnx_out = model(obs, noise)
    with torch.no_grad():
        torch_out = FixedStepSampler(torch_policy, "ddim", 4)(torch.from_numpy(obs), torch.from_numpy(noise)).numpy()
    assert np.allclose(onnx_out, torch_out, atol=1e-4)
    # absolute targets: the same offsets around a different arm configuration move with the arm
    shifted = obs.copy()
    shifted[:, :, joint] += 0.1
    with torch.no_grad():
        cond_free = torch_policy.from_model_actions(torch.zeros(5, 8, 7), torch.from_numpy(shifted))
    assert np.allclose(cond_free.numpy(), shifted[:, -1:, joint])
    assert np.all(np.abs(onnx_out - obs[:, -1:, joint]) < 1.0)  # near the arm, not near zero
