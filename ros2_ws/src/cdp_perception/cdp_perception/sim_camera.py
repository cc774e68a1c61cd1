"""Simulated camera: the task scene rendered offscreen by MuJoCo, with fiducials textured on.

:func:`build_camera_scene` builds a copy of a task's scene (cdp_core's one scene builder, so the
arm, the task bodies and their geometry are exactly the simulator's) and adds, without touching
the task's geometry: ArUco markers on the tracked object (visual-only geoms under the task body),
optionally a ChArUco board (on the table or carried by the hand), and a camera fixed in the
world (eye-to-hand) or carried by the hand (eye-in-hand). The copy is never stepped: its state
is set from the running simulation (joint positions, object pose) before each render, which is
what the simulated camera node does from /joint_states and the ground-truth object pose.

:class:`SceneRenderer` renders any (model, data) pair through a named camera, so the same class
can render inside a process that owns a stepping simulation.

Camera frames follow OpenCV (x right, y down, z forward); MuJoCo cameras look along -z with y up,
so each camera sits in a body whose frame is the OpenCV camera frame.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cdp_core.robot.kinematics import HAND_TCP_Z
from cdp_core.sim.cameras import use_offscreen_gl
from cdp_core.robot.rotations import W_NON_NEGATIVE

from .geometry import invert, make_transform, matrix_to_quat
from .markers import BoardSpec, ObjectModel, board_image, marker_image, object_model, sheet_scale

CAMERA_NAME = "cdp_camera"
CAMERA_BODY = "cdp_camera_body"
BOARD_BODY = "cdp_board"
HAND_BODY = "robot0_hand"
BASE_BODY = "robot0_fr3_link0"
#: franky-sim's (and libfranka's default) TCP in the hand frame.
HAND_T_TCP = make_transform(np.eye(3), [0.0, 0.0, HAND_TCP_Z])

#: Default eye-to-hand pose: in front of and above the robot, looking at the work area.
DEFAULT_EYE_TO_HAND = {"eye": (1.0, 0.3, 0.75), "target": (0.5, 0.0, 0.12)}
#: Default eye-in-hand pose (hand_T_cam): beside the fingers, looking along the tool axis.
DEFAULT_EYE_IN_HAND = make_transform(np.eye(3), [0.07, 0.0, 0.02])


@dataclass
class CameraSpec:
    """A pinhole camera without distortion (what MuJoCo renders)."""

    width: int = 640
    height: int = 480
    fovy_deg: float = 50.0
    #: "world" (eye-to-hand) or "hand" (eye-in-hand).
    mount: str = "world"
    #: mount_T_cam (OpenCV camera frame); world = the simulator's world (the robot base sits at its origin).
    mount_T_cam: np.ndarray = field(default_factory=lambda: _default_world_camera())

    def __post_init__(self) -> None:
        if self.mount not in ("world", "hand"):
            raise ValueError(f"camera mount must be 'world' or 'hand', got {self.mount!r}")
        if self.width <= 0 or self.height <= 0 or not 1.0 < self.fovy_deg < 170.0:
            raise ValueError(f"bad camera size/field of view: {self.width}x{self.height}, fovy {self.fovy_deg}")

    def camera_matrix(self) -> np.ndarray:
        """The ground-truth K of the render (pixel centres at integer coordinates, OpenCV's convention)."""
        f = (self.height / 2.0) / np.tan(np.radians(self.fovy_deg) / 2.0)
        return np.array([[f, 0.0, (self.width - 1) / 2.0], [0.0, f, (self.height - 1) / 2.0], [0.0, 0.0, 1.0]])


def _default_world_camera() -> np.ndarray:
    from .geometry import look_at

    return look_at(np.array(DEFAULT_EYE_TO_HAND["eye"]), np.array(DEFAULT_EYE_TO_HAND["target"]))


def _fmt(v: Any) -> str:
    return " ".join(f"{float(x):.9g}" for x in np.asarray(v).reshape(-1))


def _wxyz(r: np.ndarray) -> np.ndarray:
    x, y, z, w = matrix_to_quat(r, hemisphere=W_NON_NEGATIVE)
    return np.array([w, x, y, z])


def _body(parent: ET.Element, name: str, parent_T_body: np.ndarray) -> ET.Element:
    return ET.SubElement(
        parent, "body", name=name, pos=_fmt(parent_T_body[:3, 3]), quat=_fmt(_wxyz(parent_T_body[:3, :3]))
    )


#: A MuJoCo plane shows its 2D texture with image column u along +x and image row v along -y,
#: seen from +z (checked by test_perception_sim's marker pose test). A "sheet" frame here is
#: the printed image's frame: origin at its centre, x along u, y along -v, z out of the paper,
#: which is the plane geom's own frame.
def _add_sheet(
    parent: ET.Element,
    asset: ET.Element,
    name: str,
    image_file: str,
    parent_T_sheet: np.ndarray,
    half_w: float,
    half_h: float,
) -> None:
    ET.SubElement(asset, "texture", name=f"{name}_tex", type="2d", file=image_file)
    ET.SubElement(
        asset,
        "material",
        name=f"{name}_mat",
        texture=f"{name}_tex",
        texrepeat="1 1",
        texuniform="false",
        specular="0",
        shininess="0",
        reflectance="0",
    )
    ET.SubElement(
        parent,
        "geom",
        name=name,
        type="box",
        size=f"{half_w:.9g} {half_h:.9g} 0.0005",
        material=f"{name}_mat",
        pos=_fmt(parent_T_sheet[:3, 3]),
        quat=_fmt(_wxyz(parent_T_sheet[:3, :3])),
        contype="0",
        conaffinity="0",
        group="1",
        mass="0",
    )


def _png(img: np.ndarray) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".png", np.ascontiguousarray(img))
    if not ok:
        raise RuntimeError("PNG encoding of a marker texture failed")
    return buf.tobytes()


