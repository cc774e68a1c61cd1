"""Task definitions: what is in the scene, how it is randomised, what the policy sees, what counts as success."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: Observation layout shared by every task; the task-specific key comes before the gripper.
ROBOT_OBS = {"joint_pos": 7, "ee_pos": 3, "ee_quat": 4}
JOINT_NAMES = [f"fr3_joint{i}" for i in range(1, 8)]


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
        return [f"{j}_target" for j in JOINT_NAMES]


class Task(ABC):
    """One precision task. Subclasses add their bodies to the MJCF scene and define success."""

    spec: TaskSpec

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
        """Distance that the success test thresholds (metres)."""
        return float(np.linalg.norm(tip - self.goal_tip_position(params)))


class ReachPrecise(Task):
    """Bring the tool tip to a randomised target and hold it within 5 mm for 0.5 s."""

    spec = TaskSpec("reach_precise", time_limit_s=8.0, control_hz=10.0, task_obs={"target_pos": 3},
                    success_tol_m=0.005, hold_s=0.5)
    low = np.array([0.35, -0.25, 0.15])
    high = np.array([0.65, 0.25, 0.45])

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


TASKS: dict[str, type[Task]] = {"reach_precise": ReachPrecise}


def get_task(name: str) -> Task:
    """The task registered under ``name``; an unknown name is an error that lists the known ones."""
    if name not in TASKS:
        raise UnknownTaskError(f"unknown task {name!r}; known tasks: {', '.join(sorted(TASKS))}")
    return TASKS[name]()
