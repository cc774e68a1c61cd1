"""Scripted operator: the fast path's demonstrator (``cdp_core.sim.scripted``) as a teleop input.

It plans the same kinds of demonstrations (strategy drawn at random: direct, from above, from
the left or right; sometimes a miss and recovery; the task's own final waypoints at the task's
speeds; a hold past the success window) but in Cartesian space, from the object pose the stack
publishes on ``/perception/object_pose``, and it moves the teleop node's TCP target along a
minimum-jerk path. The target then goes through the same IK, the same command stream, the
safety filter and the driver as a human's keyboard input.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from cdp_core.robot.rotations import matrix_to_rotvec, rot_z, rotvec_to_matrix
from cdp_core.robot.trajectories import minimum_jerk
from cdp_core.sim.scripted import STRATEGIES
from cdp_core.sim.tasks import Task, get_task

#: Approach offsets of each strategy (m, relative to the first final waypoint), as in plan_demo.
OFFSETS = {
    "direct": None,
    "from_above": np.array([0.0, 0.0, 0.10]),
    "from_left": np.array([0.0, 0.10, 0.04]),
    "from_right": np.array([0.0, -0.10, 0.04]),
}


@dataclass
class Segment:
    start: np.ndarray  # tip position (m)
    end: np.ndarray
    duration: float


@dataclass
class ScriptedPlan:
    strategy: str
    segments: list[Segment]
    rot_start: np.ndarray
    rot_goal: np.ndarray
    tip_offset: float
    hold_s: float
    waypoints: list[np.ndarray] = field(default_factory=list)

    @property
    def duration(self) -> float:
        return sum(s.duration for s in self.segments) + self.hold_s

    def tcp_pose(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        """TCP target (position, rotation) at ``t`` seconds into the demonstration."""
        t = max(0.0, t)
        first = self.segments[0]
        # The tool turns to the goal orientation during the first segment (plan_demo: rot fixed from the start).
        s_rot = minimum_jerk(min(1.0, t / first.duration))
        rot = rotvec_to_matrix(s_rot * matrix_to_rotvec(self.rot_goal @ self.rot_start.T)) @ self.rot_start
        tip = self.segments[-1].end
        for seg in self.segments:
            if t < seg.duration:
                tip = seg.start + (seg.end - seg.start) * minimum_jerk(t / seg.duration)
                break
            t -= seg.duration
        return tip - self.tip_offset * rot[:, 2], rot


def plan_scripted_demo(
    task: Task | str,
    object_position: np.ndarray,
    object_quat_xyzw: np.ndarray,
    tcp_position: np.ndarray,
    tcp_rotation: np.ndarray,
    rng: np.random.Generator,
    strategy: str | None = None,
) -> ScriptedPlan:
    """A demonstration plan from the arm's current TCP pose to the task's goal (mirrors ``plan_demo``)."""
    task = get_task(task) if isinstance(task, str) else task
    params = task.params_from_object_pose(object_position, object_quat_xyzw)
    strategy = strategy or STRATEGIES[rng.integers(len(STRATEGIES))]
    if strategy not in OFFSETS:
        raise ValueError(f"unknown strategy {strategy!r}; known: {', '.join(OFFSETS)}")
    rot_goal = rot_z(task.goal_yaw(params)) @ np.asarray(tcp_rotation)
    final = task.final_points(params)
    first = final[0][0]
    speed = rng.uniform(0.15, 0.3)
    points: list[tuple[np.ndarray, float]] = []
    if OFFSETS[strategy] is not None:
        points.append((first + OFFSETS[strategy] * rng.uniform(0.8, 1.2), speed))
    if rng.random() < 0.15:  # miss, then recover
        miss = rng.normal(0.0, 1.0, 3)
        miss[2] = abs(miss[2])
        points.append((first + miss / np.linalg.norm(miss) * rng.uniform(0.006, 0.02), speed))
    points.extend((p, v or speed) for p, v in final)
    tip = np.asarray(tcp_position) + task.tip_offset * np.asarray(tcp_rotation)[:, 2]
    segments = []
    for p, v in points:
        segments.append(Segment(tip, np.asarray(p, dtype=np.float64), max(0.6, float(np.linalg.norm(p - tip)) / v)))
        tip = np.asarray(p, dtype=np.float64)
    return ScriptedPlan(
        strategy,
        segments,
        np.asarray(tcp_rotation),
        rot_goal,
        task.tip_offset,
        hold_s=task.spec.hold_s + 1.0,
        waypoints=[p for p, _ in points],
    )
