"""The main job on an embedded default: toy data -> train DP and CDP -> export -> measure -> report.

Until the ROS stack and the simulated FR3 tasks exist, this is what ``README.md``'s first
command runs. Everything lands under one output folder: dataset, runs (checkpoints,
TensorBoard), ONNX models with metadata, ``report.md`` and PNG plots.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from .bench import time_calls
from .checkpoint import load_policy
from .config import config_from_dict
from .data.toy import generate_toy_dataset, toy_start_observations
from .evaluate import action_dispersion, lambda_max_profile
from .export import export_onnx
from .runtime import OnnxPolicy
from .samplers import FixedStepSampler
from .trainer import build_policy_from_data, train

TIMES = [0.01, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9]


def demo_config(data: Path, gamma: float, steps: int) -> dict:
    """The demo's training config: residual-MLP denoiser over 8-step chunks of 2-D actions."""
    return {
        "data": {"path": str(data), "horizon": 8, "n_obs_steps": 2, "n_action_steps": 4},
        "model": {"denoiser": "mlp", "mlp_hidden": 128},
        # the settings models/default/toy_cdp.onnx was trained with (every step, 16 samples)
        "contraction": {"gamma": gamma, "samples": 16, "every": 1},
        "train": {
            "steps": steps,
            "batch_size": 128,
            "lr": 1e-3,
            "warmup_steps": min(100, steps // 10 + 1),
            "log_every": max(1, min(50, steps // 5)),
            "checkpoint_every": max(steps // 2, 1),
        },
        "export": {"sampler": "ddim", "steps": 10},
    }


def run_demo(out: str | Path, steps: int = 1500, episodes: int = 30, quick: bool = False, gamma: float = 0.1) -> Path:
    """Run the whole loop; returns the path of the Markdown report."""
    if quick:
        steps, episodes = min(steps, 60), min(episodes, 6)
    out = Path(out)
    data = generate_toy_dataset(out / "data", episodes, seed=0)
    obs_start = toy_start_observations(16 if not quick else 4, 2)
    results = {}
    for name, g in (("dp", 0.0), ("cdp", gamma)):
        cfg = config_from_dict(demo_config(data, g, steps))
        run = train(cfg, out / "runs" / name)
        model_path = out / "models" / f"{name}.onnx"
        export_onnx(run["checkpoint"], model_path, cfg.export.sampler, cfg.export.steps)
        ort = OnnxPolicy(
            model_path, expect={"obs_keys": run["obs_keys"], "horizon": 8, "action_dim": 2}, intra_op_threads=1
        )
        policy, _ = load_policy(run["checkpoint"])
        _, windows, _ = build_policy_from_data(cfg)
        idx = torch.linspace(0, len(windows) - 1, 24).long()
        prof = lambda_max_profile(policy, windows.obs[idx], windows.action[idx], TIMES, iterations=12)
        disp = action_dispersion(ort, obs_start, ort.noise_shape, seeds=32)
        rng = np.random.default_rng(1)
        o = rng.standard_normal((4, 2, 4)).astype(np.float32)
        nz = rng.standard_normal((4, 8, 2)).astype(np.float32)
        with torch.no_grad():
            ref = FixedStepSampler(policy, "ddim", 10)(torch.from_numpy(o), torch.from_numpy(nz)).numpy()
        parity = float(np.abs(ort(o, nz) - ref).max())
        lat = time_calls(lambda: ort(obs_start[:1]), 200 if not quick else 20)
        chunks = ort(np.repeat(obs_start[:1], 32, 0))
        results[name] = {
            "gamma": g,
            "metrics": run["metrics"],
            "lambda_mean": prof.mean(1).tolist(),
            "lambda_max": prof.max(1).tolist(),
            "dispersion": disp,
            "onnx_parity_max_abs": parity,
            "ort_latency_ms": {"p50": lat.p50, "p99": lat.p99},
            "model": str(model_path),
            "chunks": chunks.tolist(),
        }
    (out / "results.json").write_text(json.dumps(results, indent=2))
    _plots(out, results, obs_start[0])
    return _report(out, results, steps, episodes)


def _plots(out: Path, results: dict, obs0: np.ndarray) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for name, r in results.items():
        axes[0].plot(TIMES, r["lambda_mean"], marker="o", label=f"{name.upper()} mean")
        axes[0].plot(TIMES, r["lambda_max"], ls="--", label=f"{name.upper()} max")
    axes[0].axhline(0, color="k", lw=0.8)
    axes[0].set(xlabel="diffusion time t", ylabel="lambda_max(sym dG/dx) / h", title="contraction (< 0 contracts)")
    axes[0].legend()
    for ax, (name, r) in zip(axes[1:], results.items()):
        for chunk in np.asarray(r["chunks"]):
            ax.plot(chunk[:, 0], chunk[:, 1], alpha=0.5)
        ax.plot(*obs0[-1, :2], "ko", label="agent")
        ax.plot(*obs0[-1, 2:], "r*", ms=12, label="goal")
        ax.set(title=f"{name.upper()}: 32 sampled chunks, one observation", xlabel="x", ylabel="y")
        ax.set_aspect("equal", adjustable="datalim")
        ax.legend()
    fig.tight_layout()
    fig.savefig(out / "demo.png", dpi=110)
    plt.close(fig)


def _report(out: Path, results: dict, steps: int, episodes: int) -> Path:
    dp, cdp = results["dp"], results["cdp"]
    lines = [
        "# CDP demo report (2-D multimodal toy task)",
        "",
        f"{episodes} demonstrations, {steps} training steps each, residual-MLP denoiser, 8-step action chunks; "
        f"exported sampler DDIM x 10 steps (ONNX Runtime CPU, 1 thread).",
        "",
        "| | DP (gamma = 0) | CDP (gamma = %g) |" % cdp["gamma"],
        "|---|---|---|",
        f"| final diffusion loss | {dp['metrics'].get('diffusion_loss', float('nan')):.4f} | "
        f"{cdp['metrics'].get('diffusion_loss', float('nan')):.4f} |",
        f"| lambda_max, mean over t and samples | {np.mean(dp['lambda_mean']):.3f} | {np.mean(cdp['lambda_mean']):.3f} |",
        f"| lambda_max, worst t (mean over samples) | {max(dp['lambda_mean']):.3f} | {max(cdp['lambda_mean']):.3f} |",
        f"| action spread across noise seeds (chunk std) | {dp['dispersion']['chunk_std']:.4f} | "
        f"{cdp['dispersion']['chunk_std']:.4f} |",
        f"| first-action spread across seeds | {dp['dispersion']['first_step_std']:.4f} | "
        f"{cdp['dispersion']['first_step_std']:.4f} |",
        f"| ONNX vs PyTorch max abs error | {dp['onnx_parity_max_abs']:.2e} | {cdp['onnx_parity_max_abs']:.2e} |",
        f"| ORT latency p50 / p99 (ms, batch 1) | {dp['ort_latency_ms']['p50']:.3f} / {dp['ort_latency_ms']['p99']:.3f} | "
        f"{cdp['ort_latency_ms']['p50']:.3f} / {cdp['ort_latency_ms']['p99']:.3f} |",
        "",
        "lambda_max is the largest eigenvalue of the symmetrised Jacobian of the sampling drift divided by h(t); "
        "the sampling flow contracts where it is negative.",
        "",
        "| t | " + " | ".join(f"{t:g}" for t in TIMES) + " |",
        "|---|" + "---|" * len(TIMES),
        "| DP mean lambda_max | " + " | ".join(f"{v:.3f}" for v in dp["lambda_mean"]) + " |",
        "| CDP mean lambda_max | " + " | ".join(f"{v:.3f}" for v in cdp["lambda_mean"]) + " |",
        "",
        "![demo](demo.png)",
        "",
        f"Models: `{dp['model']}`, `{cdp['model']}` (metadata: `cdp inspect MODEL`).",
    ]
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path
