"""ArUco detection and object pose: every visible marker of the object in one PnP, then into the base frame.

:class:`ObjectPoseEstimator` turns one image into ``cam_T_object`` (all corners of all visible
markers of the object's layout solved jointly: one small marker alone is ambiguous and noisy in
depth, four spread over 25 cm are not). :class:`PoseFilter` rejects outliers and smooths.
:class:`ObjectTracker` puts them together with the hand-eye calibration and yields the pose in
the robot base frame. No ROS import: the perception node is a thin shell over ObjectTracker.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .geometry import invert, make_transform, rotation_angle, rotvec_to_matrix, slerp
from .markers import ObjectModel


class PerceptionError(RuntimeError):
    """Perception cannot run (bad configuration); the message names the problem."""


@dataclass
class Detection:
    """One image's object pose in the camera frame, and the corner correspondences it was fitted to."""

    cam_T_object: np.ndarray
    marker_ids: list[int]
    reprojection_px: float
    #: Marker corners in the object frame [N, 3] and where they were seen [N, 2] (px).
    object_points: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    image_points: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))


@dataclass
class EstimatorConfig:
    #: Refuse a pose whose RMS corner reprojection error exceeds this (a wrong id or a bad fit).
    max_reprojection_px: float = 2.0
    min_markers: int = 1
    #: Sub-pixel corner refinement: the corners are the only measurement.
    subpixel: bool = True


class ObjectPoseEstimator:
    def __init__(
        self,
        model: ObjectModel,
        camera_matrix: np.ndarray,
        dist_coeffs: np.ndarray,
        config: EstimatorConfig | None = None,
    ):
        import cv2

        from .markers import aruco_dictionary

        self.model = model
        self.K = np.asarray(camera_matrix, dtype=np.float64).reshape(3, 3)
        self.dist = np.asarray(dist_coeffs, dtype=np.float64).reshape(-1)
        self.config = config or EstimatorConfig()
        params = cv2.aruco.DetectorParameters()
        if self.config.subpixel:
            params.cornerRefinementMethod = cv2.aruco.CORNER_REFINE_SUBPIX
        self._detector = cv2.aruco.ArucoDetector(aruco_dictionary(model.dictionary), params)
        self._cv2 = cv2
        self._prev: np.ndarray | None = None

    def detect(self, image: np.ndarray) -> tuple[list[np.ndarray], list[int]]:
        """Marker corners (4x2 each, OpenCV order) and ids of every marker of the dictionary in ``image``."""
        cv2 = self._cv2
        grey = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        corners, ids, _ = self._detector.detectMarkers(grey)
        if ids is None:
            return [], []
        return [c.reshape(4, 2).astype(np.float64) for c in corners], [int(i) for i in ids.reshape(-1)]

    def estimate(self, image: np.ndarray) -> Detection | None:
        """The object's pose in the camera frame, or None when too few of its markers are seen or the fit is bad."""
        cv2 = self._cv2
        corners, ids = self.detect(image)
        known = set(self.model.ids)
        pairs = [(c, i) for c, i in zip(corners, ids) if i in known]
        if len({i for _, i in pairs}) < self.config.min_markers or not pairs:
            return None
        obj = np.concatenate([self.model.marker(i).corners_object() for _, i in pairs])
        img = np.concatenate([c for c, _ in pairs])
        candidates = []
        # Planar targets have two PnP minima; IPPE returns both for each marker, and the joint fit
        # over all corners starting from each picks the right one.
        for c, i in pairs:
            m = self.model.marker(i)
            h = m.size_m / 2
            local = np.array([[-h, h, 0], [h, h, 0], [h, -h, 0], [-h, -h, 0]], dtype=np.float64)
            n, rvecs, tvecs, _ = cv2.solvePnPGeneric(local, c, self.K, self.dist, flags=cv2.SOLVEPNP_IPPE_SQUARE)
            for rv, tv in zip(rvecs[:n], tvecs[:n]):
                cam_T_marker = make_transform(rotvec_to_matrix(rv.reshape(3)), tv.reshape(3))
                candidates.append(cam_T_marker @ invert(m.object_T_marker))
        if self._prev is not None:
            candidates.append(self._prev)
        best: tuple[float, np.ndarray] | None = None
        for init in candidates:
            rv0, _ = cv2.Rodrigues(init[:3, :3])
            rv, tv = cv2.solvePnPRefineLM(obj, img, self.K, self.dist, rv0.copy(), init[:3, 3].reshape(3, 1).copy())
            proj, _ = cv2.projectPoints(obj, rv, tv, self.K, self.dist)
            rms = float(np.sqrt(np.mean(np.sum((proj.reshape(-1, 2) - img) ** 2, axis=1))))
            if tv[2, 0] > 0 and (best is None or rms < best[0]):
                best = (rms, make_transform(rotvec_to_matrix(rv.reshape(3)), tv.reshape(3)))
        if best is None or best[0] > self.config.max_reprojection_px:
            return None
        self._prev = best[1]
        return Detection(best[1], sorted({i for _, i in pairs}), best[0], obj, img)


