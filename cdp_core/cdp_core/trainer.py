"""Training loop: AdamW, warmup + cosine LR, EMA, gradient clipping, checkpoint/resume, DDP.

Single process by default; under ``torchrun`` (``WORLD_SIZE > 1``) it runs data-parallel
with NCCL on GPUs or gloo on CPUs. Batches are drawn from a seeded stream of permutations
indexed by step, so a resumed run sees exactly the batches the uninterrupted run would
have seen.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from .checkpoint import CheckpointError, policy_payload, read_checkpoint, save_checkpoint
from .config import Config, config_from_dict, save_config
from .data import DatasetError, WindowDataset, load_episodes
from .policy import DiffusionPolicy, PolicyShape

#: Keys that may differ between a run and its resumption (they do not change the math).
_RESUMABLE_DIFFS = {
    ("train", "steps"),
    ("train", "progress"),
    ("train", "log_every"),
    ("train", "checkpoint_every"),
    ("train", "device"),
    ("train", "fused_optimizer"),
    ("export", "sampler"),
    ("export", "steps"),
}


def lr_lambda(warmup: int, total: int):
    """Linear warmup to 1, then cosine decay to 0 at ``total``."""

    def fn(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return fn


class BatchStream:
    """Deterministic batches: position ``p`` of the stream is ``perm_{p // N}[p % N]``."""

    def __init__(self, n: int, batch_size: int, seed: int, rank: int = 0, world: int = 1):
        self.n, self.batch_size, self.seed, self.rank, self.world = n, batch_size, seed, rank, world
        self._perms: dict[int, torch.Tensor] = {}

    def _perm(self, epoch: int) -> torch.Tensor:
        if epoch not in self._perms:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._perms = {epoch: torch.randperm(self.n, generator=g)}  # keep only the current epoch
        return self._perms[epoch]

    def indices(self, step: int) -> torch.Tensor:
        start = (step * self.world + self.rank) * self.batch_size
        pos = torch.arange(start, start + self.batch_size)
        out = torch.empty(self.batch_size, dtype=torch.long)
        for epoch in pos.div(self.n, rounding_mode="floor").unique().tolist():
            mask = pos // self.n == epoch
            out[mask] = self._perm(int(epoch))[pos[mask] % self.n]
        return out


def _config_diffs(a: dict, b: dict, prefix: tuple = ()) -> list[tuple]:
    diffs = []
    for k in sorted(set(a) | set(b)):
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            diffs += _config_diffs(va, vb, prefix + (k,))
        elif va != vb:
            diffs.append(prefix + (k,))
    return diffs


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def action_reference_index(
    action_space: str, obs_keys: list[str], obs_dims: dict[str, int], action_dim: int
) -> list[int]:
    """For chunk-relative actions: which entry of one observation step each action dimension is relative to.

    Joint-position actions are relative to ``joint_pos``; TCP-pose actions' position to ``ee_pos``
    (the quaternion stays absolute). Raises DatasetError when the observation lacks the key.
    """
    key, dims = {"joint_position": ("joint_pos", action_dim), "ee_pose": ("ee_pos", 3)}.get(action_space, (None, 0))
    if key is None:
        raise DatasetError(
            f"relative actions are defined for joint_position and ee_pose action spaces, not {action_space!r}"
        )
    if key not in obs_keys or obs_dims[key] < dims:
        raise DatasetError(
            f"relative {action_space} actions need the observation key {key!r} "
            f"(with {dims} values); observed: {obs_keys}"
        )
    start = sum(obs_dims[k] for k in obs_keys[: obs_keys.index(key)])
    return [start + i for i in range(dims)] + [-1] * (action_dim - dims)


def build_policy_from_data(cfg: Config) -> tuple[DiffusionPolicy, WindowDataset, dict[str, Any]]:
    """Load the dataset the config names, window it, and build a policy with fitted normalisers."""
    held = cfg.gate.holdout_episodes
    ds = load_episodes(cfg.data.path, cfg.data.format, 0 if held else cfg.data.max_episodes)
    if held:  # the gate's held-out demonstrations are the dataset's last episodes: never trained on
        if held >= len(ds.episodes):
            raise DatasetError(f"gate.holdout_episodes ({held}) leaves no training episodes of {len(ds.episodes)}")
        ds.episodes = ds.episodes[:-held][: cfg.data.max_episodes or None]
    obs_keys = cfg.data.obs_keys or sorted(ds.obs_dims)
    d = cfg.data
    windows = WindowDataset(ds, obs_keys, d.n_obs_steps, d.horizon, d.n_action_steps, d.cameras)
    shape = PolicyShape(
        windows.obs_dim,
        windows.action_dim,
        d.n_obs_steps,
        d.horizon,
        d.n_action_steps,
        tuple(d.cameras),
        windows.image_size,
    )
    policy = DiffusionPolicy(cfg, shape)
    if policy.image_encoder is not None and cfg.model.image_weights:
        policy.image_encoder.load_backbone_weights(cfg.model.image_weights)
    policy.obs_normalizer.fit(windows.flat_obs)
    if policy.relative:
        policy.set_action_reference(
            action_reference_index(
                ds.meta.get("action_space", "joint_position"), obs_keys, windows.obs_dims, shape.action_dim
            )
        )
        with torch.no_grad():
            rel = policy.to_model_actions(windows.action, windows.obs)
        policy.action_normalizer.fit(rel.reshape(-1, shape.action_dim).numpy())
    else:
        policy.action_normalizer.fit(windows.flat_action)
    action_names = list(ds.meta.get("action_names") or [f"a{i}" for i in range(shape.action_dim)])
    info = {
        "obs_keys": obs_keys,
        "obs_dims": windows.obs_dims,
        "action_names": action_names,
        "num_episodes": len(ds.episodes),
        "num_windows": len(windows),
        "dataset_path": str(cfg.data.path),
        "dataset_meta": {k: ds.meta[k] for k in ("rate_hz", "task", "action_space") if k in ds.meta},
    }
    return policy, windows, info


def train(cfg: Config, out_dir: str | Path, resume: bool = False) -> dict[str, Any]:
    """Train (or resume) a policy; returns a summary: final checkpoint path, last metrics, the trained policy."""
    out = Path(out_dir)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    distributed = world > 1
    device = _device(cfg.train.device)
    if distributed:
        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(device)
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    torch.manual_seed(cfg.train.seed + rank)
    policy, windows, info = build_policy_from_data(cfg)
    policy.to(device)
    t = cfg.train
    # fused: one kernel for the whole update (CPU and CUDA); measured 2.8x faster than the foreach
    # update on the 4.9 M-parameter sim MLP on this CPU, the same maths up to rounding.
    opt = torch.optim.AdamW(
        policy.parameters(),
        lr=t.lr,
        betas=tuple(t.betas),
        weight_decay=t.weight_decay,
        fused=t.fused_optimizer and device.type in ("cpu", "cuda"),
    )
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(t.warmup_steps, t.steps))
    ema = AveragedModel(policy, multi_avg_fn=get_ema_multi_avg_fn(t.ema_decay), use_buffers=True)
    ckpt_dir = out / "checkpoints"
    start = 0
    latest = ckpt_dir / "latest.pt"
    if resume and latest.exists():
        ckpt = read_checkpoint(latest)
        # Stored config filled with today's defaults: a key added since (a new option) is not a difference.
        stored = config_from_dict(ckpt["config"]).to_dict()
        diffs = [
            d
            for d in _config_diffs(stored, cfg.to_dict())
            if d not in _RESUMABLE_DIFFS and not (d[0] == "gate" and d != ("gate", "holdout_episodes"))
        ]
        if diffs:
            raise CheckpointError(f"cannot resume {latest}: config differs in {['.'.join(d) for d in diffs]}")
        policy.load_state_dict(ckpt["model"])
        ema.module.load_state_dict(ckpt["ema"])
        ema.n_averaged.fill_(max(1, ckpt["step"]))
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        torch.set_rng_state(
            ckpt["rng"]["torch"][rank] if isinstance(ckpt["rng"]["torch"], list) else ckpt["rng"]["torch"]
        )
        start = int(ckpt["step"])
    elif resume:
        raise CheckpointError(f"--resume given but no checkpoint at {latest}")
    model = DistributedDataParallel(policy) if distributed else policy
    stream = BatchStream(len(windows), t.batch_size, t.seed, rank, world)
    is_main = rank == 0
    writer = None
    if is_main:
        out.mkdir(parents=True, exist_ok=True)
        save_config(cfg, out / "config.yaml")
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(out / "tensorboard"), purge_step=start if start else None)
    metrics_path = out / "metrics.jsonl"
    if is_main and start == 0 and metrics_path.exists():
        metrics_path.unlink()
    bar = None
    if is_main and t.progress:
        from tqdm.auto import tqdm

        bar = tqdm(
            total=t.steps,
            initial=start,
            desc=f"train gamma={cfg.contraction.gamma:g}",
            unit="step",
            mininterval=2.0,
            dynamic_ncols=True,
        )
    payload = policy_payload(cfg, policy.shape, info["obs_keys"], info["obs_dims"], info["action_names"])
    payload["dataset"] = {k: info[k] for k in ("dataset_path", "num_episodes", "num_windows")}
    payload["dataset_meta"] = info["dataset_meta"]
    last: dict[str, float] = {}
    last_contraction: dict[str, float] = {}

    def save(step: int) -> Path:
        rng = [torch.get_rng_state()]
        if distributed:
            gathered: list[Any] = [None] * world
            dist.all_gather_object(gathered, rng[0])
            rng = gathered
        path = None
        if is_main:
            state = {
                **payload,
                "model": policy.state_dict(),
                "ema": ema.module.state_dict(),
                "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(),
                "step": step,
                "rng": {"torch": rng if distributed else rng[0]},
                "metrics": last,
            }
            path = save_checkpoint(ckpt_dir / f"step_{step:07d}.pt", state)
            save_checkpoint(latest, state)
        if distributed:
            dist.barrier()  # no rank runs ahead of (or reads) a checkpoint still being written
        return path or latest

    policy.train()
    t_loop = t_log = time.perf_counter()
    step_log = start
    try:
        for step in range(start, t.steps):
            idx = stream.indices(step)
            obs, action = windows.obs[idx].to(device), windows.action[idx].to(device)
            images = windows.images(idx)
            result = model(obs, action, step, None if images is None else images.to(device))
            opt.zero_grad(set_to_none=True)
            result["loss"].backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(policy.parameters(), t.grad_clip)
            if not (torch.isfinite(result["loss"]) and torch.isfinite(grad_norm)):
                # Stop before the optimiser writes NaN into the weights; the last checkpoint is intact.
                raise FloatingPointError(
                    f"loss {result['loss'].item()} / gradient norm {float(grad_norm)} is not "
                    f"finite at step {step}; last good checkpoint: "
                    f"{latest if latest.exists() else 'none'}"
                )
            opt.step()
            sched.step()
            ema.update_parameters(policy)
            done = step + 1
            if "lambda_max" in result:  # lazy regularisation: not every step measures it
                last_contraction = {k: float(result[k]) for k in ("contraction_loss", "lambda_max")}
            if done % t.log_every == 0 or done == t.steps:
                last = {**last_contraction, **{k: float(v.detach()) for k, v in result.items()}}
                now = time.perf_counter()
                last.update(
                    lr=sched.get_last_lr()[0],
                    grad_norm=float(grad_norm),
                    step=done,
                    steps_per_s=(done - step_log) / max(now - t_log, 1e-9),
                )
                t_log, step_log = now, done
                if is_main:
                    for k, v in last.items():
                        if k != "step":
                            writer.add_scalar(f"train/{k}", v, done)
                    with open(metrics_path, "a") as fh:
                        fh.write(json.dumps(last) + "\n")
            if bar is not None:
                bar.update(1)
                if done % t.log_every == 0:
                    bar.set_postfix({k: f"{last[k]:.4g}" for k in ("loss", "lambda_max") if k in last})
            if done % t.checkpoint_every == 0 and done != t.steps:
                save(done)
        loop_s = time.perf_counter() - t_loop  # training steps only (checkpoint saves included)
        final = save(t.steps) if start < t.steps or not latest.exists() else latest
    finally:
        if bar is not None:
            bar.close()
        if writer is not None:
            writer.close()
    return {
        "checkpoint": str(final),
        "latest": str(latest),
        "metrics": last,
        "policy": policy,
        "steps_per_s": (t.steps - start) / max(loop_s, 1e-9),
        **info,
    }
