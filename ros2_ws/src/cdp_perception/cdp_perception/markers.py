"""Fiducials: the ArUco dictionary, the ChArUco calibration board and the marker layout of each task object.

The layouts are the physical contract between the scene and perception: the simulated camera
textures these markers onto the task bodies, and on the real robot the same markers (same
ids, sizes and placements, printed with :func:`marker_image` / :func:`board_image`) must be
glued to the real fixture. Every pose here is ``object_T_marker`` in the object frame, which
is the frame of the pose the stack publishes on /perception/object_pose (for ``peg_insert``
the hole's rim centre with z up and the fixture's yaw; for ``reach_precise`` the target).

OpenCV's marker frame: origin at the marker centre, x to the right, y up (towards the
marker's top edge in its printed image), z out of the marker towards the viewer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .geometry import make_transform

#: 4x4 bits: the largest cells for a given marker size, so small markers in a 640x480 view still decode.
DICTIONARY = "DICT_4X4_50"


def aruco_dictionary(name: str = DICTIONARY):
    import cv2

    if not hasattr(cv2.aruco, name):
        raise ValueError(f"unknown ArUco dictionary {name!r}")
    return cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, name))


@dataclass(frozen=True)
class BoardSpec:
    """A ChArUco board (chessboard squares with ArUco markers in the white squares)."""

    squares_x: int = 7
    squares_y: int = 5
    square_m: float = 0.045
    marker_m: float = 0.034
    dictionary: str = DICTIONARY
    #: Pixels per square of the printed/texture image.
    px_per_square: int = 64
    #: White quiet zone around the board, in squares.
    margin_squares: float = 0.5

    def board(self):
        import cv2

        board = cv2.aruco.CharucoBoard(
            (self.squares_x, self.squares_y), self.square_m, self.marker_m, aruco_dictionary(self.dictionary)
        )
        return board

    @property
    def size_m(self) -> tuple[float, float]:
        """(width, height) of the printed sheet including the quiet zone, metres."""
        return (
            (self.squares_x + 2 * self.margin_squares) * self.square_m,
            (self.squares_y + 2 * self.margin_squares) * self.square_m,
        )

    @property
    def marker_ids(self) -> list[int]:
        return [int(i) for i in np.asarray(self.board().getIds()).reshape(-1)]


def board_image(spec: BoardSpec) -> np.ndarray:
    """Greyscale image of the sheet (board plus quiet zone); pixel (u, v) <-> board point (u, v) * metres/px - margin."""

    s = spec.px_per_square
    m = int(round(spec.margin_squares * s))
    size = (spec.squares_x * s + 2 * m, spec.squares_y * s + 2 * m)
    img = spec.board().generateImage(size, marginSize=m, borderBits=1)
    return np.asarray(img, dtype=np.uint8)


@dataclass(frozen=True)
class MarkerSpec:
    """One ArUco marker: id, black-square side length (m), and its pose in the object frame."""

    marker_id: int
    size_m: float
    object_T_marker: np.ndarray = field(default_factory=lambda: np.eye(4))

    def corners_object(self) -> np.ndarray:
        """The 4 corners (top-left, top-right, bottom-right, bottom-left: OpenCV's order) in the object frame."""
        h = self.size_m / 2
        local = np.array([[-h, h, 0, 1], [h, h, 0, 1], [h, -h, 0, 1], [-h, -h, 0, 1]], dtype=np.float64)
        return (self.object_T_marker @ local.T).T[:, :3]


#: Cells of a 4x4 marker image: 4 data + 2 border, plus a one-cell white quiet zone each side.
MARKER_CELLS = 6
QUIET_CELLS = 1


def marker_image(marker_id: int, dictionary: str = DICTIONARY, px_per_cell: int = 32) -> np.ndarray:
    """Greyscale marker with its white quiet zone (the sheet is size_m * 8/6 wide for 4x4 markers)."""
    import cv2

    side = MARKER_CELLS * px_per_cell
    img = cv2.aruco.generateImageMarker(aruco_dictionary(dictionary), marker_id, side, borderBits=1)
    q = QUIET_CELLS * px_per_cell
    return np.pad(img, q, constant_values=255).astype(np.uint8)


def sheet_scale() -> float:
    """Printed sheet side / marker side (quiet zone included)."""
    return (MARKER_CELLS + 2 * QUIET_CELLS) / MARKER_CELLS


@dataclass(frozen=True)
class ObjectModel:
    """The markers of one tracked object and where they are mounted in the scene."""

    name: str
    markers: tuple[MarkerSpec, ...]
    #: MJCF body of the task scene that carries the markers, and body_T_object.
    body: str
    body_T_object: np.ndarray = field(default_factory=lambda: np.eye(4))
    dictionary: str = DICTIONARY
    #: Height (m) of the object frame above fr3_link0 when the object rests on the simulator's
    #: table (None: it does not rest on anything). Perception's planar fit uses it in simulation;
    #: on a real robot the height is measured and set as perception_node's ``plane_z``.
    resting_z: float | None = None

    @property
    def ids(self) -> list[int]:
        return [m.marker_id for m in self.markers]

    def marker(self, marker_id: int) -> MarkerSpec:
        for m in self.markers:
            if m.marker_id == marker_id:
                return m
        raise KeyError(marker_id)


def _flat(x: float, y: float, z: float, yaw: float = 0.0) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    return make_transform(np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]), [x, y, z])


def object_model(task: str) -> ObjectModel:
    """The marker layout of ``task``'s tracked object (``Task.markers``; ids 20+ never clash with the board's)."""
    from cdp_core.sim.tasks import get_task

    t = get_task(task)
    layout = t.markers
    if layout is None:
        raise ValueError(f"task {task!r} defines no marker layout (Task.markers): it cannot be perceived")
    return ObjectModel(
        task,
        tuple(MarkerSpec(m.marker_id, m.size_m, _flat(m.x, m.y, m.z, m.yaw)) for m in layout.markers),
        body=layout.body,
        body_T_object=_flat(*layout.object_in_body),
        resting_z=layout.resting_z,
    )
