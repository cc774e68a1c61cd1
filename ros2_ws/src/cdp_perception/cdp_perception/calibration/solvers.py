"""ChArUco views -> intrinsics, and (TCP pose, board pose) pairs -> hand-eye, behind quality gates.

Gates refuse a calibration with the reason instead of writing a result that would silently put
the object centimetres off: too few views, too little (or single-axis) rotation, a large
reprojection error, or a held-out set of views that the result does not predict.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np

from ..geometry import average_rotations, invert, make_transform, matrix_to_rotvec, rotation_angle, rotvec_to_matrix
from ..markers import BoardSpec
from .result import Calibration, CalibrationError, HandEye, Intrinsics


class CalibrationRefused(CalibrationError):
    """The collected data fails a quality gate; ``reasons`` lists every failed gate."""

    def __init__(self, reasons: list[str]):
        self.reasons = reasons
        super().__init__("calibration refused: " + "; ".join(reasons))


@dataclass
class Gates:
    min_views: int = 10
    max_reprojection_px: float = 3.0
    #: Largest angle between any two TCP orientations must reach this ...
    min_rotation_deg: float = 30.0
    #: ... and the relative rotations must not all share one axis (2nd singular value of their axes).
    min_axis_spread: float = 0.25
    #: Every fifth view is held out; the result must predict their board corners within this.
    max_heldout_px: float = 5.0
    heldout_every: int = 5
    #: The fixed transform the hand-eye result implies (board in TCP or in base) must agree across views.
    max_consistency_mm: float = 10.0


@dataclass
class BoardView:
    """The ChArUco corners seen in one image."""

    ids: np.ndarray
    image_points: np.ndarray
    object_points: np.ndarray


def detect_board(image: np.ndarray, spec: BoardSpec, min_corners: int = 6) -> BoardView | None:
    """Interpolated ChArUco corners of ``image`` (None when fewer than ``min_corners``)."""
    import cv2

    board = spec.board()
    grey = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    params = cv2.aruco.CharucoParameters()
    det = cv2.aruco.CharucoDetector(board, params)
    corners, ids, _, _ = det.detectBoard(grey)
    if ids is None or len(ids) < min_corners:
        return None
    obj, img = board.matchImagePoints(corners, ids)
    return BoardView(
        ids.reshape(-1).astype(int), img.reshape(-1, 2).astype(np.float64), obj.reshape(-1, 3).astype(np.float64)
    )


def board_pose(view: BoardView, camera_matrix: np.ndarray, dist: np.ndarray) -> tuple[np.ndarray, float]:
    """cam_T_board and the RMS reprojection error (px) of its corners."""
    import cv2

    ok, rv, tv = cv2.solvePnP(view.object_points, view.image_points, camera_matrix, dist)
    if not ok:
        raise CalibrationError("solvePnP failed on a board view")
    rv, tv = cv2.solvePnPRefineLM(view.object_points, view.image_points, camera_matrix, dist, rv, tv)
    return make_transform(rotvec_to_matrix(rv.reshape(3)), tv.reshape(3)), reprojection_rms(
        view, make_transform(rotvec_to_matrix(rv.reshape(3)), tv.reshape(3)), camera_matrix, dist
    )


def reprojection_rms(view: BoardView, cam_T_board: np.ndarray, camera_matrix: np.ndarray, dist: np.ndarray) -> float:
    import cv2

    rv, _ = cv2.Rodrigues(cam_T_board[:3, :3])
    proj, _ = cv2.projectPoints(view.object_points, rv, cam_T_board[:3, 3].reshape(3, 1), camera_matrix, dist)
    return float(np.sqrt(np.mean(np.sum((proj.reshape(-1, 2) - view.image_points) ** 2, axis=1))))


def _split(n: int, every: int) -> tuple[list[int], list[int]]:
    held = [i for i in range(n) if every > 0 and i % every == every - 1]
    return [i for i in range(n) if i not in held], held


# --- intrinsics ---------------------------------------------------------------------------


def calibrate_intrinsics(
    views: list[BoardView], image_size: tuple[int, int], gates: Gates | None = None, fix_k3: bool = True
) -> Intrinsics:
    """cv2.calibrateCamera over ChArUco corners; gates: view count, RMS and held-out reprojection."""
    import cv2

    gates = gates or Gates()
    reasons = []
    if len(views) < gates.min_views:
        reasons.append(f"only {len(views)} board views (need >= {gates.min_views})")
        raise CalibrationRefused(reasons)
    train, held = _split(len(views), gates.heldout_every)
    flags = cv2.CALIB_FIX_K3 if fix_k3 else 0
    w, h = image_size
    rms, K, dist, _, _ = cv2.calibrateCamera(
        [views[i].object_points.astype(np.float32) for i in train],
        [views[i].image_points.astype(np.float32) for i in train],
        (w, h),
        None,
        None,
        flags=flags,
    )
    dist = dist.reshape(-1)
    if rms > gates.max_reprojection_px:
        reasons.append(f"intrinsics reprojection RMS {rms:.2f} px > {gates.max_reprojection_px} px")
    held_err = [board_pose(views[i], K, dist)[1] for i in held]
    if held_err and max(held_err) > gates.max_heldout_px:
        reasons.append(f"held-out views reproject with up to {max(held_err):.2f} px > {gates.max_heldout_px} px")
    if reasons:
        raise CalibrationRefused(reasons)
    return Intrinsics(
        w, h, K, dist, "cv2.calibrateCamera (ChArUco" + (", k3 fixed)" if fix_k3 else ")"), float(rms), len(views)
    )


# --- hand-eye -----------------------------------------------------------------------------

HAND_EYE_METHODS = ("TSAI", "PARK", "HORAUD", "ANDREFF", "DANIILIDIS")
RWHE_METHODS = ("RWHE_SHAH", "RWHE_LI")


def rotation_diversity(base_T_tcp: list[np.ndarray]) -> tuple[float, float]:
    """(largest angle between two TCP orientations in degrees, spread of the relative rotation axes in [0, 1]).

    The spread is the second singular value of the unit axes of all pairwise relative rotations
    larger than 2 degrees, normalised: 0 when every rotation is about one axis (hand-eye is then
    degenerate along that axis), about 0.58 for axes spread evenly in 3-D.
    """
    rs = [t[:3, :3] for t in base_T_tcp]
    max_angle, axes = 0.0, []
    for i in range(len(rs)):
        for j in range(i + 1, len(rs)):
            rel = rs[i].T @ rs[j]
            a = rotation_angle(rel)
            max_angle = max(max_angle, a)
            if a > np.radians(2.0):
                rv = matrix_to_rotvec(rel)
                axes.append(rv / np.linalg.norm(rv))
    if len(axes) < 2:
        return float(np.degrees(max_angle)), 0.0
    s = np.linalg.svd(np.array(axes), compute_uv=False)
    return float(np.degrees(max_angle)), float(s[1] / np.sqrt(len(axes)))


def _solve(mode: str, method: str, base_T_tcp: list[np.ndarray], cam_T_board: list[np.ndarray]) -> np.ndarray:
    """The hand-eye transform: base_T_cam (eye_to_hand) or tcp_T_cam (eye_in_hand)."""
    import cv2

    if method in HAND_EYE_METHODS:
        flag = getattr(cv2, f"CALIB_HAND_EYE_{method}")
        # calibrateHandEye solves for the camera on the gripper; for a fixed camera the same
        # equations hold with the base and gripper swapped (pass tcp_T_base), giving base_T_cam.
        g = base_T_tcp if mode == "eye_in_hand" else [invert(t) for t in base_T_tcp]
        r, t = cv2.calibrateHandEye(
            [x[:3, :3] for x in g],
            [x[:3, 3] for x in g],
            [x[:3, :3] for x in cam_T_board],
            [x[:3, 3] for x in cam_T_board],
            method=flag,
        )
        return make_transform(r, t.reshape(3))
    if method in RWHE_METHODS:
        flag = getattr(cv2, f"CALIB_ROBOT_WORLD_HAND_EYE_{method.split('_')[1]}")
        if mode == "eye_in_hand":
            # cam_T_board = cam_T_tcp . tcp_T_base . base_T_board ("world" = the board)
            world2cam, base2gripper = cam_T_board, [invert(t) for t in base_T_tcp]
        else:
            # board_T_cam = board_T_tcp . tcp_T_base . base_T_cam ("camera" = the board, "world" = the camera)
            world2cam, base2gripper = [invert(t) for t in cam_T_board], [invert(t) for t in base_T_tcp]
        rb, tb, rg, tg = cv2.calibrateRobotWorldHandEye(
            [x[:3, :3] for x in world2cam],
            [x[:3, 3] for x in world2cam],
            [x[:3, :3] for x in base2gripper],
            [x[:3, 3] for x in base2gripper],
            method=flag,
        )
        world_T_base = make_transform(rb, tb.reshape(3))  # "base2world": maps base points into the world frame
        cam_T_gripper = make_transform(rg, tg.reshape(3))
        # eye_to_hand: "world" is the camera, so base_T_cam = inverse of world_T_base
        return invert(cam_T_gripper) if mode == "eye_in_hand" else invert(world_T_base)
    raise CalibrationError(f"unknown hand-eye method {method!r}; known: {HAND_EYE_METHODS + RWHE_METHODS}")


def _fixed_transforms(
    mode: str, x: np.ndarray, base_T_tcp: list[np.ndarray], cam_T_board: list[np.ndarray]
) -> list[np.ndarray]:
    """Per view, the transform that must be constant if ``x`` is right (tcp_T_board or base_T_board)."""
    if mode == "eye_to_hand":
        return [invert(b) @ x @ c for b, c in zip(base_T_tcp, cam_T_board)]
    return [b @ x @ c for b, c in zip(base_T_tcp, cam_T_board)]


def _mean_transform(ts: list[np.ndarray]) -> np.ndarray:
    return make_transform(average_rotations([t[:3, :3] for t in ts]), np.mean([t[:3, 3] for t in ts], axis=0))


def _predict_cam_T_board(mode: str, x: np.ndarray, fixed: np.ndarray, base_T_tcp: np.ndarray) -> np.ndarray:
    if mode == "eye_to_hand":
        return invert(x) @ base_T_tcp @ fixed
    return invert(base_T_tcp @ x) @ fixed


@dataclass
class HandEyeData:
    """What collection gathers: per accepted view the TCP pose and the board's corners."""

    mode: str
    base_T_tcp: list[np.ndarray] = field(default_factory=list)
    views: list[BoardView] = field(default_factory=list)


