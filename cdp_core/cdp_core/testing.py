"""Small training set-ups for tests across packages: a tiny network trained for a few steps.

Enough to exercise the whole pipeline (dataset -> training -> ONNX export -> a consumer), never
to solve a task. One definition, so every test's "tiny model" is the same model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def small_config(data: str | Path, /, **overrides: dict[str, Any]) -> dict[str, Any]:
    """A tiny MLP / U-Net config on the dataset ``data``; ``overrides`` update whole sections' keys."""
    cfg: dict[str, Any] = {
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


def train_small_policy(
    data: str | Path,
    out: str | Path,
    steps: int = 10,
    sampler_steps: int = 2,
    data_format: str = "episodes",
    cameras: tuple[str, ...] = (),
) -> Path:
    """Train :func:`small_config` for ``steps`` on ``data`` (``data.format``) in ``out``, export it; the .onnx path.

    ``cameras``: an image policy on those cameras of the dataset (the small CNN encoder)."""
    from .config import config_from_dict
    from .export import export_onnx
    from .trainer import train

    out = Path(out)
    sections: dict[str, dict[str, Any]] = {
        "data": {"format": data_format, "cameras": list(cameras)},
        "train": {"steps": steps, "checkpoint_every": steps, "warmup_steps": 2},
        "gate": {"holdout_episodes": 0},
    }
    if cameras:
        sections["model"] = {"image_feature_dim": 8}
    cfg = small_config(data, **sections)
    result = train(config_from_dict(cfg), out / "run")
    export_onnx(result["checkpoint"], out / "policy.onnx", steps=sampler_steps)
    return out / "policy.onnx"