def board_T_sheet(spec: BoardSpec) -> np.ndarray:
    """Pose of the sheet frame in OpenCV's ChArUco board frame.

    OpenCV's board frame has its origin at the board's top-left outer corner, x along the image
    columns, y along the image rows (down) and z into the board, so the sheet (z out of the
    paper) is rotated by pi about x and centred on the board.
    """
    w, h = spec.squares_x * spec.square_m, spec.squares_y * spec.square_m
    return make_transform(np.diag([1.0, -1.0, -1.0]), [w / 2, h / 2, 0.0])


@dataclass
class BoardMount:
    """Where the calibration board is: fixed in the world (eye-in-hand) or carried by the hand (eye-to-hand)."""

    spec: BoardSpec = field(default_factory=BoardSpec)
    mount: str = "hand"
    #: mount_T_board (OpenCV board frame).
    mount_T_board: np.ndarray = field(default_factory=lambda: default_hand_board())


def default_hand_board(spec: BoardSpec | None = None) -> np.ndarray:
    """hand_T_board of a board held below the fingertips, its printed face towards the hand's +x axis."""
    spec = spec or BoardSpec()
    # board x = -hand y, board y = hand z (image rows run away from the hand), board z (into the board) = -hand x
    r = np.column_stack([[0.0, -1.0, 0.0], [0.0, 0.0, 1.0], [-1.0, 0.0, 0.0]])
    w = spec.squares_x * spec.square_m
    return make_transform(r, [0.0, w / 2, 0.13])


def default_table_board(spec: BoardSpec | None = None) -> np.ndarray:
    """world_T_board of a board lying flat on the table in front of the robot (z into the table)."""
    spec = spec or BoardSpec()
    w, h = spec.squares_x * spec.square_m, spec.squares_y * spec.square_m
    r = np.diag([1.0, -1.0, -1.0])
    return make_transform(r, [0.5 - w / 2, h / 2, 0.001])


