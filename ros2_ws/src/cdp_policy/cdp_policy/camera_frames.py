"""Camera frames for an image policy: validated on arrival, aligned by capture stamp (no rclpy here).

An image policy (``cdp_core`` metadata ``cameras`` and ``image_size``) sees, at each control tick,
one frame per camera next to the low-dim observation. In training (``cdp demos --cameras``) the
frame and the robot state of a step were taken at the same instant, so here each tick takes,
per camera, the frame whose **capture stamp** is closest to the arm state's stamp, among the
recent frames kept. A frame older than ``max_image_age_s`` at the tick refuses the tick with the
camera named (the policy sends nothing, the safety filter goes stale, the arm holds). A frame
that cannot be what the model was trained on (another encoding, another size, a truncated
buffer, another aspect ratio) is refused when it arrives, naming the camera and what is wrong. A
frame of the model's aspect ratio at another resolution (a RealSense's 640x480 for a 128x96
model) is resized by :func:`fit_frame`, the same function the recording converter uses; the
crop and normalisation are inside the model's graph.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

#: sensor_msgs/Image encodings accepted, and the channel order each one has.
ENCODINGS = {"rgb8": (0, 1, 2), "bgr8": (2, 1, 0)}


class CameraFrameError(ValueError):
    """A camera frame the model cannot take (encoding, size, buffer) or a camera not configured."""


def parse_camera_topics(entries: Sequence[str]) -> dict[str, str]:
    """``("agentview=/camera/agentview/image_raw", ...)`` -> ``{camera: topic}``; empty entries ignored."""
    out: dict[str, str] = {}
    for e in entries:
        if not e:
            continue
        name, sep, topic = e.partition("=")
        if not sep or not name.strip() or not topic.strip().startswith("/"):
            raise CameraFrameError(f"camera_topics entry {e!r}: expected 'camera=/topic'")
        if name.strip() in out:
            raise CameraFrameError(f"camera_topics names camera {name.strip()!r} twice")
        out[name.strip()] = topic.strip()
    return out


def decode_image(where: str, height: int, width: int, encoding: str, step: int, data: bytes | np.ndarray) -> np.ndarray:
    """A sensor_msgs/Image's fields -> uint8 RGB ``[height, width, 3]``; CameraFrameError naming ``where``."""
    if encoding not in ENCODINGS:
        raise CameraFrameError(f"{where}: encoding {encoding!r}; the model takes {' or '.join(ENCODINGS)} frames")
    if height < 1 or width < 1 or step < 3 * width:
        raise CameraFrameError(f"{where}: {width}x{height} frame with row step {step} (< 3 x width)")
    buf = np.frombuffer(data.tobytes() if isinstance(data, np.ndarray) else bytes(data), dtype=np.uint8)
    if buf.size != step * height:
        raise CameraFrameError(f"{where}: {buf.size} bytes, expected step x height = {step * height}")
    rgb = buf.reshape(height, step)[:, : 3 * width].reshape(height, width, 3)[:, :, list(ENCODINGS[encoding])]
    return np.ascontiguousarray(rgb)


#: Largest relative difference of aspect ratio (width / height) a frame may have from the model's.
ASPECT_TOLERANCE = 0.01


def fit_frame(rgb: np.ndarray, size: tuple[int, int], where: str = "frame") -> np.ndarray:
    """``rgb`` at the model's ``size`` (height, width): the one resize of the stack (OpenCV, area
    averaging), used by the policy node and by the recording converter, so a policy sees at
    deployment what it was trained on. Another aspect ratio would stretch the scene: refused."""
    h, w = rgb.shape[:2]
    if (h, w) == tuple(size):
        return rgb
    if abs((w / h) / (size[1] / size[0]) - 1.0) > ASPECT_TOLERANCE:
        raise CameraFrameError(
            f"{where}: {w}x{h} frames; the model was trained on {size[1]}x{size[0]}, another aspect ratio "
            "(set the camera's resolution: frames are resized, never stretched or cropped)"
        )
    import cv2

    return np.ascontiguousarray(cv2.resize(rgb, (int(size[1]), int(size[0])), interpolation=cv2.INTER_AREA))


