"""Task definitions: what is in the scene, how it is randomised, what the policy sees, what counts as success.

A task is the one extension point of the project: its scene bodies, randomisation and episode
start (``episode_start(seed)``, shared by the fast path and the ROS homing so seeds pair), the
observation key its tracked object feeds and the inverse of that pose, its marker layout for
perception, the demonstrator's final waypoints and its success test. Adding a task is one class
here (or in its own module) plus its entry in :data:`TASKS`; the policy node, the recorder's
converter, the simulated stack, perception and scripted teleop read everything from it.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..observation import ROBOT_PARTS
from ..robot.kinematics import HAND_TCP_Z
from ..robot.rotations import quat_yaw, yaw_quat

#: The home configuration every episode starts near (tool pointing down above the table).
HOME_Q = np.array([0.0, -0.3, 0.0, -2.2, 0.0, 1.9, 0.785])

#: Observation layout shared by every task; the task-specific key comes before the gripper.
ROBOT_OBS = {k: d for k, d in ROBOT_PARTS.items() if k != "gripper_width"}
JOINT_NAMES = [f"fr3_joint{i}" for i in range(1, 8)]
#: Names of the joint-position action dimensions (datasets and model metadata).
JOINT_ACTION_NAMES = [f"{j}_target" for j in JOINT_NAMES]


class UnknownTaskError(ValueError):
    """A task name that is not registered."""


@dataclass(frozen=True)
class TaskSpec:
    """The fixed facts of a task, also written into datasets and checked against model metadata."""

    name: str
    time_limit_s: float
    control_hz: float
    task_obs: dict[str, int]
    success_tol_m: float
    hold_s: float
    obs_dims: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "obs_dims", {**ROBOT_OBS, **self.task_obs, "gripper_width": 1})

    @property
    def action_names(self) -> list[str]:
        return list(JOINT_ACTION_NAMES)


@dataclass(frozen=True)
class Marker:
    """One square ArUco marker on a task object: id, side (m), centre and yaw in the object frame."""

    marker_id: int
    size_m: float
    x: float
    y: float
    z: float
    yaw: float = 0.0


@dataclass(frozen=True)
class MarkerLayout:
    """Where a task object's fiducials are (perception textures and detects exactly these).

    ``body``: the MJCF body that carries them; ``object_in_body``: the object frame (the pose
    published on /perception/object_pose) in that body, as (x, y, z); ``resting_z``: the height
    of the object frame above the table when the object rests on it (planar fit), or None.
    """

    body: str
    markers: tuple[Marker, ...]
    object_in_body: tuple[float, float, float] = (0.0, 0.0, 0.0)
    resting_z: float | None = None


class Task(ABC):
    """One precision task. Subclasses add their bodies to the MJCF scene and define success."""

    spec: TaskSpec
    #: Where the tool tip sits along the TCP's z axis (m): 0 for the bare hand, the peg's
    #: protrusion below the fingertips for peg_insert.
    tip_offset: float = 0.0
    #: The observation key the task's tracked object feeds: the object pose in the base frame
    #: (ground truth in simulation, /perception/object_pose on the stack). Its size in
    #: ``spec.task_obs`` says what it holds: 3 = position, 7 = position + quaternion (x y z w, w >= 0).
    object_key: str
    #: The fiducials perception tracks the object by (None: the task has no marker layout).
    markers: MarkerLayout | None = None

    @classmethod
    def object_dim(cls) -> int:
        return cls.spec.task_obs[cls.object_key]

    def object_pose(self, params: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        """(position, quaternion x y z w) of the tracked object for an episode's parameters."""
        v = np.asarray(self.task_observation(params)[self.object_key], dtype=np.float64)
        return v[:3].copy(), (v[3:7].copy() if v.shape[0] >= 7 else np.array([0.0, 0.0, 0.0, 1.0]))

    @abstractmethod
    def params_from_object_pose(self, position: np.ndarray, quat_xyzw: np.ndarray) -> dict[str, Any]:
        """The inverse of :meth:`object_pose`: episode parameters from a (perceived) object pose."""

    def episode_start(self, seed: int, home_jitter: float) -> tuple[dict[str, Any], np.ndarray]:
        """An episode's parameters and the jittered home configuration the arm starts from.

        The fast path's reset and the ROS path's homing both call this, so the same seed gives
        the same placement and the same start on both (the draw order lives only here).
        """
        rng = np.random.default_rng(seed)
        params = self.sample(rng)
        return params, HOME_Q + rng.uniform(-home_jitter, home_jitter, 7)

    def add_to_hand(self, hand: ET.Element) -> None:
        """Append bodies carried by the hand (called with the robot's hand body element)."""

    @abstractmethod
    def add_to_scene(self, worldbody: ET.Element) -> None:
        """Append the task's bodies (built once per simulator; randomised by :meth:`apply`)."""

    @abstractmethod
    def sample(self, rng: np.random.Generator) -> dict[str, Any]:
        """Draw the randomised parameters of one episode."""

    @abstractmethod
    def apply(self, model: Any, data: Any, params: dict[str, Any]) -> None:
        """Move the task's bodies to an episode's parameters (before ``mj_forward``)."""

    @abstractmethod
    def task_observation(self, params: dict[str, Any]) -> dict[str, np.ndarray]:
        """The task part of the observation (ground truth in simulation)."""

    @abstractmethod
    def goal_tip_position(self, params: dict[str, Any]) -> np.ndarray:
        """Where the tool tip must end up (world frame, metres)."""

    def tip_error(self, tip: np.ndarray, params: dict[str, Any]) -> float:
        """Distance from the tool tip to where it must end up (metres): the reported precision error."""
        return float(np.linalg.norm(tip - self.goal_tip_position(params)))

    def tip_ok(self, tip: np.ndarray, params: dict[str, Any]) -> bool:
        """Whether the tip satisfies the success condition at this instant (held for ``spec.hold_s``)."""
        return self.tip_error(tip, params) <= self.spec.success_tol_m

    def goal_yaw(self, params: dict[str, Any]) -> float:
        """Rotation about the vertical the tool must take at the goal (rad)."""
        return 0.0

    def final_points(self, params: dict[str, Any]) -> list[tuple[np.ndarray, float]]:
        """The demonstrator's last tip waypoints with their speeds (m/s): the part every strategy shares."""
        return [(self.goal_tip_position(params), 0.0)]  # 0: the demonstrator's own approach speed


