"""``cdp-perception-eval``: task success with perception in the loop vs ground truth (fast path).

    cdp-perception-eval --task peg_insert --policy scripted --episodes 20 \\
        --calibration calibration/sim_eye_to_hand.yaml --out results/peg_scripted

Runs the same seeded episodes twice (ground-truth object pose, then the pose perceived from the
simulated camera with the calibration file), prints both success rates with their 95 % intervals
and the perception error, and writes ``perception_eval.json`` and ``perception_eval.md`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .calibration.result import CalibrationError


def _table(res: dict) -> str:
    lines = [
        "| object pose from | success | 95 % CI | final error (mm, median) | perception error (mm, mean / max) "
        "| detection rate |",
        "|---|---|---|---|---|---|",
    ]
    for name, key in (("ground truth", "ground_truth"), ("perception (camera + calibration)", "perception")):
        s = res[key]
        perc = (
            f"{s['perception_error_mm_mean']:.2f} / {s['perception_error_mm_max']:.2f}"
            if "perception_error_mm_mean" in s
            else "-"
        )
        det = f"{s['detection_rate']:.2f}" if "detection_rate" in s else "-"
        lines.append(
            f"| {name} | {s['success_rate']:.2f} | {s['ci95'][0]:.2f}-{s['ci95'][1]:.2f} "
            f"| {s['final_error_mm_median']:.1f} | {perc} | {det} |"
        )
    p = res["paired"]
    lines += [
        "",
        f"Paired over the same {len(res['seeds'])} seeds: both succeed {p['both']}, only ground truth "
        f"{p['truth_only']}, only perception {p['perception_only']}.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="cdp-perception-eval", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--task", default="peg_insert")
    ap.add_argument("--policy", default="scripted", help="exported .onnx policy, or 'scripted'")
    ap.add_argument("--calibration", default="calibration/sim_eye_to_hand.yaml")
    ap.add_argument(
        "--plane-z",
        type=float,
        default=None,
        help="planar fit height (m); default: the object's resting height; nan: free 6-DOF",
    )
    ap.add_argument("--episodes", type=int, default=20)
    ap.add_argument("--seed", type=int, default=20_000, help="first episode seed")
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--out", default=None, help="folder for perception_eval.json / .md")
    args = ap.parse_args(argv)

    from cdp_core.runtime import ModelContractError
    from cdp_core.sim.tasks import UnknownTaskError, get_task

    from .closed_loop import LoopConfig, evaluate

    try:
        get_task(args.task)
        if args.policy != "scripted" and not Path(args.policy).is_file():
            raise FileNotFoundError(f"policy {args.policy!r} is neither 'scripted' nor an existing .onnx file")
        cfg = LoopConfig(args.task, args.policy, args.calibration, args.plane_z)
        res = evaluate(cfg, list(range(args.seed, args.seed + args.episodes)), args.workers)
    except (UnknownTaskError, CalibrationError, ModelContractError, FileNotFoundError) as exc:
        print(f"cdp-perception-eval: {exc}", file=sys.stderr)
        return 2
    table = _table(res)
    print(table)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "perception_eval.json").write_text(json.dumps(res, indent=2))
        head = (
            f"# {args.task}: perception in the loop vs ground truth\n\npolicy: `{args.policy}`, calibration: "
            f"`{args.calibration}`, planar fit: {res['plane_z']}, {args.episodes} episodes from seed {args.seed}, "
            f"{res['wall_s']:.0f} s wall.\n\n"
        )
        (out / "perception_eval.md").write_text(head + table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
