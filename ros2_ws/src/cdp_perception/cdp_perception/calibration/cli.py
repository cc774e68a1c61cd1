"""``cdp-calibrate``: camera intrinsics and hand-eye calibration, and checks of calibration files.

    cdp-calibrate sim --mode eye_to_hand --out calibration/sim_eye_to_hand.yaml
    cdp-calibrate collect --mode eye_to_hand --out calibration/robot.yaml      # through the running stack
    cdp-calibrate check calibration/sim_eye_to_hand.yaml --max-age-h 1

``sim`` drives the arm of its own MuJoCo copy of the scene through a pose set with rotation
diversity, renders the ChArUco board, calibrates, applies the quality gates and writes the YAML
(exit 2 and the reasons when a gate refuses). ``collect`` does the same through the running stack:
it moves the arm (via the safety filter, source teleop) and pairs camera frames with TCP poses;
on the real robot and in the simulated stack alike. ``check`` validates a file and warns when stale.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from .result import CalibrationError, load


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="cdp-calibrate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("sim", help="automatic collection + calibration in simulation")
    s.add_argument("--mode", choices=["eye_to_hand", "eye_in_hand"], default="eye_to_hand")
    s.add_argument("--method", default="PARK", help="TSAI PARK HORAUD ANDREFF DANIILIDIS RWHE_SHAH RWHE_LI")
    s.add_argument("--intrinsic-views", type=int, default=24)
    s.add_argument("--views", type=int, default=16, help="hand-eye poses to visit")
    s.add_argument("--rotation-scale", type=float, default=1.0, help="< 1 shrinks the pose set's rotations")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument(
        "--no-refine",
        action="store_true",
        help="keep the closed-form hand-eye (skip the joint refinement over all corners)",
    )
    s.add_argument("--out", required=True)
    r = sub.add_parser("collect", help="drive the arm through the pose set via the running stack, then calibrate")
    r.add_argument("--mode", choices=["eye_to_hand", "eye_in_hand"], default="eye_to_hand")
    r.add_argument("--method", default="PARK")
    r.add_argument("--views", type=int, default=16, help="poses to visit")
    r.add_argument("--rotation-scale", type=float, default=1.0)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--speed", type=float, default=0.4, help="joint speed of the moves (rad/s)")
    r.add_argument("--serial", default="", help="camera serial, written into the YAML")
    r.add_argument(
        "--nominal",
        type=float,
        nargs=7,
        default=None,
        metavar="Q",
        help="joint configuration (rad) the pose set is centred on: the board well in view",
    )
    r.add_argument("--out", required=True)
    c = sub.add_parser("check", help="validate a calibration file and warn when stale")
    c.add_argument("file")
    c.add_argument("--max-age-h", type=float, default=1.0)
    args = p.parse_args(argv)

    if args.cmd == "check":
        try:
            cal = load(args.file, require_hand_eye=False)
        except CalibrationError as exc:
            print(f"invalid: {exc}", file=sys.stderr)
            return 1
        he = cal.hand_eye
        print(
            f"{args.file}: {cal.intrinsics.width}x{cal.intrinsics.height}, intrinsics RMS "
            f"{cal.intrinsics.rms_px:.3f} px over {cal.intrinsics.views} views; "
            + (f"{he.mode} by {he.method} over {he.views} views, residuals {he.residuals}" if he else "no hand-eye")
        )
        warning = cal.stale_warning(args.max_age_h * 3600)
        if warning:
            print(f"WARNING: {warning}", file=sys.stderr)
            return 3
        return 0

    if args.cmd == "collect":
        from cdp_ros_common.stack_client import StackError

        from .ros_collect import CollectConfig, calibrate_via_stack
        from .solvers import CalibrationRefused

        try:
            cal, _ = calibrate_via_stack(
                args.mode,
                args.views,
                args.seed,
                args.rotation_scale,
                args.method,
                CollectConfig(speed_rad_s=args.speed),
                args.serial,
                nominal=None if args.nominal is None else np.array(args.nominal),
            )
        except CalibrationRefused as exc:
            print(str(exc), file=sys.stderr)
            return 2
        except StackError as exc:  # CollectionError included
            print(f"cdp-calibrate collect: {exc}", file=sys.stderr)
            return 1
        cal.save(args.out)
        he = cal.hand_eye
        print(f"wrote {args.out}: {he.views} views, {he.method}, residuals {he.residuals}")
        return 0

    from ..sim_camera import use_offscreen_gl
    from .simcal import calibrate_in_simulation
    from .solvers import CalibrationRefused

    use_offscreen_gl()
    try:
        rep = calibrate_in_simulation(
            args.mode,
            args.intrinsic_views,
            args.views,
            args.method,
            args.rotation_scale,
            args.seed,
            refine=not args.no_refine,
        )
    except CalibrationRefused as exc:
        print(str(exc), file=sys.stderr)
        return 2
    rep.calibration.save(args.out)
    k, kt = rep.calibration.intrinsics.camera_matrix, rep.true_camera_matrix
    print(f"wrote {args.out}: {rep.intrinsics_views} intrinsics views, {rep.hand_eye_views} hand-eye views")
    print(
        f"intrinsics fx {k[0, 0]:.2f} (true {kt[0, 0]:.2f}) fy {k[1, 1]:.2f} cx {k[0, 2]:.2f} (true {kt[0, 2]:.2f}) "
        f"cy {k[1, 2]:.2f} (true {kt[1, 2]:.2f}), RMS {rep.calibration.intrinsics.rms_px:.3f} px"
    )
    print(f"hand-eye error vs ground truth: {rep.hand_eye_error_mm:.2f} mm, {rep.hand_eye_error_deg:.3f} deg")
    return 0


if __name__ == "__main__":
    sys.exit(main())
