"""Checkpoints: everything needed to resume training or export a policy, in one file.

A checkpoint holds the config, the policy's tensor contract and observation names, the
raw and EMA weights (normalisers are buffers inside them), optimiser / scheduler / RNG
state and the step. Files are written to a temporary name and renamed, so a crash or a
full disk during a save never replaces a good checkpoint with a truncated one.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from .config import Config, ConfigError, config_from_dict
from .policy import DiffusionPolicy, PolicyShape

FORMAT_NAME = "cdp-checkpoint"
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint is missing, truncated, corrupt or from an incompatible version."""


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """Atomically write ``payload`` (plus format tags) to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as fh:
            torch.save({"format": FORMAT_NAME, "version": FORMAT_VERSION, **payload}, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise CheckpointError(f"could not write checkpoint {path}: {exc}") from exc
    return path


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint dict (tensors on CPU) or raise CheckpointError naming the problem."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        # weights_only: a checkpoint is data, never code to execute.
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{path}: corrupt or not a CDP checkpoint ({type(exc).__name__}: {exc})") from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT_NAME:
        raise CheckpointError(
            f"{path}: not a CDP checkpoint (format tag {ckpt.get('format') if isinstance(ckpt, dict) else None!r})"
        )
    if ckpt.get("version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint version {ckpt.get('version')} is not supported (expected {FORMAT_VERSION})"
        )
    for key in ("config", "shape", "model", "ema", "obs_keys", "step"):
        if key not in ckpt:
            raise CheckpointError(f"{path}: checkpoint lacks {key!r}")
    return ckpt


def policy_payload(
    cfg: Config, shape: PolicyShape, obs_keys: list[str], obs_dims: dict[str, int], action_names: list[str]
) -> dict[str, Any]:
    """The parts of a checkpoint that describe the policy (shared by trainer and export)."""
    return {
        "config": cfg.to_dict(),
        "shape": asdict(shape),
        "obs_keys": obs_keys,
        "obs_dims": obs_dims,
        "action_names": action_names,
    }


def load_policy(path: str | Path, use_ema: bool = True) -> tuple[DiffusionPolicy, dict[str, Any]]:
    """Rebuild a policy (EMA weights by default) from a checkpoint; returns (policy in eval mode, checkpoint)."""
    ckpt = read_checkpoint(path)
    try:
        cfg = config_from_dict(ckpt["config"])
    except ConfigError as exc:
        raise CheckpointError(f"{path}: stored config is invalid: {exc}") from exc
    policy = DiffusionPolicy(cfg, PolicyShape(**ckpt["shape"]))
    state = ckpt["ema"] if use_ema else ckpt["model"]
    try:
        policy.load_state_dict(state)
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weights do not fit the stored config: {exc}") from exc
    return policy.eval(), ckpt
