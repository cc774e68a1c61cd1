"""The whole calibration in simulation: collect views automatically, calibrate, gate, compare with ground truth."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..geometry import invert, transform_error
from ..markers import BoardSpec
from ..sim_camera import (
    DEFAULT_EYE_IN_HAND,
    HAND_T_TCP,
    BoardMount,
    CameraScene,
    CameraSpec,
    SceneRenderer,
    default_hand_board,
    default_table_board,
)
from .collect import collect_in_simulation, pose_set
from .result import Calibration
from .refine import RefineConfig, refine_hand_eye
from .solvers import Gates, calibrate_hand_eye, calibrate_intrinsics, make_calibration


@dataclass
class SimCalibrationReport:
    calibration: Calibration
    #: Ground truth for comparison: K, and base_T_cam (eye_to_hand) or tcp_T_cam (eye_in_hand).
    true_camera_matrix: np.ndarray
    true_hand_eye: np.ndarray
    hand_eye_error_mm: float
    hand_eye_error_deg: float
    intrinsics_views: int
    hand_eye_views: int


def calibration_scene(
    mode: str, width: int = 640, height: int = 480, fovy_deg: float = 50.0, board: BoardSpec | None = None
) -> tuple[CameraScene, SceneRenderer, BoardSpec]:
    """The calibration set-up: eye_to_hand = fixed camera + board in the hand; eye_in_hand = camera on the hand + board on the table."""
    spec = board or BoardSpec()
    if mode == "eye_to_hand":
        cam = CameraSpec(width, height, fovy_deg, "world")
        mount = BoardMount(spec, "hand", default_hand_board(spec))
    elif mode == "eye_in_hand":
        cam = CameraSpec(width, height, fovy_deg, "hand", DEFAULT_EYE_IN_HAND.copy())
        mount = BoardMount(spec, "world", default_table_board(spec))
    else:
        raise ValueError(f"mode must be eye_to_hand or eye_in_hand, got {mode!r}")
    # reach_precise: its only body is a 5 mm sphere, so nothing hides the board
    scene = CameraScene("reach_precise", cam, mount, object_markers=False)
    return scene, SceneRenderer(scene.model, width=width, height=height), spec


def true_hand_eye(scene: CameraScene, mode: str) -> np.ndarray:
    if mode == "eye_to_hand":
        return scene.base_T_cam()
    return invert(HAND_T_TCP) @ scene.camera.mount_T_cam


def calibrate_in_simulation(
    mode: str = "eye_to_hand",
    intrinsic_views: int = 24,
    hand_eye_views: int = 16,
    method: str = "PARK",
    rotation_scale: float = 1.0,
    seed: int = 0,
    gates: Gates | None = None,
    scene=None,
    refine: bool = True,
) -> SimCalibrationReport:
    """Collect, calibrate intrinsics then hand-eye (closed form, then jointly refined unless ``refine`` is
    False); raises CalibrationRefused when a gate fails."""
    if scene is None:
        scene = calibration_scene(mode)
    sc, renderer, spec = scene
    cam = sc.camera
    intr_col = collect_in_simulation(sc, renderer, pose_set(mode, intrinsic_views, 1.0, seed + 1000), spec, mode)
    intrinsics = calibrate_intrinsics(intr_col.data.views, (cam.width, cam.height), gates)
    he_col = collect_in_simulation(sc, renderer, pose_set(mode, hand_eye_views, rotation_scale, seed), spec, mode)
    hand_eye = calibrate_hand_eye(he_col.data, intrinsics, method, gates)
    truth = true_hand_eye(sc, mode)
    if refine:
        closed_mm, closed_deg = transform_error(hand_eye.transform, truth)
        intrinsics, hand_eye = refine_hand_eye(he_col.data, intrinsics, hand_eye, gates, RefineConfig())
        hand_eye.residuals["sim_truth_closed_form_error_mm"] = closed_mm * 1000
        hand_eye.residuals["sim_truth_closed_form_error_deg"] = closed_deg
    err_m, err_deg = transform_error(hand_eye.transform, truth)
    hand_eye.residuals["sim_truth_error_mm"] = err_m * 1000
    hand_eye.residuals["sim_truth_error_deg"] = err_deg
    return SimCalibrationReport(
        make_calibration(intrinsics, hand_eye, "cdp-sim-camera"),
        cam.camera_matrix(),
        truth,
        err_m * 1000,
        err_deg,
        len(intr_col.data.views),
        len(he_col.data.views),
    )
