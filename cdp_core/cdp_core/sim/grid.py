"""``cdp grid``: DP vs CDP x demonstrations x seeds x sampling steps on one task, with a report.

Resumable: trained runs, exported models and evaluated cells are kept in the work folder
and skipped when the grid is run again, so a killed grid continues where it stopped. The
report folder gets only what people read (Markdown, PNG plots, results.json), never weights.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..checkpoint import read_checkpoint
from ..config import load_config
from ..data.episodes import write_json_atomic
from ..export import export_onnx
from ..trainer import train
from .actions import check_action_space
from .demos import generate_demos
from .evaluate import evaluate_model
from .tasks import get_task


@dataclass
class GridConfig:
    """What one comparison grid covers."""

    task: str
    demos: list[int] = field(default_factory=lambda: [5, 10, 25, 50])
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    steps: list[int] = field(default_factory=lambda: [1, 2, 4, 8, 16])
    gammas: list[float] = field(default_factory=lambda: [0.0, 0.1])
    sampler: str = "ddim"
    episodes: int = 50
    #: Run the open-loop convergence gate on every trained run (held-out demos shared by the grid).
    gate: bool = True
    train_config: str | None = None
    train_overrides: list[str] = field(default_factory=list)
    workers: int = 0
    eval_seed: int = 10_000
    #: What the policies output: "joint_position" targets or "ee_pose" TCP targets (through IK).
    action_space: str = "joint_position"


def _cell_key(gamma: float, demos: int, seed: int, steps: int) -> str:
    return f"gamma={gamma:g}/demos={demos}/seed={seed}/steps={steps}"


def run_grid(cfg: GridConfig, work: str | Path, report_dir: str | Path, progress: bool = True) -> Path:
    """Run (or continue) the grid; returns the path of the Markdown report."""
    task = get_task(cfg.task)  # unknown task: error before anything runs
    check_action_space(cfg.action_space)
    work, report_dir = Path(work), Path(report_dir)
    work.mkdir(parents=True, exist_ok=True)
    report_dir.mkdir(parents=True, exist_ok=True)
    data = work / "demos"
    if (data / "meta.json").exists():
        have = json.loads((data / "meta.json").read_text()).get("action_space", "joint_position")
        if have != cfg.action_space:  # a resumed grid must not mix the two
            raise ValueError(
                f"{data} holds {have} demonstrations, the grid asks for {cfg.action_space}: use another --work folder"
            )
    if not (data / "meta.json").exists() or len(list((data / "episodes").glob("*.npz"))) < max(cfg.demos):
        generate_demos(cfg.task, data, max(cfg.demos), seed=0, progress=progress, action_space=cfg.action_space)
    results_path = report_dir / "results.json"
    results: dict[str, Any] = json.loads(results_path.read_text()) if results_path.exists() else {}
    results["grid"] = asdict(cfg)
    cells: dict[str, Any] = results.setdefault("cells", {})
    eval_seeds = list(range(cfg.eval_seed, cfg.eval_seed + cfg.episodes))
    for gamma in cfg.gammas:
        for n in cfg.demos:
            for seed in cfg.seeds:
                if all(_cell_key(gamma, n, seed, s) in cells for s in cfg.steps):
                    continue
                run_dir = work / "runs" / f"gamma{gamma:g}_demos{n}_seed{seed}"
                overrides = [
                    f"data.path={data}",
                    f"data.max_episodes={n}",
                    f"contraction.gamma={gamma}",
                    f"train.seed={seed}",
                    *cfg.train_overrides,
                ]
                train_cfg = load_config(cfg.train_config, overrides)
                latest = run_dir / "checkpoints" / "latest.pt"
                if not latest.exists() or read_checkpoint(latest)["step"] < train_cfg.train.steps:
                    train(train_cfg, run_dir, resume=latest.exists())
                gate = _gate(cfg, latest, run_dir, work)
                for steps in cfg.steps:
                    key = _cell_key(gamma, n, seed, steps)
                    if key in cells:
                        continue
                    model = work / "models" / f"gamma{gamma:g}_demos{n}_seed{seed}_{cfg.sampler}{steps}.onnx"
                    if not model.exists():
                        export_onnx(latest, model, cfg.sampler, steps)
                    summary = evaluate_model(str(model), cfg.task, eval_seeds, workers=cfg.workers)
                    rows = summary.pop("rows")
                    # per-episode outcomes, in eval-seed order: what the paired test compares
                    summary["successes"] = [bool(r["success"]) for r in rows]
                    cells[key] = {"gamma": gamma, "demos": n, "seed": seed, **summary, "gate": gate}
                    write_json_atomic(results_path, results)
    write_json_atomic(results_path, results)
    write_plots(cells, cfg, report_dir)
    return write_report(cells, cfg, report_dir, task.spec.name)


def _gate(cfg: GridConfig, checkpoint: Path, run_dir: Path, work: Path) -> dict[str, Any] | None:
    """The convergence gate of one run (stored as RUN/gate.json; None when disabled or not applicable)."""
    if not cfg.gate:
        return None
    from ..convergence import GateError
    from ..gate import GATE_FILE, gate_checkpoint, store_report, stored_report

    have = stored_report(checkpoint)
    if have is not None:
        return have
    try:
        report = gate_checkpoint(checkpoint, workdir=work / "gate")
    except GateError:
        return None
    store_report(report, run_dir / GATE_FILE, checkpoint)
    return report.to_dict()


def paired_test(cells: dict[str, Any], gamma: float, demos: int, steps: int) -> dict[str, float] | None:
    """Exact McNemar test of CDP (``gamma``) against DP on the same training seeds and episode seeds.

    Pairs are (training seed, episode seed); ``b``: CDP succeeded where DP failed, ``c``: the
    reverse. Returns b, c, the paired difference in success rate and the two-sided p-value,
    or None when no pair is available (cells from before per-episode outcomes were stored).
    """
    from scipy.stats import binomtest

    b = c = pairs = 0
    for cell in cells.values():
        if cell["gamma"] != gamma or cell["demos"] != demos or cell["steps"] != steps:
            continue
        dp = cells.get(_cell_key(0.0, demos, cell["seed"], steps))
        if dp is None or "successes" not in cell or "successes" not in dp:
            continue
        for x, y in zip(cell["successes"], dp["successes"]):
            b += x and not y
            c += y and not x
            pairs += 1
    if not pairs:
        return None
    p = binomtest(min(b, c), b + c, 0.5).pvalue if b + c else 1.0
    return {"b": b, "c": c, "pairs": pairs, "diff": (b - c) / pairs, "p": float(p)}


def _aggregate(cells: dict[str, Any], gamma: float, demos: int, steps: int, metric: str) -> tuple[float, float]:
    vals = [
        c[metric]
        for c in cells.values()
        if c["gamma"] == gamma and c["demos"] == demos and c["steps"] == steps and c[metric] is not None
    ]
    return (float(np.mean(vals)), float(np.std(vals))) if vals else (float("nan"), float("nan"))


def write_plots(cells: dict[str, Any], cfg: GridConfig, out: Path) -> None:
    """success vs demonstrations, success vs steps, dispersion vs demonstrations (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    top = max(cfg.steps)
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.5))
    for gamma in cfg.gammas:
        label = "DP" if gamma == 0 else f"CDP (gamma={gamma:g})"
        s = [_aggregate(cells, gamma, n, top, "success_rate") for n in cfg.demos]
        axes[0].errorbar(cfg.demos, [m for m, _ in s], yerr=[e for _, e in s], marker="o", capsize=3, label=label)
        for n in cfg.demos:
            st = [_aggregate(cells, gamma, n, k, "success_rate")[0] for k in cfg.steps]
            axes[1].plot(cfg.steps, st, marker="o", ls="-" if gamma == 0 else "--", label=f"{label}, {n} demos")
        d = [_aggregate(cells, gamma, n, top, "dispersion_rad") for n in cfg.demos]
        axes[2].errorbar(cfg.demos, [m for m, _ in d], yerr=[e for _, e in d], marker="o", capsize=3, label=label)
    axes[0].set(
        xlabel="demonstrations",
        ylabel="success rate",
        title=f"success vs demos ({cfg.sampler} x {top})",
        ylim=(-0.05, 1.05),
    )
    axes[1].set(
        xlabel="sampling steps", ylabel="success rate", title="success vs steps", xscale="log", ylim=(-0.05, 1.05)
    )
    axes[1].set_xticks(cfg.steps, [str(k) for k in cfg.steps])
    axes[2].set(
        xlabel="demonstrations",
        ylabel="std of executed joint targets (rad)",
        title="action dispersion across noise seeds",
    )
    for ax in axes:
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "grid.png", dpi=110)
    plt.close(fig)


