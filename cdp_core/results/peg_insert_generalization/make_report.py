"""Collect the peg_insert generalization runs (outputs/r13b, gitignored) into results.json and a plot.

Every row: DP (gamma 0), residual MLP 512 x 4, 50 scripted demos (seed 0), 12,000 steps (the
converged schedule, cosine annealed to 0), training seed 0, DDIM 8, fast path, 40 episodes.
Run from the repository root: .venv/bin/python cdp_core/results/peg_insert_generalization/make_report.py
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

HERE = Path(__file__).parent
RUNS = Path("outputs/r13b")
#: (label, eval file, what differs from the bundled recipe)
ROWS = [
    ("bundled CDP 24k, training placements", "bundled24k_trainseeds.json", "seeds 0-39 = demo placements"),
    ("bundled CDP 24k, new placements", None, "models/peg_insert/cdp_peg_24k_fast_path_eval.txt"),
    ("+ hole offset obs", "off_abs_eval40.json", "obs + hole_pose_offset"),
    ("+ offset, DDIM 16", "off_abs_d16_eval40.json", "same checkpoint, 16 steps"),
    ("+ offset, chunk-relative joints", "off_rel_eval40.json", "action_representation relative"),
    ("TCP-pose actions", "ee_nooff_eval40.json", "action space ee_pose"),
    ("TCP-pose + offset", "ee_off_eval40.json", "ee_pose + hole_pose_offset"),
    ("+ offset, miss-and-recover 50 %", "off_miss0.5_eval40.json", "demos --miss-prob 0.5"),
    ("+ offset, miss-and-recover 100 %", "off_miss1.0_eval40.json", "demos --miss-prob 1.0"),
    ("translation-invariant DP", "inv_dp_eval40.json", "ee_pose relative; obs ee_pos, ee_quat, offset, hole quat"),
    ("translation-invariant CDP 0.1", "inv_cdp_eval40.json", "same, gamma 0.1"),
]


def load(name: str | None, fallback: str) -> dict | None:
    path = RUNS / name if name else Path(fallback)
    if not path.is_file():
        return None
    text = path.read_text()
    return json.loads(text[text.index("{") :])


def main() -> None:
    rows = []
    for label, name, note in ROWS:
        d = load(name, note)
        if d is None:
            continue
        rows.append(
            {
                "label": label,
                "note": note,
                "episodes": d["episodes"],
                "successes": round(d["success_rate"] * d["episodes"]),
                "success_rate": d["success_rate"],
                "ci95": d["ci95"],
                "final_error_mm_median": d["final_error_mm_median"],
                "dispersion_rad": d["dispersion_rad"],
            }
        )
    (HERE / "results.json").write_text(json.dumps(rows, indent=2))
    fig, ax = plt.subplots(figsize=(9, 4.5))
    y = range(len(rows))
    rates = [100 * r["success_rate"] for r in rows]
    lo = [100 * (r["success_rate"] - r["ci95"][0]) for r in rows]
    hi = [100 * (r["ci95"][1] - r["success_rate"]) for r in rows]
    ax.barh(list(y), rates, xerr=[lo, hi], color=["#999"] + ["#4a7"] * (len(rows) - 1), capsize=3)
    ax.set_yticks(list(y), [f"{r['label']} ({r['successes']}/{r['episodes']})" for r in rows])
    ax.invert_yaxis()
    ax.set_xlabel("fast-path success, % (95 % Wilson CI)")
    ax.set_xlim(0, 100)
    ax.set_title("peg_insert, 50 demos, DP 12k unless noted: new placements (seeds 100000-39)")
    fig.tight_layout()
    fig.savefig(HERE / "generalization.png", dpi=120)
    for r in rows:
        print(f"{r['label']:<40} {r['successes']:>2}/{r['episodes']}  median {r['final_error_mm_median']:.1f} mm")


if __name__ == "__main__":
    main()