class CameraScene:
    """A non-stepping copy of a task scene with fiducials and a camera; set its state, then render."""

    def __init__(self, task: str, camera: CameraSpec, board: BoardMount | None = None, object_markers: bool = True):
        import mujoco
        from cdp_core.sim.env import HOME_Q, build_task_simulator
        from cdp_core.sim.tasks import get_task

        self.task = get_task(task)
        self.camera = camera
        self.board = board
        self.object: ObjectModel | None = object_model(task) if object_markers else None
        sim, _robot = build_task_simulator(self.task, HOME_Q)
        scene = sim.scene
        asset = scene.find("asset")
        worldbody = sim.worldbody
        hand = worldbody.find(f".//body[@name='{HAND_BODY}']")
        if asset is None or hand is None:
            raise RuntimeError("franky-sim's scene has no <asset> or no hand body: cannot add the camera")
        visual = scene.find("visual")
        ET.SubElement(visual, "global", offwidth=str(max(camera.width, 640)), offheight=str(max(camera.height, 480)))
        assets: dict[str, bytes] = {}

        if self.object is not None:
            body = worldbody.find(f".//body[@name='{self.object.body}']")
            if body is None:
                raise RuntimeError(f"task {task!r} has no body {self.object.body!r} to carry its markers")
            for m in self.object.markers:
                fname = f"cdp_marker_{m.marker_id}.png"
                assets[fname] = _png(marker_image(m.marker_id, self.object.dictionary))
                half = m.size_m * sheet_scale() / 2
                _add_sheet(
                    body,
                    asset,
                    f"cdp_marker_{m.marker_id}",
                    fname,
                    self.object.body_T_object @ m.object_T_marker,
                    half,
                    half,
                )

        if board is not None:
            parent = hand if board.mount == "hand" else worldbody
            bbody = _body(parent, BOARD_BODY, board.mount_T_board)
            assets["cdp_board.png"] = _png(board_image(board.spec))
            w, h = board.spec.size_m
            _add_sheet(bbody, asset, "cdp_board_sheet", "cdp_board.png", board_T_sheet(board.spec), w / 2, h / 2)

        parent = hand if camera.mount == "hand" else worldbody
        cbody = _body(parent, CAMERA_BODY, camera.mount_T_cam)
        # MuJoCo camera: -z forward, y up = OpenCV's frame turned by pi about x.
        ET.SubElement(cbody, "camera", name=CAMERA_NAME, pos="0 0 0", quat="0 1 0 0", fovy=f"{camera.fovy_deg:.9g}")

        xml = ET.tostring(scene, encoding="unicode")
        self.model = mujoco.MjModel.from_xml_string(xml, assets)
        self.data = mujoco.MjData(self.model)
        self._mujoco = mujoco
        ids = [mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_JOINT, f"robot0_fr3_joint{i}") for i in range(1, 8)]
        if min(ids) < 0:
            raise RuntimeError("franky-sim's FR3 joints are not named robot0_fr3_joint1..7")
        self._qadr = np.array([self.model.jnt_qposadr[j] for j in ids])
        fingers = [mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_JOINT, f"robot0_finger_joint{i}") for i in (1, 2)]
        self._finger_adr = np.array([self.model.jnt_qposadr[j] for j in fingers if j >= 0])
        self._cam_body = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_BODY, CAMERA_BODY)
        self.set_joints(HOME_Q)
        self.set_fingers(0.04)
        self.params = self.task.sample(np.random.default_rng(0))
        self.task.apply(self.model, self.data, self.params)
        self.forward()

    # --- state ------------------------------------------------------------------------
    def set_joints(self, q: np.ndarray) -> None:
        q = np.asarray(q, dtype=np.float64).reshape(-1)
        if q.shape != (7,) or not np.isfinite(q).all():
            raise ValueError(f"need 7 finite joint positions, got {q!r}")
        self.data.qpos[self._qadr] = q

    def set_fingers(self, half_width: float) -> None:
        if len(self._finger_adr):
            self.data.qpos[self._finger_adr] = float(half_width)

    def set_object_pose(self, position: np.ndarray, quat_xyzw: np.ndarray) -> None:
        """Place the task object where the simulator says it is (the ground-truth topic's pose)."""
        self.params = self.task.params_from_object_pose(position, quat_xyzw)
        self.task.apply(self.model, self.data, self.params)

    def set_camera_pose(self, mount_T_cam: np.ndarray) -> None:
        """Move the camera within its mount (the body is static, so this is a model edit)."""
        self.model.body_pos[self._cam_body] = mount_T_cam[:3, 3]
        self.model.body_quat[self._cam_body] = _wxyz(mount_T_cam[:3, :3])
        self.camera.mount_T_cam = np.array(mount_T_cam, dtype=np.float64)

    def forward(self) -> None:
        self._mujoco.mj_kinematics(self.model, self.data)
        self._mujoco.mj_camlight(self.model, self.data)

    # --- ground truth -----------------------------------------------------------------
    def body_pose(self, name: str) -> np.ndarray:
        i = self._mujoco.mj_name2id(self.model, self._mujoco.mjtObj.mjOBJ_BODY, name)
        if i < 0:
            raise KeyError(name)
        return make_transform(self.data.xmat[i].reshape(3, 3), self.data.xpos[i])

    def base_T(self, body: str) -> np.ndarray:
        return invert(self.body_pose(BASE_BODY)) @ self.body_pose(body)

    def base_T_cam(self) -> np.ndarray:
        return self.base_T(CAMERA_BODY)

    def base_T_tcp(self) -> np.ndarray:
        return self.base_T(HAND_BODY) @ HAND_T_TCP

    def base_T_board(self) -> np.ndarray:
        return self.base_T(BOARD_BODY)

    def base_T_object(self) -> np.ndarray:
        if self.object is None:
            raise RuntimeError("scene built without object markers")
        return self.base_T(self.object.body) @ self.object.body_T_object


class SceneRenderer:
    """Offscreen RGB renders of (model, data) through one named camera (OSMesa on headless machines)."""

    def __init__(
        self, model: Any, camera: str = CAMERA_NAME, width: int = 640, height: int = 480, shadows: bool = False
    ):
        use_offscreen_gl()
        import mujoco

        self._mujoco = mujoco
        if mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, camera) < 0:
            raise KeyError(f"model has no camera {camera!r}")
        self.camera = camera
        self.renderer = mujoco.Renderer(model, height, width)
        # Shadows double the cost of a software-rendered frame and add nothing for fiducials.
        self.renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = shadows

    def render(self, data: Any) -> np.ndarray:
        self.renderer.update_scene(data, camera=self.camera)
        return self.renderer.render().copy()

    def close(self) -> None:
        try:
            self.renderer.close()
        except Exception:  # PyOpenGL's OSMesa teardown can raise at interpreter exit
            pass
