"""Benchmarks (printed numbers, never pass/fail tests): sampler latency and CDP training overhead."""

from __future__ import annotations

import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .config import config_from_dict
from .policy import DiffusionPolicy, PolicyShape


@dataclass
class Timing:
    """Latency statistics in milliseconds."""

    p50: float
    p99: float
    mean: float
    n: int


def time_calls(fn: Callable[[], object], iters: int, warmup: int = 5, sync: Callable[[], None] | None = None) -> Timing:
    """Time ``fn`` ``iters`` times after ``warmup`` calls; ``sync`` (e.g. CUDA synchronise) runs before each clock read."""
    for _ in range(warmup):
        fn()
    if sync:
        sync()
    samples = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        if sync:
            sync()
        samples.append((time.perf_counter() - t0) * 1e3)
    samples.sort()
    return Timing(
        statistics.median(samples),
        samples[min(len(samples) - 1, int(0.99 * len(samples)))],
        statistics.fmean(samples),
        len(samples),
    )


def _torch_sampler_fn(
    sampler_module: torch.nn.Module, obs: torch.Tensor, noise: torch.Tensor, cuda_graph: bool
) -> Callable[[], object]:
    if not cuda_graph:

        def run():
            with torch.no_grad():
                return sampler_module(obs, noise)

        return run
    # CUDA graph: capture the whole fixed-step sampler once; replay = one launch.
    static_obs, static_noise = obs.clone(), noise.clone()
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream), torch.no_grad():
        for _ in range(3):
            sampler_module(static_obs, static_noise)
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph), torch.no_grad():
        sampler_module(static_obs, static_noise)
    return graph.replay


def sampler_latency_table(
    checkpoint: str | None,
    model: str | None,
    samplers: list[str],
    steps_list: list[int],
    batches: list[int],
    iters: int,
    device: str,
    backends: list[str],
    threads: int = 1,
) -> list[dict[str, object]]:
    """Latency rows for each (backend, sampler, steps, batch). ORT models are exported on the fly from a checkpoint."""
    from .checkpoint import load_policy
    from .export import export_onnx
    from .runtime import OnnxPolicy
    from .samplers import FixedStepSampler

    rows: list[dict[str, object]] = []
    torch.set_num_threads(threads)
    policy = None
    if checkpoint:
        policy, _ = load_policy(checkpoint)
    tmp = Path(tempfile.mkdtemp(prefix="cdp-bench-"))
    for sampler in samplers:
        for steps in steps_list:
            ort_model = None
            if "ort" in backends:
                if model:
                    ort_model = OnnxPolicy(model, intra_op_threads=threads)
                    if (ort_model.metadata["sampler"], ort_model.metadata["steps"]) != (sampler, steps):
                        ort_model = None  # a fixed export only benchmarks its own sampler/steps
                elif checkpoint:
                    path = tmp / f"{sampler}_{steps}.onnx"
                    export_onnx(checkpoint, path, sampler, steps)
                    ort_model = OnnxPolicy(path, intra_op_threads=threads)
            for batch in batches:
                if ort_model is not None:
                    m = ort_model.metadata
                    obs = np.random.randn(batch, m["n_obs_steps"], m["obs_dim"]).astype(np.float32)
                    noise = np.random.randn(batch, m["horizon"], m["action_dim"]).astype(np.float32)
                    t = time_calls(lambda: ort_model(obs, noise), iters)
                    rows.append(
                        dict(
                            backend=f"ort:{ort_model.providers[0].replace('ExecutionProvider', '')}",
                            sampler=sampler,
                            steps=steps,
                            batch=batch,
                            p50_ms=t.p50,
                            p99_ms=t.p99,
                        )
                    )
                if policy is not None and ("torch" in backends or "torch-cudagraph" in backends):
                    dev = torch.device(device)
                    module = FixedStepSampler(policy.to(dev), sampler, steps).eval()
                    s = policy.shape
                    obs_t = torch.randn(batch, s.n_obs_steps, s.obs_dim, device=dev)
                    noise_t = torch.randn(batch, s.horizon, s.action_dim, device=dev)
                    sync = torch.cuda.synchronize if dev.type == "cuda" else None
                    for backend in ("torch", "torch-cudagraph"):
                        if backend not in backends or (backend == "torch-cudagraph" and dev.type != "cuda"):
                            continue
                        fn = _torch_sampler_fn(module, obs_t, noise_t, backend == "torch-cudagraph")
                        t = time_calls(fn, iters, sync=sync)
                        rows.append(
                            dict(
                                backend=f"{backend}:{dev.type}",
                                sampler=sampler,
                                steps=steps,
                                batch=batch,
                                p50_ms=t.p50,
                                p99_ms=t.p99,
                            )
                        )
    return rows