def calibrate_hand_eye(
    data: HandEyeData, intrinsics: Intrinsics, method: str = "PARK", gates: Gates | None = None
) -> HandEye:
    """Hand-eye from (TCP pose, board view) pairs; raises :class:`CalibrationRefused` with every failed gate."""
    gates = gates or Gates()
    if data.mode not in ("eye_to_hand", "eye_in_hand"):
        raise CalibrationError(f"hand-eye mode must be eye_to_hand or eye_in_hand, got {data.mode!r}")
    n = len(data.views)
    reasons = []
    if n < gates.min_views:
        reasons.append(f"only {n} views (need >= {gates.min_views})")
    max_angle, spread = rotation_diversity(data.base_T_tcp)
    if max_angle < gates.min_rotation_deg:
        reasons.append(
            f"too little rotation: the TCP orientations span {max_angle:.1f} deg (need >= {gates.min_rotation_deg} deg)"
        )
    if spread < gates.min_axis_spread:
        reasons.append(f"rotations are about (nearly) one axis: axis spread {spread:.2f} < {gates.min_axis_spread}")
    if reasons:
        raise CalibrationRefused(reasons)
    K, dist = intrinsics.camera_matrix, intrinsics.dist_coeffs
    poses = [board_pose(v, K, dist) for v in data.views]
    cam_T_board = [p for p, _ in poses]
    pnp_rms = float(np.mean([e for _, e in poses]))
    if pnp_rms > gates.max_reprojection_px:
        reasons.append(f"board reprojection error {pnp_rms:.2f} px > {gates.max_reprojection_px} px")
    train, held = _split(n, gates.heldout_every)
    bt = [data.base_T_tcp[i] for i in train]
    ct = [cam_T_board[i] for i in train]
    x = _solve(data.mode, method, bt, ct)
    fixed = _fixed_transforms(data.mode, x, bt, ct)
    mean_fixed = _mean_transform(fixed)
    spread_mm = float(np.max([np.linalg.norm(f[:3, 3] - mean_fixed[:3, 3]) for f in fixed]) * 1000)
    spread_deg = float(np.max([np.degrees(rotation_angle(mean_fixed[:3, :3].T @ f[:3, :3])) for f in fixed]))
    if spread_mm > gates.max_consistency_mm:
        reasons.append(
            f"the result is inconsistent across views: the board moves {spread_mm:.1f} mm "
            f"(> {gates.max_consistency_mm} mm) where it must stay fixed"
        )
    held_px = []
    for i in held:
        pred = _predict_cam_T_board(data.mode, x, mean_fixed, data.base_T_tcp[i])
        held_px.append(reprojection_rms(data.views[i], pred, K, dist))
    if held_px and max(held_px) > gates.max_heldout_px:
        reasons.append(
            f"held-out views are predicted with up to {max(held_px):.2f} px error (> {gates.max_heldout_px} px)"
        )
    if reasons:
        raise CalibrationRefused(reasons)
    residuals = {
        "board_reprojection_px": pnp_rms,
        "consistency_mm": spread_mm,
        "consistency_deg": spread_deg,
        "heldout_px_max": max(held_px) if held_px else float("nan"),
        "rotation_span_deg": max_angle,
        "rotation_axis_spread": spread,
        "heldout_views": len(held),
    }
    return HandEye(
        data.mode,
        x,
        f"cv2.{'calibrateHandEye' if method in HAND_EYE_METHODS else 'calibrateRobotWorldHandEye'} {method}",
        residuals,
        n,
    )


def make_calibration(intrinsics: Intrinsics, hand_eye: HandEye | None, serial: str = "") -> Calibration:
    return Calibration(intrinsics, hand_eye, dt.datetime.now(dt.timezone.utc).replace(microsecond=0), serial)
