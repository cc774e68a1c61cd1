"""Camera frames as video files (FFmpeg through PyAV), the way LeRobot datasets store them.

Encoding follows LeRobot's own defaults where they matter to a reader: ``yuv420p``, a keyframe
every 2 frames (``g=2``, so a reader seeking to any timestamp decodes at most one extra frame)
and one presentation timestamp per frame at ``1/fps``. The codec is H.264 (``libx264``): every
FFmpeg build decodes it, where LeRobot's AV1 default needs a recent decoder. Video is lossy; the
project's own episode files keep the exact pixels.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

CODEC = "libx264"
PIX_FMT = "yuv420p"
GOP = 2
CRF = 18  # visually lossless for 8-bit RGB at these sizes; LeRobot's AV1 default is crf 30


def encode_frames(frames: np.ndarray, path: str | Path, fps: float) -> dict[str, object]:
    """Write uint8 ``[T, H, W, 3]`` RGB frames to ``path`` (MP4); returns LeRobot's ``video.*`` info."""
    import av

    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be uint8 [T, H, W, 3], got {frames.dtype} {frames.shape}")
    t, h, w, _ = frames.shape
    if h % 2 or w % 2:  # yuv420p halves the chroma planes
        raise ValueError(f"frame size {h}x{w} must be even for {PIX_FMT} video")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rate = Fraction(fps).limit_denominator(1000)
    with av.open(str(path), "w") as out:
        stream = out.add_stream(CODEC, rate=rate, options={"g": str(GOP), "crf": str(CRF)})
        stream.width, stream.height, stream.pix_fmt = w, h, PIX_FMT
        stream.codec_context.time_base = 1 / rate
        for i in range(t):
            frame = av.VideoFrame.from_ndarray(frames[i], format="rgb24")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    return {
        "video.height": h,
        "video.width": w,
        "video.codec": "h264",
        "video.pix_fmt": PIX_FMT,
        "video.is_depth_map": False,
        "video.fps": int(round(fps)) if float(fps).is_integer() else float(fps),
        "video.channels": 3,
        "has_audio": False,
    }


def decode_frames(path: str | Path) -> np.ndarray:
    """Every frame of a video file as uint8 ``[T, H, W, 3]`` RGB, in presentation order."""
    import av

    try:
        with av.open(str(path)) as src:
            frames = [f.to_ndarray(format="rgb24") for f in src.decode(video=0)]
    except (av.error.FFmpegError, OSError) as exc:
        raise ValueError(f"{path}: unreadable video ({type(exc).__name__}: {exc})") from exc
    if not frames:
        raise ValueError(f"{path}: no video frames")
    return np.stack(frames).astype(np.uint8)
