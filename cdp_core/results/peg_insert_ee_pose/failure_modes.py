"""Where peg_insert policies end their episodes: ``python failure_modes.py MODEL.onnx [...]``.

Each model runs the grid's 20 evaluation seeds; every episode's final tip position is put in
the hole's frame and classified: success, in the hole but short of 20 mm, on the fixture's
top (within its 100 mm square), or beside the fixture.
"""

from __future__ import annotations

import sys

import numpy as np

from cdp_core.sim.env import FR3TaskEnv
from cdp_core.sim.evaluate import evaluate_model
from cdp_core.sim.tasks import PegInsert

SEEDS = list(range(10_000, 10_020))


def classify(rows: list[dict]) -> dict[str, int]:
    env, task = FR3TaskEnv("peg_insert"), PegInsert()
    counts = {"success": 0, "in hole, short": 0, "on fixture top": 0, "beside fixture": 0}
    for r in rows:
        env.reset(r["seed"])
        yaw = env.params["yaw"]
        dx, dy = np.asarray(r["final_offset_mm"][:2]) / 1000
        local = np.abs([np.cos(yaw) * dx + np.sin(yaw) * dy, -np.sin(yaw) * dx + np.cos(yaw) * dy])
        if r["success"]:
            counts["success"] += 1
        elif local.max() <= task.hole_half:
            counts["in hole, short"] += 1
        elif local.max() <= 0.05:
            counts["on fixture top"] += 1
        else:
            counts["beside fixture"] += 1
    return counts


if __name__ == "__main__":
    print("| model | success | in hole, short | on fixture top | beside fixture | median xy miss (mm) |")
    print("|---|---|---|---|---|---|")
    for path in sys.argv[1:]:
        summary = evaluate_model(path, "peg_insert", SEEDS, workers=2)
        rows, label = summary["rows"], f"{summary['action_space']}, gamma {summary['gamma']:g}, {path}"
        c = classify(rows)
        miss = np.median([np.hypot(*r["final_offset_mm"][:2]) for r in rows if not r["success"]] or [np.nan])
        print(
            f"| {label} | {c['success']} | {c['in hole, short']} | {c['on fixture top']} "
            f"| {c['beside fixture']} | {miss:.1f} |",
            flush=True,
        )
