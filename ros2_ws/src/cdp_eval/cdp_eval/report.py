"""``cdp-eval-report OUTPUT_FOLDER``: Markdown + PNG report of a protocol's results (no ROS here).

Success per policy with 95 % Wilson intervals; a paired comparison on the shared seeds (exact
McNemar test on the discordant pairs: trials where exactly one policy succeeded); precision
(final tip error), time to success, policy latency and safety-filter interventions per trial.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np

from .results import RESULTS_FILE, read_results


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    from cdp_core.sim.evaluate import wilson_interval as wilson

    return wilson(successes, n, z)


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value: discordant pairs b (only A succeeded) and c (only B), Binomial(b+c, 1/2)."""
    if b < 0 or c < 0:
        raise ValueError(f"discordant counts must be >= 0, got {b}, {c}")
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(b, c) + 1)) / 2**n
    return min(1.0, 2.0 * tail)


def _median(xs: list[float]) -> float | None:
    xs = [x for x in xs if x is not None]
    return float(np.median(xs)) if xs else None


def _fmt(x: float | None, spec: str = ".1f") -> str:
    return "-" if x is None else format(x, spec)


def policy_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    n = len(rows)
    k = sum(bool(r["success"]) for r in rows)
    lo, hi = wilson_interval(k, n)
    errors = [r["final_error_mm"] for r in rows if r.get("final_error_mm") is not None]
    tts = [r["time_to_success_s"] for r in rows if r.get("time_to_success_s") is not None]
    return {
        "trials": n,
        "successes": k,
        "success_rate": k / n if n else 0.0,
        "ci95": [lo, hi],
        "final_error_mm_median": _median(errors),
        "final_error_mm_iqr": [float(np.percentile(errors, 25)), float(np.percentile(errors, 75))] if errors else None,
        "time_to_success_s_median": _median(tts),
        "policy_latency_p50_ms_median": _median([r.get("policy_latency_p50_ms") for r in rows]),
        "policy_latency_p99_ms_max": max(
            (r["policy_latency_p99_ms"] for r in rows if r.get("policy_latency_p99_ms") is not None), default=None
        ),
        "obs_to_chunk_p50_ms_median": _median([r.get("obs_to_chunk_p50_ms") for r in rows]),
        "load_avg_1min_median": _median([r.get("load_avg_1min") for r in rows]),
        "interventions_per_trial_mean": float(np.mean([r.get("interventions", 0) for r in rows])) if n else None,
        "intervention_messages_per_trial_mean": float(np.mean([r.get("intervention_messages", 0) for r in rows]))
        if n
        else None,
    }


def paired(rows: list[dict[str, Any]], a: str, b: str) -> dict[str, Any]:
    """Trials run by both policies (same trial index = same seed): the 2x2 table and McNemar's test."""
    by = {(r["trial"], r["policy"]): r for r in rows}
    trials = sorted({t for t, p in by if p == a} & {t for t, p in by if p == b})
    both = only_a = only_b = neither = 0
    error_diffs = []
    for t in trials:
        ra, rb = by[(t, a)], by[(t, b)]
        if ra["seed"] != rb["seed"]:
            raise ValueError(f"trial {t}: {a} ran seed {ra['seed']}, {b} seed {rb['seed']}: not paired")
        sa, sb = bool(ra["success"]), bool(rb["success"])
        both += sa and sb
        only_a += sa and not sb
        only_b += sb and not sa
        neither += not sa and not sb
        if ra.get("final_error_mm") is not None and rb.get("final_error_mm") is not None:
            error_diffs.append(ra["final_error_mm"] - rb["final_error_mm"])
    return {
        "a": a,
        "b": b,
        "pairs": len(trials),
        "both": both,
        "only_a": only_a,
        "only_b": only_b,
        "neither": neither,
        "mcnemar_p": mcnemar_exact(only_a, only_b),
        "success_rate_difference": (only_a - only_b) / len(trials) if trials else None,
        "final_error_diff_mm_median": _median(error_diffs),
        "a_more_precise_pairs": sum(d < 0 for d in error_diffs),
        "error_pairs": len(error_diffs),
    }


def summarize(rows: list[dict[str, Any]], policies: list[str]) -> dict[str, Any]:
    per = {p: policy_summary([r for r in rows if r["policy"] == p]) for p in policies}
    pairs = [paired(rows, a, b) for a, b in combinations(policies, 2)]
    return {"policies": per, "paired": pairs}


