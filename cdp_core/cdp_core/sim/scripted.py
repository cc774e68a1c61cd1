"""Scripted demonstrator: human-like, multimodal demonstrations through the real task env.

Strategies (chosen at random, so the data is multimodal): a direct approach, an approach
from above, and a sideways approach from the left or right; then the task's own final
waypoints (reach: the target; peg: line up above the hole, then insert slowly). Each demonstration varies its
speed, adds small command noise in transit and, now and then, overshoots the goal and
recovers, the way a teleoperator does. Waypoints are solved with damped-least-squares IK
on franky-sim's own FR3 kinematics (the tool-tip frame libfranka reports).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..data.episodes import Episode
from ..robot.kinematics import tcp_pose
from ..robot.rotations import rot_z
from ..robot.trajectories import minimum_jerk
from .actions import JOINT_POSITION, ee_pose_of, solve_ik
from .cameras import stack_frames
from .env import FR3TaskEnv

STRATEGIES = ("direct", "from_above", "from_left", "from_right")


@dataclass(frozen=True)
class DemoStyle:
    """How the scripted operator behaves: the approach strategies it picks from (uniformly),
    how often it misses and recovers, and its command noise in transit (rad, std per joint).

    The defaults are the multimodal benchmark data; ``DemoStyle(strategies=("direct",))``
    is a unimodal demonstrator. With the defaults, the same seed draws the same random numbers
    as before the style existed, so old datasets replay exactly.
    """

    strategies: tuple[str, ...] = STRATEGIES
    miss_prob: float = 0.15
    transit_noise: float = 0.002

    def __post_init__(self) -> None:
        unknown = [s for s in self.strategies if s not in STRATEGIES]
        if not self.strategies or unknown:
            raise ValueError(
                f"demonstration strategies must be a non-empty subset of {STRATEGIES}, got {self.strategies}"
            )
        if not 0 <= self.miss_prob <= 1 or self.transit_noise < 0:
            raise ValueError(
                f"miss_prob must be in [0, 1] and transit_noise >= 0, got {self.miss_prob}, {self.transit_noise}"
            )


def plan_demo(
    env: FR3TaskEnv, rng: np.random.Generator, strategy: str | None = None, style: DemoStyle = DemoStyle()
) -> list[np.ndarray]:
    """Joint-target sequence (one per control step) that solves the task and then holds still."""
    strategy = strategy or style.strategies[rng.integers(len(style.strategies))]
    task, params = env.task, env.params
    q0 = env.q
    rot = rot_z(task.goal_yaw(params)) @ tcp_pose(q0)[1]
    final = task.final_points(params)
    first = final[0][0]
    offsets = {
        "direct": None,
        "from_above": np.array([0.0, 0.0, 0.10]),
        "from_left": np.array([0.0, 0.10, 0.04]),
        "from_right": np.array([0.0, -0.10, 0.04]),
    }
    speed = rng.uniform(0.15, 0.3)  # 15-30 cm/s, a calm operator
    points: list[tuple[np.ndarray, float]] = []
    if offsets[strategy] is not None:
        points.append((first + offsets[strategy] * rng.uniform(0.8, 1.2), speed))
    if rng.random() < style.miss_prob:  # miss, then recover
        miss = rng.normal(0.0, 1.0, 3)
        miss[2] = abs(miss[2])
        points.append((first + miss / np.linalg.norm(miss) * rng.uniform(0.006, 0.02), speed))
    points.extend((p, v or speed) for p, v in final)
    hz = env.spec.control_hz
    offset = task.tip_offset * rot[:, 2]  # tip = TCP + offset: IK places the TCP
    plan: list[np.ndarray] = []
    q = q0
    tip = env.tip_position()
    for i, (p, v) in enumerate(points):
        q_next = solve_ik(q, p - offset, rot)
        n = max(2, int(round(max(0.6, np.linalg.norm(p - tip) / v) * hz)))
        precise = i >= len(points) - len(final)  # no command noise while lining up and inserting
        for s in minimum_jerk(np.linspace(0.0, 1.0, n + 1)[1:]):
            target = q + (q_next - q) * s
            if not precise:
                target = target + rng.normal(0.0, style.transit_noise, 7)
            plan.append(target)
        q, tip = q_next, p
    # Hold well past the success window: a policy learns to stay only from data that stays.
    hold_steps = int(np.ceil((env.spec.hold_s + 1.0) * hz))
    plan.extend([q.copy()] * hold_steps)
    return plan


def run_demonstration(
    env: FR3TaskEnv, seed: int, strategy: str | None = None, style: DemoStyle = DemoStyle()
) -> tuple[Episode, bool]:
    """Record one scripted demonstration: (episode with obs and actions in ``env.action_space``, success).

    The plan is the same joint-target sequence for every action space (so datasets of two
    spaces with the same seeds hold the same motions); an ``ee_pose`` dataset records each
    target's TCP pose, which the env executes back through IK.
    """
    rng = np.random.default_rng(seed + 1_000_000)
    obs = env.reset(seed)
    plan = plan_demo(env, rng, strategy, style)
    keys = list(env.spec.obs_dims)
    rows: dict[str, list[np.ndarray]] = {k: [] for k in keys}
    actions, stamps = [], []
    frames: list[dict[str, np.ndarray]] = []
    success = False
    for target in plan:
        for k in keys:
            rows[k].append(obs[k])
        if env.cameras:
            frames.append(env.render())
        action = target if env.action_space == JOINT_POSITION else ee_pose_of(target)
        actions.append(action)
        stamps.append(env.time)
        obs, info = env.step(action)
        success = success or info["success"]
        if env.time >= env.spec.time_limit_s - 1e-9:  # record the whole plan, hold included
            break
    ep = Episode(
        obs={k: np.asarray(v, dtype=np.float32) for k, v in rows.items()},
        action=np.asarray(actions, dtype=np.float32),
        timestamp=np.asarray(stamps),
        name=f"seed_{seed}",
        images=stack_frames(frames),
    )
    return ep, success
