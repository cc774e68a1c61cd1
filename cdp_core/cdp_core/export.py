"""ONNX export of the whole fixed-step sampler (normalisation included) with a metadata contract.

The graph: ``obs`` float32 [B, n_obs_steps, obs_dim], ``noise`` float32 [B, horizon, action_dim]
(and, for an image policy, ``images`` uint8 [B, n_obs_steps, cameras, H, W, 3], RGB as the
cameras deliver it; crop and normalisation are inside the graph) -> ``actions`` float32
[B, horizon, action_dim] in the dataset's units. The metadata (JSON,
stored in the ONNX ``metadata_props`` under ``cdp_metadata`` and in a sidecar ``.json``)
is what a consumer checks before it trusts the model: see :mod:`cdp_core.runtime`.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import warnings
from pathlib import Path
from typing import Any

import onnx
import torch

from . import __version__
from .checkpoint import file_sha256, load_policy
from .policy import DiffusionPolicy
from .samplers import FixedStepSampler, check_sampler_spec

from .model_format import FORMAT_NAME, FORMAT_VERSION, METADATA_KEY, sidecar_path  # noqa: F401 (re-exported)

OPSET = 18


def build_metadata(
    policy: DiffusionPolicy, ckpt: dict[str, Any], sampler: FixedStepSampler, checkpoint_sha256: str
) -> dict[str, Any]:
    """The contract a consumer (policy node, evaluator) checks before running the model."""
    s = policy.shape
    inputs: dict[str, list[Any]] = {
        "obs": ["batch", s.n_obs_steps, s.obs_dim],
        "noise": ["batch", s.horizon, s.action_dim],
    }
    if s.cameras:
        inputs["images"] = ["batch", s.n_obs_steps, len(s.cameras), *s.image_size, 3]
    enc = policy.image_encoder
    return {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "inputs": inputs,
        # Image policies: the camera names in the order of ``images``' camera axis, the frame
        # size (H, W) the graph takes (uint8 RGB), and the centre crop it applies.
        "cameras": list(s.cameras),
        "image_size": list(s.image_size) if s.cameras else None,
        "image_crop": list(enc.crop_hw) if enc is not None else None,
        "outputs": {"actions": ["batch", s.horizon, s.action_dim]},
        "obs_keys": list(ckpt["obs_keys"]),
        "obs_dims": {k: int(v) for k, v in ckpt["obs_dims"].items()},
        "obs_dim": s.obs_dim,
        "action_names": list(ckpt["action_names"]),
        "action_dim": s.action_dim,
        # What the actions mean: "joint_position" (absolute joint targets) or "ee_pose" (TCP
        # position + quaternion); datasets from before the option are joint positions.
        "action_space": ckpt.get("dataset_meta", {}).get("action_space", "joint_position"),
        # "relative": the network models chunk-relative actions; the graph has already added the
        # current state back, so "actions" are absolute either way (informational for consumers).
        "action_representation": policy.cfg.data.action_representation,
        "n_obs_steps": s.n_obs_steps,
        "horizon": s.horizon,
        "n_action_steps": s.n_action_steps,
        # actions[action_start_index] is the action for the newest observation's time step.
        "action_start_index": s.n_obs_steps - 1,
        "rate_hz": ckpt.get("dataset_meta", {}).get("rate_hz"),
        # the simulated task the demonstrations came from (None for other data)
        "task": ckpt.get("dataset_meta", {}).get("task"),
        "sampler": sampler.sampler,
        "steps": sampler.steps,
        "network_evaluations": sampler.network_evaluations,
        "gamma": policy.cfg.contraction.gamma,
        "prediction": policy.prediction,
        "schedule": policy.cfg.diffusion.schedule,
        "training_config": ckpt["config"],
        "checkpoint_sha256": checkpoint_sha256,
        "checkpoint_step": int(ckpt["step"]),
        "exported_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "cdp_core_version": __version__,
        "torch_version": torch.__version__,
    }


def export_onnx(
    checkpoint: str | Path, out_path: str | Path, sampler: str = "ddim", steps: int = 10, use_ema: bool = True
) -> dict[str, Any]:
    """Export the sampler of a checkpoint to ``out_path`` (+ sidecar JSON); returns the metadata.

    Raises :class:`~cdp_core.samplers.SamplerSpecError` for an unknown sampler or step count
    before any work is done.
    """
    check_sampler_spec(sampler, steps)
    policy, ckpt = load_policy(checkpoint, use_ema=use_ema)
    module = FixedStepSampler(policy, sampler, steps).eval()
    meta = build_metadata(policy, ckpt, module, file_sha256(checkpoint))
    from .gate import stored_report

    # The convergence gate's verdict on exactly this checkpoint, when `cdp train` / `cdp gate` stored one.
    meta["convergence_gate"] = stored_report(checkpoint)
    s = policy.shape
    obs = torch.zeros(2, s.n_obs_steps, s.obs_dim)
    noise = torch.zeros(2, s.horizon, s.action_dim)
    args: tuple[torch.Tensor, ...] = (obs, noise)
    names = ["obs", "noise"]
    if s.cameras:
        args += (torch.zeros(2, s.n_obs_steps, len(s.cameras), *s.image_size, 3, dtype=torch.uint8),)
        names.append("images")
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(out_path.name + ".tmp")
    batch = torch.export.Dim("batch", min=1, max=4096)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        for name in ("torch.onnx", "torch.export", "torch._export"):
            logging.getLogger(name).setLevel(logging.ERROR)
        program = torch.onnx.export(
            module,
            args,
            input_names=names,
            output_names=["actions"],
            dynamic_shapes={n: {0: batch} for n in names},
            opset_version=OPSET,
            dynamo=True,
            verbose=False,
        )
    model = program.model_proto
    model.doc_string = f"CDP fixed-step sampler ({sampler}, {steps} steps, gamma={meta['gamma']:g})"
    onnx.helper.set_model_props(model, {METADATA_KEY: json.dumps(meta)})
    onnx.checker.check_model(model)
    onnx.save(model, str(tmp))
    os.replace(tmp, out_path)
    sidecar_path(out_path).write_text(json.dumps(meta, indent=2))
    return meta
