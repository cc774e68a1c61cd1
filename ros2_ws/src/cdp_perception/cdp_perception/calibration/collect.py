"""Collection of calibration views: a pose set with rotation diversity, driven through the arm.

Two drivers share the pose set and the acceptance rule (the board must be seen with enough
corners):

* :func:`collect_in_simulation`: sets the joint configurations directly in the camera scene's own
  MuJoCo copy and renders (no robot process, seconds per calibration: the tests' path);
* ``cdp-calibrate collect`` (:mod:`.ros_collect`): streams each configuration on
  /teleop/command through the safety filter (active source teleop), waits for the arm to
  settle, then pairs /franka/ee_pose with the next image from the camera node. The same path
  runs the real robot.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..markers import BoardSpec
from .solvers import BoardView, HandEyeData, detect_board

#: Where each mode's pose set is centred: eye-to-hand holds the board (on the hand, facing the
#: hand's +x) towards the default camera; eye-in-hand looks down at the board on the table.
NOMINAL_Q = {
    "eye_to_hand": np.array([0.0, -0.1, 0.0, -2.0, 0.0, 1.9, 0.785]),
    "eye_in_hand": np.array([0.0, -0.45, 0.0, -2.2, 0.0, 1.75, 0.785]),
}
#: Per-joint half-range of the random perturbation (rad): wrist joints carry most of the rotation.
SPREAD = np.array([0.25, 0.15, 0.25, 0.2, 0.35, 0.3, 0.5])


def pose_set(
    mode: str, n: int, scale: float = 1.0, seed: int = 0, nominal: np.ndarray | None = None
) -> list[np.ndarray]:
    """``n`` joint configurations around the mode's nominal one; ``scale`` < 1 shrinks the rotation diversity."""
    if mode not in NOMINAL_Q:
        raise ValueError(f"mode must be one of {sorted(NOMINAL_Q)}, got {mode!r}")
    rng = np.random.default_rng(seed)
    q0 = NOMINAL_Q[mode] if nominal is None else np.asarray(nominal, dtype=np.float64)
    return [q0 + scale * rng.uniform(-SPREAD, SPREAD) for _ in range(n)]


@dataclass
class SimCollection:
    data: HandEyeData
    images: list[np.ndarray] = field(default_factory=list)
    #: Poses rejected because the board was not seen well enough.
    skipped: int = 0


def collect_in_simulation(
    scene,
    renderer,
    poses: list[np.ndarray],
    board: BoardSpec,
    mode: str,
    min_corners: int = 8,
    keep_images: bool = False,
) -> SimCollection:
    """Render each pose in ``scene`` (a CameraScene with a board) and keep those whose board is seen."""
    out = SimCollection(HandEyeData(mode))
    for q in poses:
        scene.set_joints(q)
        scene.forward()
        img = renderer.render(scene.data)
        view: BoardView | None = detect_board(img, board, min_corners)
        if view is None:
            out.skipped += 1
            continue
        out.data.base_T_tcp.append(scene.base_T_tcp())
        out.data.views.append(view)
        if keep_images:
            out.images.append(img)
    return out
