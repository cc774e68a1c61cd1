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
    """One image's object pose in the camera frame."""

    cam_T_object: np.ndarray
    marker_ids: list[int]
    reprojection_px: float


@dataclass
class EstimatorConfig:
    #: Refuse a pose whose RMS corner reprojection error exceeds this (a wrong id or a bad fit).
    max_reprojection_px: float = 2.0
    min_markers: int = 1
    #: Sub-pixel corner refinement: the corners are the only measurement.
    subpixel: bool = True


class ObjectPoseEstimator:
    def __init__(self, model: ObjectModel, camera_matrix: np.ndarray, dist_coeffs: np.ndarray,
                 config: EstimatorConfig | None = None):
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
        return Detection(best[1], sorted({i for _, i in pairs}), best[0])


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

    def __init__(self, estimator: ObjectPoseEstimator, hand_eye: np.ndarray, eye_in_hand: bool,
                 filter_config: FilterConfig | None = None):
        self.estimator = estimator
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
        measured = base_T_cam @ det.cam_T_object
        self.stats.detections += 1
        if not self.filter.update(measured):
            self.stats.rejected += 1
            return None
        assert self.filter.pose is not None
        return TrackedPose(self.filter.pose.copy(), stamp, det)
