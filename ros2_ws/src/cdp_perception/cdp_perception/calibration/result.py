"""The calibration YAML: what calibration writes and perception loads (and refuses when wrong).

One file holds the camera intrinsics and the hand-eye transform::

    version: 1
    date: 2026-01-01T12:00:00+00:00        # ISO 8601, when the calibration was computed
    camera: {serial: "...", width: 640, height: 480}
    intrinsics: {fx, fy, cx, cy, dist: [k1, k2, p1, p2, k3], method, rms_px, views}
    hand_eye:
      mode: eye_to_hand | eye_in_hand
      # eye_to_hand: base_T_cam (camera in fr3_link0); eye_in_hand: tcp_T_cam (camera in the TCP frame)
      transform: {position: [x, y, z], quat_xyzw: [x, y, z, w]}
      method: TSAI | PARK | HORAUD | ANDREFF | DANIILIDIS | RWHE_SHAH | RWHE_LI
      residuals: {rotation_deg, translation_mm, reprojection_px, heldout_translation_mm, ...}
      views: 14
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..geometry import pose_to_transform, transform_to_pose

MODES = ("eye_to_hand", "eye_in_hand")


class CalibrationError(ValueError):
    """A calibration file that is missing, malformed or refused; the message says which and why."""


@dataclass
class Intrinsics:
    width: int
    height: int
    camera_matrix: np.ndarray
    dist_coeffs: np.ndarray = field(default_factory=lambda: np.zeros(5))
    method: str = ""
    rms_px: float = float("nan")
    views: int = 0

    def to_dict(self) -> dict[str, Any]:
        k = self.camera_matrix
        return {
            "width": int(self.width),
            "height": int(self.height),
            "fx": float(k[0, 0]),
            "fy": float(k[1, 1]),
            "cx": float(k[0, 2]),
            "cy": float(k[1, 2]),
            "dist": [float(v) for v in self.dist_coeffs],
            "method": self.method,
            "rms_px": float(self.rms_px),
            "views": int(self.views),
        }


@dataclass
class HandEye:
    mode: str
    #: base_T_cam for eye_to_hand, tcp_T_cam for eye_in_hand.
    transform: np.ndarray
    method: str = ""
    residuals: dict[str, float] = field(default_factory=dict)
    views: int = 0

    def to_dict(self) -> dict[str, Any]:
        p, q = transform_to_pose(self.transform)
        return {
            "mode": self.mode,
            "transform": {"position": [float(v) for v in p], "quat_xyzw": [float(v) for v in q]},
            "method": self.method,
            "residuals": {k: float(v) for k, v in self.residuals.items()},
            "views": int(self.views),
        }


@dataclass
class Calibration:
    intrinsics: Intrinsics
    hand_eye: HandEye | None
    date: dt.datetime
    serial: str = ""

    def age_s(self, now: dt.datetime | None = None) -> float:
        now = now or dt.datetime.now(dt.timezone.utc)
        return (now - self.date).total_seconds()

    def stale_warning(self, max_age_s: float, now: dt.datetime | None = None) -> str | None:
        """A warning text when the calibration is older than ``max_age_s`` (cameras get bumped), else None."""
        age = self.age_s(now)
        if max_age_s > 0 and age > max_age_s:
            return (
                f"calibration from {self.date.isoformat()} is {age / 3600:.1f} h old (limit "
                f"{max_age_s / 3600:.1f} h): re-run the calibration if the camera or its mount may have moved"
            )
        return None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "version": 1,
            "date": self.date.isoformat(),
            "camera": {
                "serial": self.serial,
                "width": int(self.intrinsics.width),
                "height": int(self.intrinsics.height),
            },
            "intrinsics": self.intrinsics.to_dict(),
        }
        if self.hand_eye is not None:
            d["hand_eye"] = self.hand_eye.to_dict()
        return d

    def save(self, path: str | Path) -> Path:
        import yaml

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))
        tmp.replace(path)  # never leave a half-written calibration behind
        return path


def _num(d: dict[str, Any], key: str, where: str) -> float:
    if key not in d:
        raise CalibrationError(f"{where}: missing '{key}'")
    try:
        v = float(d[key])
    except (TypeError, ValueError):
        raise CalibrationError(f"{where}: '{key}' is not a number ({d[key]!r})") from None
    if not math.isfinite(v):
        raise CalibrationError(f"{where}: '{key}' is not finite ({v})")
    return v


def _vec(d: dict[str, Any], key: str, n: int, where: str) -> np.ndarray:
    v = d.get(key)
    if not isinstance(v, (list, tuple)) or len(v) != n:
        raise CalibrationError(f"{where}: '{key}' must be a list of {n} numbers, got {v!r}")
    try:
        a = np.array([float(x) for x in v])
    except (TypeError, ValueError):
        raise CalibrationError(f"{where}: '{key}' must be numbers, got {v!r}") from None
    if not np.isfinite(a).all():
        raise CalibrationError(f"{where}: '{key}' has non-finite values {v!r}")
    return a


def from_dict(d: Any, source: str = "calibration", require_hand_eye: bool = True) -> Calibration:
    """Validate and parse; every problem raises :class:`CalibrationError` naming the field."""
    if not isinstance(d, dict):
        raise CalibrationError(f"{source}: not a YAML mapping")
    if d.get("version") != 1:
        raise CalibrationError(f"{source}: unsupported or missing 'version' ({d.get('version')!r}; expected 1)")
    try:
        date = dt.datetime.fromisoformat(str(d.get("date")))
    except ValueError:
        raise CalibrationError(f"{source}: 'date' is not an ISO 8601 time ({d.get('date')!r})") from None
    if date.tzinfo is None:
        date = date.replace(tzinfo=dt.timezone.utc)
    intr = d.get("intrinsics")
    if not isinstance(intr, dict):
        raise CalibrationError(f"{source}: missing 'intrinsics'")
    where = f"{source}: intrinsics"
    w, h = int(_num(intr, "width", where)), int(_num(intr, "height", where))
    fx, fy, cx, cy = (_num(intr, k, where) for k in ("fx", "fy", "cx", "cy"))
    if w <= 0 or h <= 0 or fx <= 0 or fy <= 0 or not (0 <= cx < w and 0 <= cy < h):
        raise CalibrationError(f"{where}: implausible values (size {w}x{h}, f {fx}/{fy}, centre {cx}/{cy})")
    dist = intr.get("dist", [0.0] * 5)
    if not isinstance(dist, (list, tuple)) or len(dist) not in (4, 5, 8, 12, 14):
        raise CalibrationError(f"{where}: 'dist' must have 4, 5, 8, 12 or 14 coefficients, got {dist!r}")
    dist_a = _vec(intr, "dist", len(dist), where) if "dist" in intr else np.zeros(5)
    intrinsics = Intrinsics(
        w,
        h,
        np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1.0]]),
        dist_a,
        str(intr.get("method", "")),
        float(intr.get("rms_px", float("nan"))),
        int(intr.get("views", 0)),
    )
    he = d.get("hand_eye")
    hand_eye = None
    if he is None:
        if require_hand_eye:
            raise CalibrationError(f"{source}: no 'hand_eye' section (run the hand-eye calibration first)")
    else:
        where = f"{source}: hand_eye"
        if not isinstance(he, dict):
            raise CalibrationError(f"{where}: not a mapping")
        if he.get("mode") not in MODES:
            raise CalibrationError(f"{where}: 'mode' must be one of {MODES}, got {he.get('mode')!r}")
        tf = he.get("transform")
        if not isinstance(tf, dict):
            raise CalibrationError(f"{where}: missing 'transform'")
        pos = _vec(tf, "position", 3, where + ".transform")
        quat = _vec(tf, "quat_xyzw", 4, where + ".transform")
        if abs(np.linalg.norm(quat) - 1.0) > 1e-3:
            raise CalibrationError(
                f"{where}.transform: quat_xyzw is not a unit quaternion (norm {np.linalg.norm(quat):.4f})"
            )
        if np.linalg.norm(pos) > 5.0:
            raise CalibrationError(f"{where}.transform: camera {np.linalg.norm(pos):.1f} m away is implausible")
        residuals = he.get("residuals", {}) or {}
        hand_eye = HandEye(
            he["mode"],
            pose_to_transform(pos, quat),
            str(he.get("method", "")),
            {str(k): float(v) for k, v in residuals.items()},
            int(he.get("views", 0)),
        )
    serial = str((d.get("camera") or {}).get("serial", ""))
    return Calibration(intrinsics, hand_eye, date, serial)


def load(path: str | Path, require_hand_eye: bool = True) -> Calibration:
    """Load and validate a calibration file; a missing or malformed file raises :class:`CalibrationError`."""
    import yaml

    path = Path(path)
    if not str(path) or not path.is_file():
        raise CalibrationError(f"calibration file {str(path)!r} does not exist (run cdp-calibrate first)")
    try:
        d = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise CalibrationError(f"calibration file {path} is not valid YAML: {exc}") from None
    return from_dict(d, str(path), require_hand_eye)