def write_plots(rows: list[dict[str, Any]], policies: list[str], summary: dict[str, Any], out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    rng = np.random.default_rng(0)
    files = []

    fig, ax = plt.subplots(figsize=(1.6 + 1.4 * len(policies), 4))
    for i, p in enumerate(policies):
        s = summary["policies"][p]
        lo, hi = s["ci95"]
        ax.bar(i, s["success_rate"], color=colors[i % len(colors)], alpha=0.8)
        ax.errorbar(
            i, s["success_rate"], yerr=[[s["success_rate"] - lo], [hi - s["success_rate"]]], color="k", capsize=6
        )
        ax.text(i, hi + 0.02, f"{s['successes']}/{s['trials']}", ha="center", fontsize=9)
    ax.set_xticks(range(len(policies)), policies)
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("success rate (95 % Wilson CI)")
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    fig.savefig(out / "success.png", dpi=110)
    plt.close(fig)
    files.append("success.png")

    metrics = [
        ("final_error_mm", "final tip error (mm)", True),
        ("time_to_success_s", "time to success (s)", False),
        ("policy_latency_p50_ms", "policy inference p50 (ms)", False),
        ("policy_latency_p99_ms", "policy inference p99 (ms)", False),
        ("interventions", "safety-filter interventions / trial", False),
    ]
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.3 * len(metrics), 4))
    for ax, (key, label, log) in zip(axes, metrics):
        for i, p in enumerate(policies):
            ys = [r[key] for r in rows if r["policy"] == p and r.get(key) is not None]
            if ys:
                ax.boxplot([ys], positions=[i], widths=0.5, showfliers=False)
                ax.scatter(
                    i + rng.uniform(-0.15, 0.15, len(ys)), ys, s=12, color=colors[i % len(colors)], alpha=0.7, zorder=3
                )
        ax.set_xticks(range(len(policies)), policies)
        ax.set_title(label, fontsize=10)
        if log:
            ax.set_yscale("log")
        ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    fig.savefig(out / "per_trial.png", dpi=110)
    plt.close(fig)
    files.append("per_trial.png")

    if len(policies) >= 2:
        a, b = policies[0], policies[1]
        by = {(r["trial"], r["policy"]): r for r in rows}
        trials = sorted({t for t, p in by if p == a} & {t for t, p in by if p == b})
        pts = [
            (
                by[(t, a)].get("final_error_mm"),
                by[(t, b)].get("final_error_mm"),
                by[(t, a)]["success"],
                by[(t, b)]["success"],
            )
            for t in trials
        ]
        pts = [p for p in pts if p[0] is not None and p[1] is not None]
        if pts:
            fig, ax = plt.subplots(figsize=(4.6, 4.4))
            style = {
                (True, True): ("both succeeded", "tab:green"),
                (True, False): (f"only {a}", "tab:blue"),
                (False, True): (f"only {b}", "tab:orange"),
                (False, False): ("neither", "tab:gray"),
            }
            for key, (lab, col) in style.items():
                sel = [(x, y) for x, y, sa, sb in pts if (bool(sa), bool(sb)) == key]
                if sel:
                    ax.scatter(*zip(*sel), label=f"{lab} ({len(sel)})", color=col, s=22)
            lim = [min(min(p[0], p[1]) for p in pts) * 0.8, max(max(p[0], p[1]) for p in pts) * 1.2]
            ax.plot(lim, lim, "k--", lw=0.8)
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel(f"{a}: final error (mm)")
            ax.set_ylabel(f"{b}: final error (mm)")
            ax.set_title("paired trials (same seed)", fontsize=10)
            ax.legend(fontsize=7)
            ax.grid(alpha=0.3)
            fig.tight_layout()
            fig.savefig(out / "paired.png", dpi=110)
            plt.close(fig)
            files.append("paired.png")
    return files


