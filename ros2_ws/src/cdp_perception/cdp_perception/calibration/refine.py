"""Joint refinement: hand-eye, the board's fixed pose and the intrinsics fitted to every board corner at once.

The closed-form hand-eye solvers (Tsai, Park, ...) fit per-view board *poses*, each from one PnP
with the intrinsics of a separate calibration; the intrinsics' small biases (a 0.1 % focal
length error is a millimetre of depth at 1 m) go straight into the result, which in the
simulated eye-to-hand set-up left 3.4 mm. Here the chain

    pixel = project(K, dist, cam_T_base . base_T_tcp . tcp_T_board . corner)     (eye-to-hand)
    pixel = project(K, dist, (base_T_tcp . tcp_T_cam)^-1 . base_T_board . corner) (eye-in-hand)

is fitted to the corner pixels of every training view with SciPy's least-squares solver,
starting from the closed-form result, so what the camera measures is tied directly to the
arm's kinematics. The held-out views (never fitted) are checked against the refined result with
the same gates as the closed form, and a result that fails them is refused with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..geometry import make_transform, matrix_to_rotvec, rotvec_to_matrix
from .result import HandEye, Intrinsics
from .solvers import (
    CalibrationRefused,
    Gates,
    HandEyeData,
    _fixed_transforms,
    _mean_transform,
    _predict_cam_T_board,
    _split,
    board_pose,
    reprojection_rms,
)


@dataclass
class RefineConfig:
    #: Also refine fx, fy, cx, cy, k1, k2, p1, p2 (k3 stays as calibrated).
    intrinsics: bool = True
    #: Robust loss scale (px): a mis-detected corner must not drag the fit.
    huber_px: float = 1.0


def _pack(t: np.ndarray) -> np.ndarray:
    return np.concatenate([matrix_to_rotvec(t[:3, :3]), t[:3, 3]])


def _unpack(p: np.ndarray) -> np.ndarray:
    return make_transform(rotvec_to_matrix(p[:3]), p[3:6])


def _camera(p: np.ndarray, intr: Intrinsics) -> tuple[np.ndarray, np.ndarray]:
    fx, fy, cx, cy = p[:4]
    dist = np.asarray(intr.dist_coeffs, dtype=np.float64).copy()
    dist[:4] = p[4:8]
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]]), dist


def refine_hand_eye(
    data: HandEyeData,
    intrinsics: Intrinsics,
    hand_eye: HandEye,
    gates: Gates | None = None,
    config: RefineConfig | None = None,
) -> tuple[Intrinsics, HandEye]:
    """Refine a closed-form hand-eye (and the intrinsics) on all corners; returns the refined pair.

    Uses the same held-out split as :func:`calibrate_hand_eye`; raises :class:`CalibrationRefused`
    when the refined result reprojects its training corners worse than ``gates.max_reprojection_px``
    or its held-out views worse than ``gates.max_heldout_px``.
    """
    import cv2
    from scipy.optimize import least_squares

    gates, config = gates or Gates(), config or RefineConfig()
    mode = data.mode
    n = len(data.views)
    train, held = _split(n, gates.heldout_every)
    k0, d0 = intrinsics.camera_matrix, intrinsics.dist_coeffs
    cam_T_board = [board_pose(data.views[i], k0, d0)[0] for i in train]
    bt = [data.base_T_tcp[i] for i in train]
    fixed0 = _mean_transform(_fixed_transforms(mode, hand_eye.transform, bt, cam_T_board))
    p0 = [_pack(hand_eye.transform), _pack(fixed0)]
    if config.intrinsics:
        p0.append(np.array([k0[0, 0], k0[1, 1], k0[0, 2], k0[1, 2], *np.asarray(d0, dtype=np.float64)[:4]]))
    p0 = np.concatenate(p0)

    def camera(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return _camera(p[12:20], intrinsics) if config.intrinsics else (k0, d0)

    def residuals(p: np.ndarray) -> np.ndarray:
        x, fixed = _unpack(p[:6]), _unpack(p[6:12])
        k, dist = camera(p)
        out = []
        for i in train:
            c = _predict_cam_T_board(mode, x, fixed, data.base_T_tcp[i])
            rv, _ = cv2.Rodrigues(c[:3, :3])
            proj, _ = cv2.projectPoints(data.views[i].object_points, rv, c[:3, 3].reshape(3, 1), k, dist)
            out.append((proj.reshape(-1, 2) - data.views[i].image_points).ravel())
        return np.concatenate(out)

    sol = least_squares(residuals, p0, x_scale="jac", loss="huber", f_scale=config.huber_px)
    x, fixed = _unpack(sol.x[:6]), _unpack(sol.x[6:12])
    k, dist = camera(sol.x)
    train_rms = float(np.sqrt(np.mean(residuals(sol.x) ** 2)))
    held_px = [
        reprojection_rms(data.views[i], _predict_cam_T_board(mode, x, fixed, data.base_T_tcp[i]), k, dist) for i in held
    ]
    reasons = []
    if train_rms > gates.max_reprojection_px:
        reasons.append(
            f"refined hand-eye reprojects its views with {train_rms:.2f} px RMS (> {gates.max_reprojection_px} px)"
        )
    if held_px and max(held_px) > gates.max_heldout_px:
        reasons.append(
            f"refined hand-eye predicts held-out views with up to {max(held_px):.2f} px (> {gates.max_heldout_px} px)"
        )
    if reasons:
        raise CalibrationRefused(reasons)
    new_intr = intrinsics
    if config.intrinsics:
        new_intr = replace(
            intrinsics,
            camera_matrix=k,
            dist_coeffs=dist,
            method=f"{intrinsics.method}, refined with hand-eye on {len(train)} views",
        )
    residual = dict(hand_eye.residuals)
    residual.update(
        {
            "closed_form_heldout_px_max": hand_eye.residuals.get("heldout_px_max", float("nan")),
            "refined_reprojection_px": train_rms,
            "heldout_px_max": max(held_px) if held_px else float("nan"),
        }
    )
    refined = replace(
        hand_eye, transform=x, method=f"{hand_eye.method} + joint refinement (scipy least_squares)", residuals=residual
    )
    return new_intr, refined
