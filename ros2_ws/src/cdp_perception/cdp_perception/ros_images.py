"""sensor_msgs Image / CameraInfo <-> numpy, without cv_bridge (not on PyPI)."""

from __future__ import annotations

import numpy as np
from cdp_ros_common.conversions import sec_to_time
from sensor_msgs.msg import CameraInfo, Image

_CHANNELS = {"rgb8": 3, "bgr8": 3, "mono8": 1}


def image_to_msg(rgb: np.ndarray, stamp: float, frame_id: str) -> Image:
    msg = Image()
    msg.header.stamp = sec_to_time(stamp)
    msg.header.frame_id = frame_id
    msg.height, msg.width = int(rgb.shape[0]), int(rgb.shape[1])
    msg.encoding = "rgb8"
    msg.is_bigendian = 0
    msg.step = msg.width * 3
    msg.data = np.ascontiguousarray(rgb, dtype=np.uint8).tobytes()
    return msg


def msg_to_image(msg: Image) -> np.ndarray:
    """H x W x 3 RGB (or H x W for mono8); raises ValueError for encodings or sizes that do not add up."""
    ch = _CHANNELS.get(msg.encoding)
    if ch is None:
        raise ValueError(f"unsupported image encoding {msg.encoding!r} (supported: {sorted(_CHANNELS)})")
    buf = np.frombuffer(bytes(msg.data), dtype=np.uint8)
    if msg.step < msg.width * ch or buf.size < msg.step * msg.height:
        raise ValueError(f"image data of {buf.size} bytes does not fit {msg.width}x{msg.height} {msg.encoding}")
    img = buf[: msg.step * msg.height].reshape(msg.height, msg.step)[:, : msg.width * ch]
    img = img.reshape(msg.height, msg.width, ch) if ch > 1 else img
    return img[:, :, ::-1].copy() if msg.encoding == "bgr8" else img


def camera_info(stamp: float, frame_id: str, width: int, height: int, k: np.ndarray, dist: np.ndarray) -> CameraInfo:
    msg = CameraInfo()
    msg.header.stamp = sec_to_time(stamp)
    msg.header.frame_id = frame_id
    msg.width, msg.height = int(width), int(height)
    msg.distortion_model = "plumb_bob"
    d = [float(v) for v in np.asarray(dist).reshape(-1)]
    msg.d = (d + [0.0] * 5)[:5] if len(d) <= 5 else d
    msg.k = [float(v) for v in np.asarray(k).reshape(9)]
    msg.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    p = np.zeros((3, 4))
    p[:3, :3] = k
    msg.p = [float(v) for v in p.reshape(12)]
    return msg
