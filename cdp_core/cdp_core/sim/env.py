"""The fast path: a task scene stepped in-process, as fast as the CPU allows.

The arm, its MJCF, its 1 kHz physics and its joint-impedance tracking law are franky-sim's
(``MujocoSimulator`` + ``FrankaMujocoRobot.joint_position_control``), i.e. exactly what
franky-sim's libfranka-protocol server runs for the robot-in-the-loop path. Actions are
absolute joint-position targets held for one control period, or TCP poses turned into
such targets by IK (``action_space="ee_pose"``, see :mod:`cdp_core.sim.actions`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..robot.kinematics import forward_kinematics, tcp_pose
from ..robot.rotations import TOOL_DOWN, matrix_to_quat
from .actions import JOINT_POSITION, ActionExecutor
from .cameras import CameraConfig, add_hand_cameras
from .tasks import HOME_Q, JOINT_NAMES, Task, get_task

PHYSICS_DT = 0.001
#: How often (in physics steps) the success test looks at the tool tip: 100 Hz.
CHECK_EVERY = 10


def build_task_simulator(task: Task, initial_q: np.ndarray = HOME_Q) -> tuple[Any, Any]:
    """franky-sim's MuJoCo FR3 with ``task``'s bodies added: (simulator, robot), not yet initialised.

    The one scene builder of every path: the in-process fast path and the libfranka-protocol
    server that the ROS stack drives (``cdp_sim``) both call it.
    """
    from franky_sim.mujoco_simulator import MujocoSimulator

    sim = MujocoSimulator()
    robot = sim.add_robot(initial_q=tuple(float(v) for v in initial_q))
    hand = sim.worldbody.find(".//body[@name='robot0_hand']")
    if hand is None:  # franky-sim renamed its bodies: the task scene would be wrong, not just ugly
        raise RuntimeError("franky-sim's FR3 model has no body 'robot0_hand'")
    task.add_to_hand(hand)
    add_hand_cameras(hand)  # rendering-only: every path builds the same model, cameras used or not
    task.add_to_scene(sim.worldbody)
    return sim, robot


class SuccessMonitor:
    """The task's success test over time: the tip must satisfy ``tip_ok`` for ``hold_s`` without a break."""

    def __init__(self, task: Task):
        self.task = task
        self.reset()

    def reset(self) -> None:
        self.hold = 0.0
        self.success = False
        self.error = float("inf")

    def update(self, tip: np.ndarray, params: dict[str, Any], dt: float) -> bool:
        """Account ``dt`` seconds at tip position ``tip``; returns whether the episode has succeeded."""
        self.error = self.task.tip_error(tip, params)
        ok = self.task.tip_ok(tip, params)
        self.hold = self.hold + dt if ok else 0.0
        if ok and self.hold >= self.task.spec.hold_s - 1e-9:
            self.success = True
        return self.success


def tip_position(q: np.ndarray, tip_offset: float) -> np.ndarray:
    """The task's tool tip in the base frame: the TCP moved ``tip_offset`` along its z axis."""
    t = forward_kinematics(np.asarray(q, dtype=np.float64))
    return t[:3, 3] + t[:3, 2] * tip_offset