class ReachPrecise(Task):
    """Bring the tool tip to a randomised target and hold it within 5 mm for 0.5 s."""

    spec = TaskSpec(
        "reach_precise", time_limit_s=8.0, control_hz=10.0, task_obs={"target_pos": 3}, success_tol_m=0.005, hold_s=0.5
    )
    low = np.array([0.35, -0.25, 0.15])
    high = np.array([0.65, 0.25, 0.45])
    object_key = "target_pos"
    # Target in free space: a card of four 40 mm markers 30 mm below it and 80 mm towards +x
    # (towards a camera in front of the robot), so the hand coming from above hides at most one.
    markers = MarkerLayout(
        "task_target",
        tuple(
            Marker(30 + i, 0.04, x, y, -0.03)
            for i, (x, y) in enumerate(((0.055, 0.03), (0.055, -0.03), (0.115, 0.03), (0.115, -0.03)))
        ),
    )

    def params_from_object_pose(self, position: np.ndarray, quat_xyzw: np.ndarray) -> dict[str, Any]:
        return {"target_pos": np.asarray(position, dtype=np.float64).reshape(3).copy()}

    def add_to_scene(self, worldbody: ET.Element) -> None:
        body = ET.SubElement(worldbody, "body", name="task_target", pos="0.5 0 0.3", mocap="true")
        ET.SubElement(body, "geom", type="sphere", size="0.005", rgba="1 0.2 0.2 0.6", contype="0", conaffinity="0")

    def sample(self, rng: np.random.Generator) -> dict[str, Any]:
        return {"target_pos": rng.uniform(self.low, self.high)}

    def apply(self, model: Any, data: Any, params: dict[str, Any]) -> None:
        import mujoco

        body = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, "task_target")
        data.mocap_pos[model.body_mocapid[body]] = params["target_pos"]

    def task_observation(self, params: dict[str, Any]) -> dict[str, np.ndarray]:
        return {"target_pos": np.asarray(params["target_pos"], dtype=np.float64)}

    def goal_tip_position(self, params: dict[str, Any]) -> np.ndarray:
        return np.asarray(params["target_pos"])


#: Height of peg_insert's fixture top (the hole's rim, the object frame) above the table (m).
FIXTURE_TOP_Z = 0.06


