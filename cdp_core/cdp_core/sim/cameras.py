"""Cameras of the simulated task scenes, rendered offscreen for image (visuomotor) policies.

A camera here is MuJoCo's free camera (look-at point, distance, azimuth, elevation), so adding
one changes nothing in the task's MJCF: the physics of a scene with and without cameras is the
same bit for bit. Frames are uint8 ``[H, W, 3]`` RGB, row 0 at the top, as a RealSense colour
stream delivers them.

Rendering cost on a 2-core CPU with OSMesa (measured for the FR3 + peg scene): about 6 frames/s
with MuJoCo's default shadows and reflections, about 25 frames/s at 96x96 without them, which is
why the renderer turns them off (an image policy needs the geometry, not soft shadows).
"""

from __future__ import annotations

import dataclasses

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


def use_offscreen_gl() -> None:
    """OSMesa unless the user chose a GL backend (MuJoCo reads this once, when it is imported)."""
    os.environ.setdefault("MUJOCO_GL", "osmesa")
    os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])


@dataclass(frozen=True)
class CameraConfig:
    """One simulated camera: a fixed free camera looking at the work area."""

    name: str = "agentview"
    width: int = 96
    height: int = 96
    lookat: tuple[float, float, float] = (0.5, 0.0, 0.12)
    distance: float = 1.0
    #: Degrees about the world z axis; 160: in front of the robot and a little to its left.
    azimuth: float = 160.0
    elevation: float = -35.0
    #: ``world``: the free camera above (a fixed agent view). ``hand``: the camera of that name the
    #: scene carries on the hand (:data:`HAND_CAMERAS`), moving and turning with it.
    mount: str = "world"

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name:
            raise ValueError(f"camera name must be non-empty without '/', got {self.name!r}")
        if not (8 <= self.width <= 1024 and 8 <= self.height <= 1024):
            raise ValueError(f"camera {self.name}: size {self.width}x{self.height} outside 8..1024")
        if self.mount not in ("world", "hand") or (self.mount == "hand" and self.name not in HAND_CAMERAS):
            raise ValueError(f"camera {self.name}: mount {self.mount!r} (world, or hand for {sorted(HAND_CAMERAS)})")


#: Cameras the scene builder puts on the hand (``robot0_hand`` frame: z along the tool, the TCP
#: 0.1034 m out): MJCF ``<camera>`` attributes. ``wrist``: beside the hand, looking past the
#: fingertips at what they hold and approach (a wrist-mounted RealSense D405's place).
HAND_CAMERAS: dict[str, dict[str, str]] = {
    "wrist": {"pos": "0.07 0 0.02", "xyaxes": "0 1 0 0.894 0 0.447", "fovy": "75"},
}


def add_hand_cameras(hand: Any) -> None:
    """Add :data:`HAND_CAMERAS` to the hand body's MJCF element (no mass, no collision: physics unchanged)."""
    import xml.etree.ElementTree as ET

    for name, attrs in HAND_CAMERAS.items():
        ET.SubElement(hand, "camera", {"name": f"cdp_{name}", **attrs})


#: The named cameras a task scene offers (the agent view the CDP paper's real Franka runs used).
CAMERAS: dict[str, CameraConfig] = {"agentview": CameraConfig(), "wrist": CameraConfig(name="wrist", mount="hand")}


def cameras_by_name(names: Sequence[str], size: tuple[int, int] | None = None) -> tuple[CameraConfig, ...]:
    """The named cameras, optionally at ``size`` = (height, width); unknown names raise ValueError."""
    unknown = [n for n in names if n not in CAMERAS]
    if unknown:
        raise ValueError(f"unknown camera(s) {unknown} (known: {sorted(CAMERAS)})")
    out = []
    for n in names:
        c = CAMERAS[n]
        if size is not None:
            c = dataclasses.replace(c, width=size[1], height=size[0])
        out.append(c)
    return tuple(out)


def camera_shapes(cameras: Sequence[CameraConfig]) -> dict[str, list[int]]:
    """``{name: [H, W]}`` as datasets and model metadata record them."""
    return {c.name: [c.height, c.width] for c in cameras}


class CameraRenderer:
    """Renders a MuJoCo ``(model, data)`` through each configured camera: ``render(data) -> {name: rgb}``."""

    def __init__(self, model: Any, cameras: Sequence[CameraConfig]):
        import mujoco

        self._mj = mujoco
        self.cameras = tuple(cameras)
        self._renderers: dict[tuple[int, int], Any] = {}
        self._cams: dict[str, Any] = {}
        for c in self.cameras:
            key = (c.height, c.width)
            if key not in self._renderers:
                self._renderers[key] = mujoco.Renderer(model, c.height, c.width)
            cam = mujoco.MjvCamera()
            if c.mount == "hand":
                cam.type = mujoco.mjtCamera.mjCAMERA_FIXED
                cam.fixedcamid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, f"cdp_{c.name}")
                if cam.fixedcamid < 0:
                    raise ValueError(f"camera {c.name}: the scene has no hand camera cdp_{c.name}")
            else:
                cam.type = mujoco.mjtCamera.mjCAMERA_FREE
                cam.lookat[:] = c.lookat
                cam.distance, cam.azimuth, cam.elevation = c.distance, c.azimuth, c.elevation
            self._cams[c.name] = cam

    def render(self, data: Any) -> dict[str, np.ndarray]:
        """One uint8 ``[H, W, 3]`` frame per camera of the scene state in ``data``."""
        flags = self._mj.mjtRndFlag
        frames = {}
        for c in self.cameras:
            r = self._renderers[(c.height, c.width)]
            r.update_scene(data, camera=self._cams[c.name])
            for f in (flags.mjRND_SHADOW, flags.mjRND_REFLECTION, flags.mjRND_SKYBOX):
                r.scene.flags[f] = 0
            frames[c.name] = np.array(r.render(), dtype=np.uint8)
        return frames

    def close(self) -> None:
        for r in self._renderers.values():
            r.close()
        self._renderers.clear()


def stack_frames(frames: Sequence[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Per-step ``{name: [H, W, 3]}`` frames -> ``{name: [T, H, W, 3]}`` uint8 arrays."""
    if not frames:
        return {}
    return {k: np.stack([f[k] for f in frames]).astype(np.uint8) for k in frames[0]}
