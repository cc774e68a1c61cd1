"""ONNX export: parity with the PyTorch sampler, metadata contract, and refusal of bad input."""

import json

import numpy as np
import onnx
import pytest
import torch

from cdp_core.checkpoint import load_policy
from cdp_core.export import export_onnx
from cdp_core.runtime import ModelContractError, OnnxPolicy
from cdp_core.samplers import SAMPLERS, FixedStepSampler, SamplerSpecError


def _parity(checkpoint, path, sampler, steps):
    export_onnx(checkpoint, path, sampler, steps)
    model = OnnxPolicy(path)
    policy, _ = load_policy(checkpoint)
    rng = np.random.default_rng(steps)
    obs = (rng.standard_normal((5, 2, 4)) * 0.5).astype(np.float32)
    noise = rng.standard_normal((5, 8, 2)).astype(np.float32)
    with torch.no_grad():
        ref = FixedStepSampler(policy, sampler, steps)(torch.from_numpy(obs), torch.from_numpy(noise)).numpy()
    got = model(obs, noise)
    return float(np.abs(got - ref).max()), model


@pytest.mark.parametrize("sampler", SAMPLERS)
@pytest.mark.parametrize("steps", [1, 3, 8])
def test_onnx_matches_pytorch_for_every_sampler(mlp_checkpoint, tmp_path, sampler, steps):
    err, model = _parity(mlp_checkpoint, tmp_path / "m.onnx", sampler, steps)
    assert err <= 1e-4
    assert model.metadata["sampler"] == sampler and model.metadata["steps"] == steps


def test_onnx_unet_parity_and_batch_size(unet_checkpoint, tmp_path):
    err, model = _parity(unet_checkpoint, tmp_path / "u.onnx", "dpmpp_2m", 4)
    assert err <= 1e-4
    assert model(np.zeros((1, 2, 4), np.float32)).shape == (1, 8, 2)  # dynamic batch


def test_metadata_contract(mlp_checkpoint, tmp_path):
    path = tmp_path / "m.onnx"
    meta = export_onnx(mlp_checkpoint, path, "ddim", 2)
    embedded = json.loads({p.key: p.value for p in onnx.load(str(path)).metadata_props}["cdp_metadata"])
    assert embedded == json.loads(path.with_suffix(".json").read_text()) == meta
    assert meta["obs_keys"] == ["agent_pos", "goal"] and meta["action_start_index"] == 1
    assert meta["gamma"] == 0.1 and len(meta["checkpoint_sha256"]) == 64
    OnnxPolicy(path, expect={"obs_keys": ["agent_pos", "goal"], "horizon": 8})
    with pytest.raises(ModelContractError, match=r"horizon: model has 8, expected 16"):
        OnnxPolicy(path, expect={"horizon": 16})
    with pytest.raises(ModelContractError, match="obs_keys"):
        OnnxPolicy(path, expect={"obs_keys": ["joint_pos"]})


def test_refuses_unknown_sampler_and_bad_steps(mlp_checkpoint, tmp_path):
    with pytest.raises(SamplerSpecError, match="unknown sampler 'rk4'"):
        export_onnx(mlp_checkpoint, tmp_path / "x.onnx", "rk4", 4)
    with pytest.raises(SamplerSpecError, match="steps"):
        export_onnx(mlp_checkpoint, tmp_path / "x.onnx", "ddim", 0)
    assert not (tmp_path / "x.onnx").exists()


def test_corrupt_model_and_mismatched_sidecar(mlp_checkpoint, tmp_path):
    path = tmp_path / "m.onnx"
    export_onnx(mlp_checkpoint, path, "ddim", 2)
    side = path.with_suffix(".json")
    meta = json.loads(side.read_text())
    side.write_text(json.dumps({**meta, "steps": 99}))
    with pytest.raises(ModelContractError, match=r"disagrees.*steps"):
        OnnxPolicy(path)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ModelContractError, match="corrupt or not an ONNX model"):
        OnnxPolicy(path)
    with pytest.raises(ModelContractError, match="not found"):
        OnnxPolicy(tmp_path / "missing.onnx")