def fit_on_plane(
    det: Detection, base_T_cam: np.ndarray, camera_matrix: np.ndarray, dist_coeffs: np.ndarray, plane_z: float
) -> np.ndarray:
    """``base_T_object`` of an object resting flat at height ``plane_z``: only x, y and yaw are fitted.

    A free 6-DOF fit of markers 1 m away is weakest along the viewing ray (millimetres of depth
    from tenths of a pixel), and a camera looking down at the table turns that into height *and*
    horizontal error. An object that rests on the table has a known height and no tilt, so
    fitting only (x, y, yaw) to the same corners removes most of it (simulated peg_insert
    fixture: worst horizontal error 3.3 mm free, 0.7 mm on the plane).
    """
    import cv2
    from scipy.optimize import least_squares

    k = np.asarray(camera_matrix, dtype=np.float64)
    dist = np.asarray(dist_coeffs, dtype=np.float64)
    cam_T_base = invert(base_T_cam)
    free = base_T_cam @ det.cam_T_object

    def pose(p: np.ndarray) -> np.ndarray:
        c, s = np.cos(p[2]), np.sin(p[2])
        return make_transform(np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]), [p[0], p[1], plane_z])

    def residuals(p: np.ndarray) -> np.ndarray:
        c = cam_T_base @ pose(p)
        rv, _ = cv2.Rodrigues(c[:3, :3])
        proj, _ = cv2.projectPoints(det.object_points, rv, c[:3, 3].reshape(3, 1), k, dist)
        return (proj.reshape(-1, 2) - det.image_points).ravel()

    p0 = np.array([free[0, 3], free[1, 3], np.arctan2(free[1, 0], free[0, 0])])
    return pose(least_squares(residuals, p0, x_scale=np.array([0.01, 0.01, 0.05])).x)


@dataclass
class FilterConfig:
    #: Exponential smoothing weight of a new measurement (1 = no smoothing).
    alpha: float = 0.5
    #: A measurement this far from the filtered pose is an outlier ...
    outlier_m: float = 0.03
    outlier_deg: float = 15.0
    #: ... unless this many arrive in a row: then the object really moved, and the filter restarts.
    reset_after: int = 3


class PoseFilter:
    """Outlier rejection (distance from the current estimate) and exponential smoothing on SE(3)."""

    def __init__(self, config: FilterConfig | None = None):
        self.config = config or FilterConfig()
        if not 0.0 < self.config.alpha <= 1.0:
            raise ValueError(f"smoothing alpha must be in (0, 1], got {self.config.alpha}")
        self.pose: np.ndarray | None = None
        self._outliers = 0
        self.rejected = 0

    def reset(self) -> None:
        self.pose, self._outliers = None, 0

    def update(self, measured: np.ndarray) -> bool:
        """Fold in a measurement; returns False when it was rejected as an outlier."""
        c = self.config
        if self.pose is None:
            self.pose = measured.copy()
            return True
        dt = float(np.linalg.norm(measured[:3, 3] - self.pose[:3, 3]))
        dr = np.degrees(rotation_angle(self.pose[:3, :3].T @ measured[:3, :3]))
        if dt > c.outlier_m or dr > c.outlier_deg:
            self._outliers += 1
            self.rejected += 1
            if self._outliers >= c.reset_after:
                self.pose, self._outliers = measured.copy(), 0
                return True
            return False
        self._outliers = 0
        p = (1 - c.alpha) * self.pose[:3, 3] + c.alpha * measured[:3, 3]
        self.pose = make_transform(slerp(self.pose[:3, :3], measured[:3, :3], c.alpha), p)
        return True


@dataclass
class TrackedPose:
    base_T_object: np.ndarray
    stamp: float
    detection: Detection


@dataclass
class TrackerStats:
    frames: int = 0
    detections: int = 0
    rejected: int = 0
    latencies_s: list[float] = field(default_factory=list)


class ObjectTracker:
    """Image + capture time (+ TCP pose for eye-in-hand) -> filtered object pose in the base frame."""

    def __init__(
        self,
        estimator: ObjectPoseEstimator,
        hand_eye: np.ndarray,
        eye_in_hand: bool,
        filter_config: FilterConfig | None = None,
        plane_z: float | None = None,
    ):
        """``plane_z``: the object rests flat at this height in the base frame (fit x, y, yaw only); None = free 6-DOF."""
        self.estimator = estimator
        self.plane_z = None if plane_z is None or not np.isfinite(plane_z) else float(plane_z)
        #: base_T_cam (eye-to-hand) or tcp_T_cam (eye-in-hand).
        self.hand_eye = np.asarray(hand_eye, dtype=np.float64)
        self.eye_in_hand = eye_in_hand
        self.filter = PoseFilter(filter_config)
        self.stats = TrackerStats()

    def update(self, image: np.ndarray, stamp: float, base_T_tcp: np.ndarray | None = None) -> TrackedPose | None:
        self.stats.frames += 1
        det = self.estimator.estimate(image)
        if det is None:
            return None
        if self.eye_in_hand:
            if base_T_tcp is None:
                raise PerceptionError("eye-in-hand perception needs the TCP pose at the capture time")
            base_T_cam = base_T_tcp @ self.hand_eye
        else:
            base_T_cam = self.hand_eye
        if self.plane_z is None:
            measured = base_T_cam @ det.cam_T_object
        else:
            measured = fit_on_plane(det, base_T_cam, self.estimator.K, self.estimator.dist, self.plane_z)
        self.stats.detections += 1
        if not self.filter.update(measured):
            self.stats.rejected += 1
            return None
        assert self.filter.pose is not None
        return TrackedPose(self.filter.pose.copy(), stamp, det)
