"""Frame sources on the RealSense SDK (pyrealsense2): a live camera, a recording, and a software device.

All three deliver frames through librealsense's own machinery (pipeline for the live device and
the recording; the software device's sensor and an ``rs.syncer`` for injected frames), so the
timestamps, frame numbers and stream intrinsics the node sees are the SDK's.

Capture time: the live source turns on the sensor's global time (``global_time_enabled``), so
frame timestamps are host-clock milliseconds of the capture, not of the arrival (a colour frame
arrives ~66 ms after its exposure). Injected frames carry the time their content was rendered
for.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np


class CameraError(RuntimeError):
    """The camera cannot be opened or stopped delivering frames; the message names the problem."""


@dataclass
class Frame:
    image: np.ndarray  # H x W x 3 RGB uint8
    #: Capture time, seconds on the host clock (the ROS stamp).
    stamp: float
    number: int
    #: The stream's intrinsics as the SDK reports them: (K 3x3, distortion coefficients).
    camera_matrix: np.ndarray
    dist_coeffs: np.ndarray


def _rs():
    try:
        import pyrealsense2 as rs
    except ImportError as exc:  # libusb-1.0-0 missing is the usual cause
        raise CameraError(f"pyrealsense2 cannot be imported ({exc}); install it and Debian's libusb-1.0-0") from None
    return rs


def _frame_from(color, fallback_stamp: float) -> Frame:
    rs = _rs()
    img = np.asanyarray(color.get_data()).copy()
    intr = color.get_profile().as_video_stream_profile().get_intrinsics()
    K = np.array([[intr.fx, 0.0, intr.ppx], [0.0, intr.fy, intr.ppy], [0.0, 0.0, 1.0]])
    domain = color.get_frame_timestamp_domain()
    if domain in (rs.timestamp_domain.global_time, rs.timestamp_domain.system_time):
        stamp = color.get_timestamp() / 1000.0
    else:  # device clock with no host mapping: the arrival time is the best there is
        stamp = fallback_stamp
    return Frame(img, stamp, int(color.get_frame_number()), K, np.array(intr.coeffs, dtype=np.float64))


class LiveSource:
    """A RealSense camera by serial number, colour only, fixed exposure and white balance."""

    def __init__(
        self,
        serial: str = "",
        width: int = 640,
        height: int = 480,
        fps: int = 30,
        exposure_us: float = 0.0,
        white_balance_k: float = 0.0,
        record_to: str = "",
    ):
        rs = _rs()
        self._rs = rs
        self.pipeline = rs.pipeline()
        cfg = rs.config()
        if serial:
            cfg.enable_device(serial)
        cfg.enable_stream(rs.stream.color, width, height, rs.format.rgb8, fps)
        if record_to:
            cfg.enable_record_to_file(record_to)
        try:
            profile = self.pipeline.start(cfg)
        except RuntimeError as exc:
            raise CameraError(
                f"no RealSense {serial or '(any serial)'} streaming colour {width}x{height}@{fps}: {exc}"
            ) from None
        sensor = profile.get_device().first_color_sensor()
        self._set(sensor, rs.option.global_time_enabled, 1.0)
        # Auto exposure / white balance make collection and evaluation see different images.
        if exposure_us > 0:
            self._set(sensor, rs.option.enable_auto_exposure, 0.0)
            self._set(sensor, rs.option.exposure, exposure_us)
        if white_balance_k > 0:
            self._set(sensor, rs.option.enable_auto_white_balance, 0.0)
            self._set(sensor, rs.option.white_balance, white_balance_k)

    @staticmethod
    def _set(sensor, option, value: float) -> None:
        if sensor.supports(option):
            sensor.set_option(option, value)

    def read(self, timeout_s: float = 1.0) -> Frame | None:
        ok, frames = self.pipeline.try_wait_for_frames(int(timeout_s * 1000))
        if not ok:
            return None
        color = frames.get_color_frame()
        return _frame_from(color, time.time()) if color else None

    def close(self) -> None:
        self.pipeline.stop()


class PlaybackSource:
    """A recording (librealsense .bag or rosbag2 .db3) played through the pipeline."""

    def __init__(self, path: str, realtime: bool = True, loop: bool = False):
        import os

        rs = _rs()
        if not os.path.isfile(path):
            raise CameraError(f"recording {path!r} does not exist")
        self.pipeline = rs.pipeline()
        cfg = rs.config()
        cfg.enable_device_from_file(path, repeat_playback=loop)
        cfg.enable_stream(rs.stream.color)
        try:
            profile = self.pipeline.start(cfg)
        except RuntimeError as exc:
            raise CameraError(f"cannot play {path!r}: {exc}") from None
        profile.get_device().as_playback().set_real_time(realtime)

    def read(self, timeout_s: float = 1.0) -> Frame | None:
        ok, frames = self.pipeline.try_wait_for_frames(int(timeout_s * 1000))
        if not ok:
            return None
        color = frames.get_color_frame()
        return _frame_from(color, time.time()) if color else None

    def close(self) -> None:
        self.pipeline.stop()


class SoftwareSource:
    """A librealsense software device: other code injects RGB frames, the node reads them from the syncer.

    ``record_to`` wraps the device in an ``rs.recorder``, so a simulated session can be replayed
    later by :class:`PlaybackSource` exactly like a recording of a real camera.
    """

    def __init__(
        self,
        camera_matrix: np.ndarray,
        width: int,
        height: int,
        fps: int = 10,
        serial: str = "cdp-sim-camera",
        record_to: str = "",
    ):
        rs = _rs()
        self._rs = rs
        self.width, self.height = int(width), int(height)
        self.device = rs.software_device()
        self.device.register_info(rs.camera_info.name, "CDP simulated RealSense")
        self.device.register_info(rs.camera_info.serial_number, serial)
        self.sensor = self.device.add_sensor("RGB Camera")
        intr = rs.intrinsics()
        intr.width, intr.height = self.width, self.height
        intr.fx, intr.fy = float(camera_matrix[0, 0]), float(camera_matrix[1, 1])
        intr.ppx, intr.ppy = float(camera_matrix[0, 2]), float(camera_matrix[1, 2])
        intr.model, intr.coeffs = rs.distortion.none, [0.0] * 5
        vs = rs.video_stream()
        vs.type, vs.index, vs.uid = rs.stream.color, 0, 0
        vs.width, vs.height, vs.fps, vs.bpp, vs.fmt = self.width, self.height, int(fps), 3, rs.format.rgb8
        vs.intrinsics = intr
        self.profile = self.sensor.add_video_stream(vs)
        self._recorder = rs.recorder(record_to, self.device) if record_to else None
        reading = self._recorder.query_sensors()[0] if self._recorder is not None else self.sensor
        self._reading = reading
        self.syncer = rs.syncer()
        reading.open(self.profile)
        reading.start(self.syncer)
        self._n = 0

    def inject(self, rgb: np.ndarray, stamp: float) -> None:
        """Hand one rendered frame (H x W x 3 uint8 RGB) captured at ``stamp`` (host seconds) to the SDK."""
        rs = self._rs
        img = np.ascontiguousarray(rgb, dtype=np.uint8)
        if img.shape != (self.height, self.width, 3):
            raise ValueError(f"frame is {img.shape}, the stream is {self.height}x{self.width}x3")
        f = rs.software_video_frame()
        f.pixels, f.stride, f.bpp = img, self.width * 3, 3
        f.timestamp, f.domain = stamp * 1000.0, rs.timestamp_domain.system_time
        f.frame_number = self._n
        f.profile = self.profile.as_video_stream_profile()
        self._n += 1
        self.sensor.on_video_frame(f)

    def read(self, timeout_s: float = 1.0) -> Frame | None:
        ok, frames = self.syncer.try_wait_for_frames(int(timeout_s * 1000))
        if not ok:
            return None
        color = frames.get_color_frame()
        return _frame_from(color, time.time()) if color else None

    def close(self) -> None:
        try:
            self._reading.stop()
            self._reading.close()
        finally:
            self._recorder = None  # the recording is finalised when the recorder is released