def write_report(
    folder: str | Path, out: str | Path | None = None, title: str | None = None, partial_note: str = ""
) -> Path:
    """Read ``folder/results.jsonl`` (+ protocol.json), write report.md, summary.json and PNGs to ``out``."""
    folder = Path(folder)
    out = Path(out) if out else folder
    out.mkdir(parents=True, exist_ok=True)
    rows = read_results(folder / RESULTS_FILE)
    if not rows:
        raise ValueError(f"{folder / RESULTS_FILE} holds no trials")
    meta_path = folder / "protocol.json"
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    proto = meta.get("protocol", {})
    policies = list(proto.get("policies") or dict.fromkeys(r["policy"] for r in rows))
    planned = int(proto.get("trials", 0))
    summary = summarize(rows, policies)
    files = write_plots(rows, policies, summary, out)
    complete = planned and all(summary["policies"][p]["trials"] >= planned for p in policies)
    lines = [f"# {title or proto.get('name', folder.name)}", ""]
    if not complete:
        lines += [
            f"**PARTIAL RESULTS**: {sum(s['trials'] for s in summary['policies'].values())} of "
            f"{planned * len(policies)} planned trials recorded. {partial_note}".rstrip(),
            "",
        ]
    lines += [
        f"Task `{proto.get('task', '?')}`, {planned} trials per policy planned, interleaving "
        f"{proto.get('interleaving', '?')}, time limit {proto.get('time_limit_s') or 'task default'}"
        f"{' s' if proto.get('time_limit_s') else ''}, {'simulation' if proto.get('use_sim', True) else 'real robot'}. "
        f"Trial *i* of every policy uses the same seed (object placement and home configuration). "
        f"Protocol hash `{meta.get('protocol_hash', rows[0].get('protocol_hash'))}`.",
        "",
        "## Policies",
        "",
        "| policy | model | SHA-256 (first 16) |",
        "| --- | --- | --- |",
    ]
    for p in policies:
        m = meta.get("models", {}).get(p, {})
        lines.append(f"| {p} | `{m.get('path', '?')}` | `{str(m.get('sha256', '?'))[:16]}` |")
    lines += [
        "",
        "## Success",
        "",
        "| policy | trials | successes | success rate | 95 % Wilson CI | final error median "
        "(IQR), mm | time to success median, s |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for p in policies:
        s = summary["policies"][p]
        iqr = s["final_error_mm_iqr"]
        lines.append(
            f"| {p} | {s['trials']} | {s['successes']} | {100 * s['success_rate']:.0f} % | "
            f"{100 * s['ci95'][0]:.0f}-{100 * s['ci95'][1]:.0f} % | {_fmt(s['final_error_mm_median'])}"
            + (f" ({iqr[0]:.1f}-{iqr[1]:.1f})" if iqr else "")
            + f" | {_fmt(s['time_to_success_s_median'], '.2f')} |"
        )
    lines += [
        "",
        "![success](success.png)",
        "",
        "## Paired comparison (same seeds)",
        "",
        "Exact McNemar test: under 'no difference', each discordant pair (exactly one policy succeeded) "
        "is equally likely to favour either policy; p is the two-sided binomial tail.",
        "",
        "| A vs B | pairs | both | only A | only B | neither | McNemar exact p | median final error A-B, mm | "
        "pairs where A is more precise |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for c in summary["paired"]:
        lines.append(
            f"| {c['a']} vs {c['b']} | {c['pairs']} | {c['both']} | {c['only_a']} | {c['only_b']} | "
            f"{c['neither']} | {c['mcnemar_p']:.3g} | {_fmt(c['final_error_diff_mm_median'], '+.1f')} | "
            f"{c['a_more_precise_pairs']}/{c['error_pairs']} |"
        )
    if "paired.png" in files:
        lines += ["", "![paired](paired.png)"]
    lines += [
        "",
        "## Per trial: precision, time, latency, interventions",
        "",
        "| policy | policy inference p50 (median over trials), ms | inference p99 (max), ms | "
        "observation -> chunk received p50, ms | interventions / trial (mean) | intervention messages / trial "
        "(~0.5 s each) | machine load (1 min, median) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for p in policies:
        s = summary["policies"][p]
        lines.append(
            f"| {p} | {_fmt(s['policy_latency_p50_ms_median'])} | {_fmt(s['policy_latency_p99_ms_max'])} | "
            f"{_fmt(s['obs_to_chunk_p50_ms_median'])} | {_fmt(s['interventions_per_trial_mean'], '.2f')} | "
            f"{_fmt(s['intervention_messages_per_trial_mean'], '.2f')} | {_fmt(s['load_avg_1min_median'])} |"
        )
    lines += [
        "",
        "![per trial](per_trial.png)",
        "",
        "Inference latency is the policy node's own (rolling window of its last 200 inferences, read from "
        "/diagnostics at the end of each trial; the node restarts whenever the policy changes). An "
        "intervention is an onset of a /safety/intervention reason (after 'none').",
        "",
        "## Trials",
        "",
        "| # | trial | policy | seed | outcome | final error, mm | time to success, s | "
        "interventions | inference p50/p99, ms |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for n, r in enumerate(rows, 1):
        lines.append(
            f"| {n} | {r['trial'] + 1} | {r['policy']} | {r['seed']} | {r['outcome']} | "
            f"{_fmt(r.get('final_error_mm'))} | {_fmt(r.get('time_to_success_s'), '.2f')} | "
            f"{r.get('interventions', '-')} | {_fmt(r.get('policy_latency_p50_ms'))}/"
            f"{_fmt(r.get('policy_latency_p99_ms'))} |"
        )
    sw = meta.get("software") or rows[-1].get("software") or {}
    if sw:
        lines += ["", "## Software", "", ", ".join(f"{k} {v}" for k, v in sw.items())]
    (out / "summary.json").write_text(
        json.dumps({"protocol_hash": meta.get("protocol_hash"), "complete": bool(complete), **summary}, indent=2)
    )
    md = out / "report.md"
    md.write_text("\n".join(lines) + "\n")
    return md


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cdp-eval-report", description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="a protocol's output folder (results.jsonl, protocol.json)")
    parser.add_argument("--out", help="write the report here (default: the folder itself)")
    parser.add_argument("--note", default="", help="a note added to a partial report")
    args = parser.parse_args(argv)
    try:
        md = write_report(args.folder, args.out, partial_note=args.note)
    except (ValueError, OSError) as exc:
        print(f"cdp-eval-report: {exc}", file=sys.stderr)
        return 2
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