def _pooled_ci(cells: dict[str, Any], gamma: float, demos: int, steps: int) -> tuple[float, float]:
    from .evaluate import wilson_interval

    group = [c for c in cells.values() if c["gamma"] == gamma and c["demos"] == demos and c["steps"] == steps]
    wins = sum(round(c["success_rate"] * c["episodes"]) for c in group)
    return wilson_interval(wins, sum(c["episodes"] for c in group))


def write_report(cells: dict[str, Any], cfg: GridConfig, out: Path, task: str) -> Path:
    """Markdown table: per gamma x demos x steps, mean over seeds (std over seeds when there are several)."""
    lines = [
        f"# DP vs CDP on `{task}`",
        "",
        f"Grid: gamma {cfg.gammas} x demos {cfg.demos} x seeds {cfg.seeds} x {cfg.sampler} steps {cfg.steps}; "
        f"{cfg.episodes} seeded evaluation episodes per cell. Training config: {cfg.train_config or 'defaults'}, "
        f"overrides: {cfg.train_overrides or 'none'}. Actions: {cfg.action_space}. "
        "The 95 % interval pools the episodes of all seeds. Dispersion: std of the executed joint targets "
        "across sampler noise seeds.",
        "",
        "| policy | demos | steps | success | 95 % CI | final error (mm, median) | dispersion (rad) | episodes/min |",
        "|---|---|---|---|---|---|---|---|",
    ]
    several = len(cfg.seeds) > 1
    for gamma in cfg.gammas:
        name = "DP" if gamma == 0 else f"CDP {gamma:g}"
        for n in cfg.demos:
            for k in cfg.steps:
                s, s_sd = _aggregate(cells, gamma, n, k, "success_rate")
                lo, hi = _pooled_ci(cells, gamma, n, k)
                e, _ = _aggregate(cells, gamma, n, k, "final_error_mm_median")
                d, _ = _aggregate(cells, gamma, n, k, "dispersion_rad")
                r, _ = _aggregate(cells, gamma, n, k, "episodes_per_minute")
                success = f"{s:.2f} ({s_sd:.2f})" if several else f"{s:.2f}"
                lines.append(f"| {name} | {n} | {k} | {success} | {lo:.2f}-{hi:.2f} | {e:.1f} | {d:.4f} | {r:.0f} |")
    lines += [
        "",
        "Paired comparison, CDP vs DP (exact McNemar on the same training and episode seeds; "
        "b: only CDP succeeded, c: only DP):",
        "",
        "| policy | demos | steps | pairs | b | c | CDP - DP | p |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for gamma in cfg.gammas:
        if gamma == 0 or 0.0 not in cfg.gammas:
            continue
        for n in cfg.demos:
            for k in cfg.steps:
                t = paired_test(cells, gamma, n, k)
                if t is not None:
                    lines.append(
                        f"| CDP {gamma:g} | {n} | {k} | {t['pairs']} | {t['b']} | {t['c']} | "
                        f"{100 * t['diff']:+.1f} pts | {t['p']:.3f} |"
                    )
    gates = sorted({(c["gamma"], c["demos"], c["seed"]): c.get("gate") for c in cells.values()}.items())
    if any(g for _, g in gates):
        lines += [
            "",
            "Convergence gate per training run (open loop, held-out demos, mm at the TCP):",
            "",
            "| gamma | demos | seed | action error | scatter | passed |",
            "|---|---|---|---|---|---|",
        ]
        for (g, n, seed), rep in gates:
            if rep:
                lines.append(
                    f"| {g:g} | {n} | {seed} | {rep['action_error_mm']:.2f} | {rep['scatter_mm']:.2f} | "
                    f"{'yes' if rep['passed'] else 'NO'} |"
                )
    lines += ["", "![grid](grid.png)", ""]
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path
