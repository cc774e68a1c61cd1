"""``cdp-preflight``: run the checks, print a table (or JSON), exit 0 only when nothing failed.

Exit status: 0 all checks passed (warnings allowed), 1 at least one failed, 2 bad arguments.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from .preflight import FAIL, PASS, SKIP, WARN, PreflightConfig, passed, planned_checks, run_preflight

STYLE = {PASS: "bold green", WARN: "bold yellow", FAIL: "bold red", SKIP: "dim"}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="cdp-preflight",
        description=(
            "Check this host before the arm moves. Robot mode (default): real-time kernel and scheduling, CPU "
            "governor, ROS 2, libfranka bindings, robot via FCI, GPU + ONNX Runtime, camera, calibration, model. "
            "--sim: what the simulated stack needs."
        ),
    )
    p.add_argument("--sim", action="store_true", help="check what simulation needs (no robot, camera, GPU, RT)")
    p.add_argument(
        "--robot-ip",
        default=os.environ.get("ROBOT_IP", PreflightConfig.robot_ip),
        help="FCI address of the arm (default: $ROBOT_IP or %(default)s)",
    )
    p.add_argument(
        "--backend",
        choices=["franky", "pylibfranka"],
        default="",
        help="franka_driver backend whose binding is checked (default: the graph's, launch/config/stack.yaml)",
    )
    p.add_argument(
        "--connect-timeout",
        type=float,
        default=PreflightConfig.connect_timeout_s,
        metavar="S",
        help="seconds to wait for the arm's FCI port",
    )
    p.add_argument("--model", default="", help="exported policy (.onnx); default: launch/graph.yaml's model")
    p.add_argument("--task", default="", help="task the model must fit; default: launch/graph.yaml's task")
    p.add_argument("--calibration", default=PreflightConfig.calibration, help="hand-eye calibration YAML")
    p.add_argument(
        "--max-calibration-age-h",
        type=float,
        default=PreflightConfig.max_calibration_age_h,
        metavar="H",
        help="older calibrations fail (default %(default)s h, perception_node's limit)",
    )
    p.add_argument("--camera-serial", default="", help="RealSense serial the stack uses (default: any)")
    p.add_argument("--no-camera", action="store_true", help="a missing camera is a warning, not a failure")
    p.add_argument("--no-gpu", action="store_true", help="a missing GPU is a warning (the policy runs on the CPU)")
    p.add_argument("--skip", action="append", default=[], metavar="CHECK", help="do not run CHECK (repeatable)")
    p.add_argument("--json", action="store_true", help="print a JSON report instead of the table")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        cfg = PreflightConfig(
            mode="sim" if args.sim else "robot",
            robot_ip=args.robot_ip,
            backend=args.backend,
            connect_timeout_s=args.connect_timeout,
            model=args.model,
            task=args.task,
            calibration=args.calibration,
            max_calibration_age_h=args.max_calibration_age_h,
            camera_serial=args.camera_serial,
            require_camera=not args.no_camera,
            require_gpu=not args.no_gpu,
            skip=tuple(args.skip),
        )
    except ValueError as exc:
        print(f"cdp-preflight: {exc}", file=sys.stderr)
        return 2
    known = {name for name, _ in planned_checks(cfg)}
    unknown = sorted(set(cfg.skip) - known)
    if unknown:
        print(f"cdp-preflight: unknown check(s) {unknown} for mode {cfg.mode}; known: {sorted(known)}", file=sys.stderr)
        return 2

    if args.json:
        results = run_preflight(cfg)
        ok = passed(results)
        print(
            json.dumps(
                {
                    "mode": cfg.mode,
                    "ok": ok,
                    "robot_ip": cfg.robot_ip if cfg.mode == "robot" else None,
                    "model": cfg.model,
                    "task": cfg.task,
                    "checks": [r.to_dict() for r in results],
                },
                indent=2,
            )
        )
        return 0 if ok else 1

    from rich.console import Console
    from rich.table import Table

    console = Console()
    with console.status(f"cdp-preflight ({cfg.mode}) running checks..."):
        results = run_preflight(cfg)
    table = Table(
        title=f"cdp-preflight: {cfg.mode} mode" + (f", robot {cfg.robot_ip}" if cfg.mode == "robot" else ""),
        show_lines=True,
        expand=True,
    )
    table.add_column("check", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("found", ratio=3, overflow="fold")
    table.add_column("fix", ratio=2, overflow="fold")
    for r in results:
        table.add_row(r.name, f"[{STYLE[r.status]}]{r.status.upper()}[/]", r.detail, r.fix if r.status != PASS else "")
    console.print(table)
    ok = passed(results)
    failed = [r.name for r in results if r.status == FAIL]
    console.print("[bold green]ready[/]" if ok else f"[bold red]NOT ready[/]: {', '.join(failed)} failed")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