class PegInsert(Task):
    """Insert a square peg held by the hand into a hole of a fixture placed at a random pose on the table.

    Peg 20 mm square protruding 50 mm below the fingertips; hole 23 mm square (1.5 mm clearance
    per side, 3 mm in total) and 50 mm deep in a fixture whose top is 60 mm above the table.
    Success: the peg tip is inside the hole's footprint and at least 20 mm below its rim.
    """

    spec = TaskSpec(
        "peg_insert", time_limit_s=12.0, control_hz=10.0, task_obs={"hole_pose": 7}, success_tol_m=0.0115, hold_s=0.0
    )
    tip_offset = 0.05
    peg_half = 0.010
    hole_half = 0.0115
    top_z = FIXTURE_TOP_Z
    depth = 0.05
    insert_m = 0.02
    low = np.array([0.45, -0.15, -np.pi / 6])
    high = np.array([0.60, 0.15, np.pi / 6])
    object_key = "hole_pose"
    # Fixture: 100 mm square block whose top (the object origin) is top_z above the table. Four
    # 60 mm markers lie on the table around it, 110 mm from the hole's axis: nothing of the
    # fixture's geometry changes, and the peg coming from above never covers more than one.
    markers = MarkerLayout(
        "task_fixture",
        tuple(
            Marker(20 + i, 0.06, 0.11 * np.cos(a), 0.11 * np.sin(a), -FIXTURE_TOP_Z + 0.0005)
            for i, a in enumerate(np.arange(4) * np.pi / 2)
        ),
        object_in_body=(0.0, 0.0, FIXTURE_TOP_Z),
        resting_z=FIXTURE_TOP_Z,
    )

    def params_from_object_pose(self, position: np.ndarray, quat_xyzw: np.ndarray) -> dict[str, Any]:
        return {"hole_pos": np.asarray(position, dtype=np.float64).reshape(3).copy(), "yaw": quat_yaw(quat_xyzw)}

    def add_to_hand(self, hand: ET.Element) -> None:
        # In the hand frame the TCP is HAND_TCP_Z along z (libfranka's default EE offset); the peg
        # runs from between the fingers to tip_offset below the TCP. contype 2 collides only
        # with the fixture, not the fingers or the table.
        top, tip = 0.08, HAND_TCP_Z + self.tip_offset
        peg = ET.SubElement(hand, "body", name="task_peg", pos=f"0 0 {(top + tip) / 2}")
        ET.SubElement(
            peg,
            "geom",
            type="box",
            size=f"{self.peg_half} {self.peg_half} {(tip - top) / 2}",
            rgba="0.9 0.6 0.1 1",
            contype="2",
            conaffinity="2",
            mass="0.03",
            friction="0.3 0.005 0.0001",
        )
        ET.SubElement(peg, "site", name="task_peg_tip", pos=f"0 0 {(tip - top) / 2}", size="0.002")

    def add_to_scene(self, worldbody: ET.Element) -> None:
        fixture = ET.SubElement(worldbody, "body", name="task_fixture", pos="0.5 0 0", mocap="true")
        outer, wall = 0.05, 0.05 - self.hole_half
        z_wall = self.top_z - self.depth / 2
        base_h = self.top_z - self.depth
        common = {"contype": "2", "conaffinity": "2", "rgba": "0.3 0.35 0.45 1", "friction": "0.3 0.005 0.0001"}
        ET.SubElement(
            fixture, "geom", type="box", size=f"{outer} {outer} {base_h / 2}", pos=f"0 0 {base_h / 2}", **common
        )
        c = self.hole_half + wall / 2
        for x, y, sx, sy in (
            (c, 0, wall / 2, outer),
            (-c, 0, wall / 2, outer),
            (0, c, self.hole_half, wall / 2),
            (0, -c, self.hole_half, wall / 2),
        ):
            ET.SubElement(
                fixture, "geom", type="box", size=f"{sx} {sy} {self.depth / 2}", pos=f"{x} {y} {z_wall}", **common
            )

    def sample(self, rng: np.random.Generator) -> dict[str, Any]:
        x, y, yaw = rng.uniform(self.low, self.high)
        return {"hole_pos": np.array([x, y, self.top_z]), "yaw": float(yaw)}

    def apply(self, model: Any, data: Any, params: dict[str, Any]) -> None:
        import mujoco

        body = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, "task_fixture")
        mid = model.body_mocapid[body]
        data.mocap_pos[mid] = [params["hole_pos"][0], params["hole_pos"][1], 0.0]
        x, y, z, w = yaw_quat(params["yaw"])
        data.mocap_quat[mid] = [w, x, y, z]

    def task_observation(self, params: dict[str, Any]) -> dict[str, np.ndarray]:
        return {"hole_pose": np.concatenate([params["hole_pos"], yaw_quat(params["yaw"])])}

    def goal_tip_position(self, params: dict[str, Any]) -> np.ndarray:
        return params["hole_pos"] - np.array([0.0, 0.0, self.insert_m])

    def goal_yaw(self, params: dict[str, Any]) -> float:
        return float(params["yaw"])

    def final_points(self, params: dict[str, Any]) -> list[tuple[np.ndarray, float]]:
        # line up 12 mm above the rim, then push in slowly to 35 mm depth (success needs 20 mm)
        top = params["hole_pos"]
        return [(top + np.array([0.0, 0.0, 0.012]), 0.0), (top - np.array([0.0, 0.0, 0.035]), 0.03)]

    def tip_ok(self, tip: np.ndarray, params: dict[str, Any]) -> bool:
        yaw = params["yaw"]
        d = tip[:2] - params["hole_pos"][:2]
        local = np.array([np.cos(yaw) * d[0] + np.sin(yaw) * d[1], -np.sin(yaw) * d[0] + np.cos(yaw) * d[1]])
        inside = bool(np.all(np.abs(local) <= self.hole_half))
        return inside and tip[2] <= params["hole_pos"][2] - self.insert_m


from .place_precise import PlacePrecise  # noqa: E402  (a task in its own module, registered here)

TASKS: dict[str, type[Task]] = {"reach_precise": ReachPrecise, "peg_insert": PegInsert, "place_precise": PlacePrecise}


def get_task(name: str) -> Task:
    """The task registered under ``name``; an unknown name is an error that lists the known ones."""
    if name not in TASKS:
        raise UnknownTaskError(f"unknown task {name!r}; known tasks: {', '.join(sorted(TASKS))}")
    return TASKS[name]()