class FR3TaskEnv:
    """One simulated FR3 with one task; ``reset(seed)`` then ``step(action)`` until ``done``."""

    def __init__(
        self,
        task: Task | str,
        home_jitter: float = 0.05,
        action_space: str = JOINT_POSITION,
        cameras: tuple[CameraConfig, ...] = (),
    ):
        if cameras:
            from .cameras import use_offscreen_gl

            use_offscreen_gl()  # before MuJoCo's first import picks a GL backend
        import mujoco

        self.task = get_task(task) if isinstance(task, str) else task
        self.spec = self.task.spec
        self.home_jitter = home_jitter
        self.sim, self.robot = build_task_simulator(self.task)
        self.monitor = SuccessMonitor(self.task)
        self.executor = ActionExecutor(action_space)
        self.action_space = self.executor.space
        self.sim.init()
        self.sim.start()
        self.model, self.data = self.sim.model, self.sim.data
        jid = [mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_JOINT, f"robot0_{n}") for n in JOINT_NAMES]
        self._qadr = np.array([self.model.jnt_qposadr[j] for j in jid])
        fingers = [mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_JOINT, f"robot0_finger_joint{i}") for i in (1, 2)]
        self._finger_adr = np.array([self.model.jnt_qposadr[j] for j in fingers])
        self._finger_q0 = self.data.qpos[self._finger_adr].copy()
        self._vadr = np.array([self.model.jnt_dofadr[j] for j in jid])
        self.substeps = int(round(1.0 / (self.spec.control_hz * PHYSICS_DT)))
        self.params: dict[str, Any] = {}
        self.time = 0.0
        self.cameras = tuple(cameras)
        self._renderer: Any = None
        if self.cameras:
            from .cameras import CameraRenderer

            self._renderer = CameraRenderer(self.model, self.cameras)

    @property
    def success(self) -> bool:
        return self.monitor.success

    def render_state(self, q: np.ndarray, finger_q: float, params: dict[str, Any]) -> dict[str, np.ndarray]:
        """The cameras' view of the scene with the arm at ``q``, each finger joint at ``finger_q`` and
        the task placed by ``params``, without stepping the physics: a camera beside a robot that
        runs elsewhere (the ROS graph's simulated agent-view camera) sees what demos rendered here saw."""
        import mujoco

        if self._renderer is None:
            raise ValueError("this environment has no cameras")
        self.data.qpos[self._qadr] = np.asarray(q, dtype=np.float64).reshape(7)
        self.data.qpos[self._finger_adr] = float(finger_q)
        self.task.apply(self.model, self.data, params)
        mujoco.mj_forward(self.model, self.data)
        return self.render()

    # --- state ------------------------------------------------------------------------
    @property
    def q(self) -> np.ndarray:
        return self.data.qpos[self._qadr].copy()

    def tip_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """TCP position (m) and orientation quaternion (x, y, z, w, tool-down hemisphere), base frame."""
        pos, rot = tcp_pose(self.q)
        return pos, matrix_to_quat(rot, hemisphere=TOOL_DOWN)

    def tip_position(self) -> np.ndarray:
        """The task's tool tip (the peg's tip for peg_insert), base frame."""
        return tip_position(self.q, self.task.tip_offset)

    def observe(self) -> dict[str, np.ndarray]:
        pos, quat = self.tip_pose()
        return {
            "joint_pos": self.q,
            "ee_pos": pos,
            "ee_quat": quat,
            **self.task.task_observation(self.params),
            "gripper_width": np.array([self.robot.hand_width]),
        }

    def render(self) -> dict[str, np.ndarray]:
        """The scene now, through each of ``cameras``: ``{name: uint8 [H, W, 3]}`` (empty without cameras)."""
        return self._renderer.render(self.data) if self._renderer is not None else {}

    # --- episode ----------------------------------------------------------------------
    def reset(self, seed: int) -> dict[str, np.ndarray]:
        """Start a seeded episode: random task parameters and a slightly jittered home pose."""
        import mujoco

        self.params, q0 = self.task.episode_start(seed, self.home_jitter)
        # Full reset (warm-start accelerations, contacts, time): a seed must replay bit for bit.
        mujoco.mj_resetData(self.model, self.data)
        self.data.qpos[self._qadr] = q0
        self.data.qpos[self._finger_adr] = self._finger_q0
        self.task.apply(self.model, self.data, self.params)
        mujoco.mj_forward(self.model, self.data)
        self.time = 0.0
        self.monitor.reset()
        self.executor.reset(q0)
        return self.observe()

    def step(self, action: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Track ``action`` (in ``action_space``) for one control period; returns (observation, info).

        A malformed action (wrong size, NaN, no valid orientation) raises ActionSpaceError (a ValueError).
        """
        target = self.executor.joint_targets(action)
        err = np.inf
        for k in range(self.substeps):
            self.robot.joint_position_control(target)
            self.sim.step()
            if (k + 1) % CHECK_EVERY == 0:
                self.monitor.update(self.tip_position(), self.params, CHECK_EVERY * PHYSICS_DT)
                err = self.monitor.error
        self.time += self.substeps * PHYSICS_DT
        done = self.success or self.time >= self.spec.time_limit_s - 1e-9
        return self.observe(), {"success": self.success, "tip_error": err, "time": self.time, "done": done}
