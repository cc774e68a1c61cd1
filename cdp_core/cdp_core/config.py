"""Configuration: dataclasses with strict YAML loading.

Every tunable lives here, grouped by the part of the system that reads it. YAML files are
merged onto the defaults; an unknown key or a value of the wrong type is an error that
names the key, because a typo in a training config silently falling back to a default
costs a day of GPU time.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


ACTION_REPRESENTATIONS = ("absolute", "relative")


class ConfigError(ValueError):
    """A configuration file or override is invalid (unknown key, wrong type, bad value)."""


@dataclass
class DataConfig:
    """Where the demonstrations come from and how they are windowed (Diffusion Policy style)."""

    path: str = ""
    #: ``episodes`` (the project's own format), ``lerobot`` (a local LeRobot v3 dataset folder),
    #: ``robomimic`` or ``d4rl`` (HDF5).
    format: str = "episodes"
    #: Observation keys, concatenated in this order into the policy's ``obs`` vector.
    #: Empty means every key the dataset has, in sorted order.
    obs_keys: list[str] = field(default_factory=list)
    n_obs_steps: int = 2
    horizon: int = 16
    n_action_steps: int = 8
    #: Use only the first N episodes (0 = all); the few-demonstration experiments use it.
    max_episodes: int = 0
    #: ``absolute``: the policy predicts the dataset's actions. ``relative`` (chunk-relative):
    #: it predicts each action of a chunk minus the robot's state at the current observation
    #: (``joint_pos`` for joint-position actions, ``ee_pos`` for the position part of TCP-pose
    #: actions). The exported graph adds the state back, so every consumer gets absolute actions.
    action_representation: str = "absolute"
    #: Cameras whose frames the policy sees (an image / visuomotor policy); empty: low-dim only.
    #: The dataset must hold them (``cdp demos --cameras agentview``), all at one frame size.
    cameras: list[str] = field(default_factory=list)


@dataclass
class DiffusionConfig:
    """Noise schedule, prediction target and time range of the VP diffusion."""

    schedule: str = "linear"  # "linear" (VP-SDE, beta_min..beta_max) or "cosine"
    beta_min: float = 0.1
    beta_max: float = 20.0
    prediction: str = "epsilon"  # "epsilon" or "sample" (x0)
    t_min: float = 1e-3
    #: Clamp the predicted clean action to the normalised range [-1, 1] while sampling (and
    #: recompute eps from it), as Diffusion Policy's schedulers do: at high noise the eps
    #: parameterisation divides by alpha ~ 0.007 and few-step samplers would amplify errors.
    clip_sample: bool = True


@dataclass
class ModelConfig:
    """Denoiser network and observation encoder."""

    denoiser: str = "unet"  # "unet" (conditional 1-D temporal U-Net) or "mlp" (residual MLP)
    unet_dims: list[int] = field(default_factory=lambda: [64, 128, 256])
    unet_kernel_size: int = 5
    unet_groups: int = 8
    mlp_hidden: int = 256
    mlp_blocks: int = 3
    time_embed_dim: int = 64
    obs_encoder: str = "mlp"  # "mlp" or "identity"
    obs_feature_dim: int = 64
    #: Image encoder, one per camera (data.cameras): "cnn" (small, for CPU training and CI) or
    #: "resnet18" (Diffusion Policy's: ResNet-18 with GroupNorm); both end in a spatial softmax.
    image_encoder: str = "cnn"
    image_feature_dim: int = 64
    #: Random crop while training, centre crop at inference, to this fraction of the frame side.
    image_crop: float = 0.9
    #: A local weights file (``torch.save`` state dict) for the image encoders' backbone; loaded
    #: when the policy is built for training (no download: train from scratch otherwise).
    image_weights: str = ""


@dataclass
class ContractionConfig:
    """The CDP loss. ``gamma = 0`` trains the plain diffusion policy."""

    gamma: float = 0.0
    beta: float = 0.1
    form: str = "hinge"  # "hinge" on lambda_max, or "frobenius" ||sym J + beta I||_F^2
    estimator: str = "lanczos"  # "lanczos" or "power" (shifted power iteration)
    iterations: int = 4
    #: Contraction is enforced at t ~ U(t_min, t_fraction * t_max): 1.0 = all noise levels,
    #: smaller values only the lowest-noise part of the trajectory.
    t_fraction: float = 1.0
    #: Number of samples of each batch the Jacobian term is computed on (0 = whole batch).
    #: The term is a regulariser; a subsample keeps its cost near the 15 % budget.
    samples: int = 8
    #: Hutchinson probes for the Frobenius form.
    probes: int = 1
    #: Lazy regularisation (as StyleGAN2's lazy R1): compute the term every N-th step with
    #: weight gamma * N. Same expected gradient, 1/N of the cost.
    every: int = 4


@dataclass
class TrainConfig:
    """Optimisation, EMA, logging and checkpointing."""

    steps: int = 2000
    batch_size: int = 256
    lr: float = 1e-4
    weight_decay: float = 1e-6
    betas: list[float] = field(default_factory=lambda: [0.95, 0.999])
    warmup_steps: int = 100
    ema_decay: float = 0.995
    grad_clip: float = 1.0
    seed: int = 0
    log_every: int = 20
    checkpoint_every: int = 500
    device: str = "auto"  # "auto", "cpu", "cuda"
    progress: bool = True
    #: One fused kernel for the AdamW update (same maths up to rounding; see trainer.py).
    fused_optimizer: bool = True


@dataclass
class GateConfig:
    """The convergence gate run after training (:mod:`cdp_core.convergence`).

    Held-out demonstrations come from ``holdout_path`` (an episode dataset the run never
    trains on), or else from the last ``holdout_episodes`` episodes of ``data.path`` (then
    excluded from training), or else, for the simulated tasks, ``auto_demos`` scripted
    demonstrations recorded at seeds no training set uses. Thresholds are at the TCP, in mm.
    """

    enabled: bool = True
    holdout_path: str = ""
    holdout_episodes: int = 0
    auto_demos: int = 10
    #: A window belongs to the final phase when its demonstrated TCP target is this close to the episode's last.
    phase_radius_m: float = 0.02
    windows_per_episode: int = 8
    samples: int = 8
    max_error_mm: float = 4.0
    max_scatter_mm: float = 3.0
    #: ``warn``: print the failure loudly and mark the run; ``fail``: ``cdp train`` exits non-zero.
    on_fail: str = "warn"


@dataclass
class ExportConfig:
    """Default sampler baked into an exported model (overridable on the command line)."""

    sampler: str = "ddim"
    steps: int = 10


@dataclass
class Config:
    """Complete configuration of one training run; stored inside every checkpoint."""

    data: DataConfig = field(default_factory=DataConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    contraction: ContractionConfig = field(default_factory=ContractionConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    gate: GateConfig = field(default_factory=GateConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def validate(self) -> "Config":
        """Check values that types alone do not catch; raise :class:`ConfigError`."""
        d, m, c, t = self.data, self.model, self.contraction, self.train
        _choice("data.format", d.format, ("episodes", "lerobot", "robomimic", "d4rl"))
        _choice("data.action_representation", d.action_representation, ACTION_REPRESENTATIONS)
        _choice("diffusion.schedule", self.diffusion.schedule, ("linear", "cosine"))
        _choice("diffusion.prediction", self.diffusion.prediction, ("epsilon", "sample"))
        _choice("model.denoiser", m.denoiser, ("unet", "mlp"))
        _choice("model.obs_encoder", m.obs_encoder, ("mlp", "identity"))
        _choice("model.image_encoder", m.image_encoder, ("cnn", "resnet18"))
        if not 0.5 <= m.image_crop <= 1.0:
            raise ConfigError(f"model.image_crop must be in [0.5, 1], got {m.image_crop}")
        if len(set(d.cameras)) != len(d.cameras):
            raise ConfigError(f"data.cameras {d.cameras} names a camera twice")
        _choice("contraction.form", c.form, ("hinge", "frobenius"))
        _choice("contraction.estimator", c.estimator, ("lanczos", "power"))
        for name, value in (
            ("data.n_obs_steps", d.n_obs_steps),
            ("data.horizon", d.horizon),
            ("data.n_action_steps", d.n_action_steps),
            ("train.steps", t.steps),
            ("train.batch_size", t.batch_size),
            ("contraction.iterations", c.iterations),
            ("contraction.every", c.every),
        ):
            if value < 1:
                raise ConfigError(f"{name} must be >= 1, got {value}")
        if d.n_obs_steps - 1 + d.n_action_steps > d.horizon:
            raise ConfigError(
                f"data.horizon ({d.horizon}) must cover n_obs_steps - 1 + n_action_steps "
                f"({d.n_obs_steps - 1 + d.n_action_steps}): executed actions start at the current observation"
            )
        if m.denoiser == "unet":
            factor = 2 ** (len(m.unet_dims) - 1)
            if d.horizon % factor:
                raise ConfigError(
                    f"data.horizon ({d.horizon}) must be divisible by {factor} for a U-Net with "
                    f"{len(m.unet_dims)} levels (model.unet_dims)"
                )
            if any(dim % m.unet_groups for dim in m.unet_dims):
                raise ConfigError(f"model.unet_dims {m.unet_dims} must be multiples of unet_groups ({m.unet_groups})")
        g = self.gate
        _choice("gate.on_fail", g.on_fail, ("warn", "fail"))
        for name, value in (("gate.holdout_episodes", g.holdout_episodes), ("gate.auto_demos", g.auto_demos)):
            if value < 0:
                raise ConfigError(f"{name} must be >= 0, got {value}")
        if g.samples < 2 or g.windows_per_episode < 1:
            raise ConfigError("gate.samples must be >= 2 and gate.windows_per_episode >= 1")
        if not (g.phase_radius_m > 0 and g.max_error_mm > 0 and g.max_scatter_mm > 0):
            raise ConfigError("gate.phase_radius_m, gate.max_error_mm and gate.max_scatter_mm must be > 0")
        if c.gamma < 0:
            raise ConfigError(f"contraction.gamma must be >= 0, got {c.gamma}")
        if not 0 < c.t_fraction <= 1:
            raise ConfigError(f"contraction.t_fraction must be in (0, 1], got {c.t_fraction}")
        if not 0 < self.diffusion.t_min < 0.5:
            raise ConfigError(f"diffusion.t_min must be in (0, 0.5), got {self.diffusion.t_min}")
        if not 0 <= t.ema_decay < 1:
            raise ConfigError(f"train.ema_decay must be in [0, 1), got {t.ema_decay}")
        return self


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")


def _coerce(path: str, tp: Any, value: Any) -> Any:
    """Convert a YAML value to the annotated type or raise a ConfigError naming ``path``."""
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{path or 'config'} must be a mapping, got {type(value).__name__}")
        return _from_dict(typing.cast(type, tp), value, path)
    if origin is list:
        (item_tp,) = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path} must be a list, got {value!r}")
        return [_coerce(f"{path}[{i}]", item_tp, v) for i, v in enumerate(value)]
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path} must be true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path} must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{path} must be a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{path} must be a string, got {value!r}")
        return value
    raise ConfigError(f"{path}: unsupported type {tp}")  # pragma: no cover - programming error


def _from_dict(cls: type, values: dict[str, Any], path: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        where = f"section '{path}'" if path else "the top level"
        raise ConfigError(f"unknown config key(s) {unknown} in {where}; valid keys: {sorted(names)}")
    kwargs = {k: _coerce(f"{path}.{k}" if path else k, hints[k], v) for k, v in values.items()}
    return cls(**kwargs)


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in update.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def config_from_dict(values: dict[str, Any]) -> Config:
    """Build a validated :class:`Config` from a (partial) nested mapping."""
    return _from_dict(Config, _merge(Config().to_dict(), values or {})).validate()


def parse_override(text: str) -> dict[str, Any]:
    """Turn ``section.key=value`` (value in YAML syntax) into a nested mapping."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like section.key=value")
    key, raw = text.split("=", 1)
    value = yaml.safe_load(raw)
    out: dict[str, Any] = {}
    node = out
    parts = key.strip().split(".")
    for p in parts[:-1]:
        node = node.setdefault(p, {})
    node[parts[-1]] = value
    return out


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Load a YAML config file (optional) and ``section.key=value`` overrides onto the defaults."""
    values: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file not found: {p}")
        try:
            loaded = yaml.safe_load(p.read_text())
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {p} is not valid YAML: {exc}") from exc
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"config file {p} must hold a mapping at the top level")
        values = loaded or {}
    for o in overrides or []:
        values = _merge(values, parse_override(o))
    return config_from_dict(values)


def save_config(cfg: Config, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
