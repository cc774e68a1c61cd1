"""Plot recipes.json (success and convergence gate vs training budget) as recipes.png.

Run from the repository root: .venv/bin/python cdp_core/results/recipes/make_plot.py
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

HERE = Path(__file__).resolve().parent


def main() -> None:
    rows = json.loads((HERE / "recipes.json").read_text())["rows"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for (task, gamma), style in {
        ("reach_precise", 0.0): "o-",
        ("reach_precise", 0.1): "s--",
        ("peg_insert", 0.0): "^-",
        ("peg_insert", 0.1): "v--",
    }.items():
        sel = sorted((r for r in rows if r["task"] == task and r["gamma"] == gamma), key=lambda r: r["train_steps"])
        if not sel:
            continue
        label = f"{task} {'DP' if gamma == 0 else 'CDP'} ({sel[0]['demos']} demos)"
        x = [r["train_steps"] for r in sel]
        ok = [r for r in sel if r.get("success_rate") is not None]
        axes[0].errorbar(
            [r["train_steps"] for r in ok],
            [r["success_rate"] for r in ok],
            yerr=[[r["success_rate"] - r["ci95"][0] for r in ok], [r["ci95"][1] - r["success_rate"] for r in ok]],
            fmt=style,
            capsize=3,
            label=label,
        )
        axes[1].plot(x, [r.get("gate_scatter_mm") for r in sel], style, label=label)
        axes[2].plot(x, [r.get("gate_error_mm") for r in sel], style, label=label)
    axes[0].set(
        xlabel="training steps (full cosine schedule)",
        ylabel="fast-path success (95 % Wilson CI)",
        ylim=(-0.05, 1.05),
        title="closed-loop success vs budget",
    )
    axes[1].set(xlabel="training steps", ylabel="mm at the TCP", title="gate: sample scatter (held-out, final phase)")
    axes[2].set(xlabel="training steps", ylabel="mm at the TCP", title="gate: open-loop action error")
    for ax, lim in zip(axes[1:], (3.0, 4.0)):
        ax.axhline(lim, color="k", lw=0.8, ls=":", label="gate threshold")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(HERE / "recipes.png", dpi=110)


if __name__ == "__main__":
    main()