@dataclass(frozen=True)
class FrameSet:
    """One tick's frames ``[cameras, H, W, 3]`` uint8 RGB, or None and why; the oldest frame's age."""

    frames: np.ndarray | None
    age_s: float
    ages: Mapping[str, float]
    reason: str = ""


class CameraFrames:
    """The recent frames of each camera a model sees (thread-safe: callbacks add, the tick reads)."""

    def __init__(
        self,
        cameras: Sequence[str],
        image_size: tuple[int, int],
        max_image_age_s: float,
        topics: Mapping[str, str] | None = None,
        keep: int = 8,
    ):
        if not cameras:
            raise CameraFrameError("an image policy needs at least one camera")
        if not max_image_age_s > 0:
            raise CameraFrameError(f"max_image_age_s must be > 0, got {max_image_age_s}")
        self.cameras = list(cameras)
        self.height, self.width = (int(image_size[0]), int(image_size[1]))
        self.max_image_age_s = float(max_image_age_s)
        self.topics = dict(topics or {})
        self._frames: dict[str, deque[tuple[float, np.ndarray]]] = {c: deque(maxlen=keep) for c in self.cameras}
        self._lock = threading.Lock()
        self.refused = 0

    def where(self, camera: str) -> str:
        """The camera and its topic, for messages."""
        topic = self.topics.get(camera)
        return f"camera {camera!r}" + (f" ({topic})" if topic else "")

    def update(
        self, camera: str, stamp: float, height: int, width: int, encoding: str, step: int, data: bytes | np.ndarray
    ) -> None:
        """A sensor_msgs/Image of ``camera`` captured at ``stamp``; CameraFrameError if unusable."""
        if camera not in self._frames:
            raise CameraFrameError(f"{camera!r} is not a camera of this model ({self.cameras})")
        try:
            self._add(camera, stamp, height, width, encoding, step, data)
        except CameraFrameError:
            self.refused += 1
            raise

    def _add(self, camera: str, stamp: float, height: int, width: int, enc: str, step: int, data) -> None:
        where = self.where(camera)
        if not np.isfinite(stamp) or stamp <= 0:
            raise CameraFrameError(f"{where}: frame without a capture stamp ({stamp})")
        rgb = fit_frame(decode_image(where, height, width, enc, step, data), (self.height, self.width), where)
        with self._lock:
            self._frames[camera].append((float(stamp), rgb))

    def at(self, t_ref: float, t_now: float) -> FrameSet:
        """Per camera, the kept frame captured closest to ``t_ref`` (the arm state's stamp); refused
        when a camera has none yet or its frame is older than ``max_image_age_s`` at ``t_now``."""
        with self._lock:
            kept = {c: list(q) for c, q in self._frames.items()}
        missing = [self.where(c) for c, q in kept.items() if not q]
        if missing:
            return FrameSet(None, float("inf"), {}, f"no frame yet from {', '.join(missing)}")
        picked = {c: min(q, key=lambda sf: abs(sf[0] - t_ref)) for c, q in kept.items()}
        ages = {c: t_now - s for c, (s, _) in picked.items()}
        stale = [
            f"{self.where(c)} ({a:.3f} s > {self.max_image_age_s:g} s)"
            for c, a in ages.items()
            if a > self.max_image_age_s
        ]
        if stale:
            return FrameSet(None, max(ages.values()), ages, f"stale camera (max_image_age_s): {', '.join(stale)}")
        frames = np.stack([picked[c][1] for c in self.cameras])
        return FrameSet(frames, max(ages.values()), ages)

    def clear(self) -> None:
        with self._lock:
            for q in self._frames.values():
                q.clear()
