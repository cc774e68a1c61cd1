"""``place_precise``: bring the tool, turned to a pad's yaw, to a point 50 mm above the pad and hold.

A third task written as its own module to show the extension point: this file and one entry in
:data:`cdp_core.sim.tasks.TASKS` are all it takes for the fast path (demos, training, evaluation)
and the ROS stack (simulated scene, policy node observation, scripted teleop, perception markers).

The pad (60 x 30 mm, 4 mm thick) lies at a random position and yaw on the table; the goal is
50 mm above its centre (the safety filter's workspace box keeps the TCP 40 mm above the table).
Success: the tool tip within 4 mm of the goal for 0.5 s. The demonstrator turns the tool to the
pad's yaw on the way, so the orientation is part of what a policy learns, though the success test
reads the position only.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

import numpy as np

from ..robot.rotations import quat_yaw, yaw_quat
from .tasks import Marker, MarkerLayout, Task, TaskSpec

#: Height of the pad's top surface (the object frame) above the table (m).
PAD_TOP_Z = 0.004
#: Goal height of the tool tip above the pad's top (m).
HOVER_M = 0.05


class PlacePrecise(Task):
    """See the module docstring."""

    spec = TaskSpec(
        "place_precise", time_limit_s=10.0, control_hz=10.0, task_obs={"pad_pose": 7}, success_tol_m=0.004, hold_s=0.5
    )
    object_key = "pad_pose"
    low = np.array([0.40, -0.20, -np.pi / 3])
    high = np.array([0.62, 0.20, np.pi / 3])
    # Four 40 mm markers on the table around the pad, 80 mm from its centre along its axes.
    markers = MarkerLayout(
        "task_pad",
        tuple(
            Marker(40 + i, 0.04, 0.08 * np.cos(a), 0.08 * np.sin(a), -PAD_TOP_Z + 0.0005)
            for i, a in enumerate(np.arange(4) * np.pi / 2)
        ),
        object_in_body=(0.0, 0.0, PAD_TOP_Z),
        resting_z=PAD_TOP_Z,
    )

    def add_to_scene(self, worldbody: ET.Element) -> None:
        pad = ET.SubElement(worldbody, "body", name="task_pad", pos="0.5 0 0", mocap="true")
        # Visual only (no contacts): the task is about where the tool goes, not about pushing.
        ET.SubElement(
            pad,
            "geom",
            type="box",
            size=f"0.03 0.015 {PAD_TOP_Z / 2}",
            pos=f"0 0 {PAD_TOP_Z / 2}",
            rgba="0.2 0.6 0.3 1",
            contype="0",
            conaffinity="0",
        )
        ET.SubElement(
            pad, "geom", type="box", size="0.004 0.012 0.0005", pos=f"0.022 0 {PAD_TOP_Z}", rgba="1 1 1 1",
            contype="0", conaffinity="0",
        )  # fmt: skip

    def sample(self, rng: np.random.Generator) -> dict[str, Any]:
        x, y, yaw = rng.uniform(self.low, self.high)
        return {"pad_pos": np.array([x, y, PAD_TOP_Z]), "yaw": float(yaw)}

    def apply(self, model: Any, data: Any, params: dict[str, Any]) -> None:
        import mujoco

        mid = model.body_mocapid[mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, "task_pad")]
        data.mocap_pos[mid] = [params["pad_pos"][0], params["pad_pos"][1], 0.0]
        x, y, z, w = yaw_quat(params["yaw"])
        data.mocap_quat[mid] = [w, x, y, z]

    def task_observation(self, params: dict[str, Any]) -> dict[str, np.ndarray]:
        return {"pad_pose": np.concatenate([params["pad_pos"], yaw_quat(params["yaw"])])}

    def params_from_object_pose(self, position: np.ndarray, quat_xyzw: np.ndarray) -> dict[str, Any]:
        return {"pad_pos": np.asarray(position, dtype=np.float64).reshape(3).copy(), "yaw": quat_yaw(quat_xyzw)}

    def goal_tip_position(self, params: dict[str, Any]) -> np.ndarray:
        return np.asarray(params["pad_pos"]) + np.array([0.0, 0.0, HOVER_M])

    def goal_yaw(self, params: dict[str, Any]) -> float:
        return float(params["yaw"])

    def final_points(self, params: dict[str, Any]) -> list[tuple[np.ndarray, float]]:
        # over the pad 60 mm above the goal, then straight down slowly
        goal = self.goal_tip_position(params)
        return [(goal + np.array([0.0, 0.0, 0.06]), 0.0), (goal, 0.04)]