def train_step_overhead(
    denoiser: str,
    batch: int = 256,
    horizon: int = 16,
    action_dim: int = 7,
    obs_dim: int = 20,
    iters: int = 20,
    contraction: dict | None = None,
    device: str = "cpu",
    threads: int = 0,
) -> dict[str, float]:
    """Median training-step time with and without the contraction term on the same batch.

    Both policies share architecture, batch and seed; steps alternate DP / CDP so drift in
    machine load hits both equally. Returns ms per step and the CDP / DP ratio.
    """
    if threads:
        torch.set_num_threads(threads)
    dev = torch.device(device)
    shape = PolicyShape(obs_dim, action_dim, 2, horizon, 8)
    policies, opts = {}, {}
    for name, gamma in (("dp", 0.0), ("cdp", 0.1)):
        cfg = config_from_dict(
            {
                "data": {"horizon": horizon, "n_action_steps": 8},
                "model": {"denoiser": denoiser},
                "contraction": {"gamma": gamma, **(contraction or {})},
            }
        )
        torch.manual_seed(0)
        policies[name] = DiffusionPolicy(cfg, shape).to(dev).train()
        opts[name] = torch.optim.AdamW(policies[name].parameters(), lr=1e-4)
    obs = torch.randn(batch, 2, obs_dim, device=dev)
    action = torch.rand(batch, horizon, action_dim, device=dev) * 2 - 1
    sync = torch.cuda.synchronize if dev.type == "cuda" else None

    counter = {"dp": 0, "cdp": 0}

    def step(name: str) -> None:
        loss = policies[name].compute_loss(obs, action, counter[name])["loss"]
        counter[name] += 1
        opts[name].zero_grad(set_to_none=True)
        loss.backward()
        opts[name].step()

    times: dict[str, list[float]] = {"dp": [], "cdp": []}
    for i in range(iters + 3):
        for name in ("dp", "cdp"):
            if sync:
                sync()
            t0 = time.perf_counter()
            step(name)
            if sync:
                sync()
            if i >= 3:
                times[name].append((time.perf_counter() - t0) * 1e3)
    # mean, not median: with lazy regularisation (contraction.every > 1) the cost comes in bursts
    dp, cdp = statistics.fmean(times["dp"]), statistics.fmean(times["cdp"])
    return {
        "denoiser": denoiser,
        "batch": batch,
        "horizon": horizon,
        "action_dim": action_dim,
        "dp_ms": dp,
        "cdp_ms": cdp,
        "ratio": cdp / dp,
    }


def training_throughput(
    config: str | None,
    overrides: list[str],
    steps: int = 300,
    repeats: int = 2,
    variants: dict[str, list[str]] | None = None,
) -> list[dict[str, float | str]]:
    """Steps/s of the real training loop (:func:`cdp_core.trainer.train`) for each variant of a config.

    ``variants``: name -> extra overrides. Variants run interleaved ``repeats`` times (the median
    is reported), so a machine whose load changes during the benchmark biases none of them.
    """
    from .config import load_config
    from .trainer import train

    variants = variants or {
        "DP, foreach AdamW (before)": ["contraction.gamma=0", "train.fused_optimizer=false"],
        "DP, fused AdamW": ["contraction.gamma=0"],
        "CDP 0.1, foreach AdamW (before)": ["contraction.gamma=0.1", "train.fused_optimizer=false"],
        "CDP 0.1, fused AdamW": ["contraction.gamma=0.1"],
    }
    rates: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(repeats):
        for name, extra in variants.items():
            cfg = load_config(
                config,
                [
                    *overrides,
                    *extra,
                    f"train.steps={steps}",
                    "train.progress=false",
                    f"train.log_every={steps}",
                    f"train.checkpoint_every={steps}",
                ],
            )
            with tempfile.TemporaryDirectory(prefix="cdp_bench_") as tmp:
                rates[name].append(train(cfg, tmp)["steps_per_s"])
    return [
        {
            "variant": name,
            "steps_per_s": statistics.median(r),
            "threads": torch.get_num_threads(),
            "device": cfg.train.device,
        }
        for name, r in rates.items()
    ]
