"""franky-sim's libfranka-protocol server running a task scene, with the task's ground truth.

The scene, the randomisation and the success test are cdp_core.sim's (the fast path's), so the
robot-in-the-loop path simulates the same arm, objects and controller. The server's 1 kHz loop
runs in a thread of this process; libfranka clients (the driver) connect over loopback from
their own processes, exactly as to a real arm.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from cdp_core.sim.env import CHECK_EVERY, HOME_Q, PHYSICS_DT, SuccessMonitor, build_task_simulator, tip_position
from cdp_core.sim.tasks import get_task


@dataclass
class SimConfig:
    """Settings of the simulated robot (ROS parameters of ``sim_robot``)."""

    task: str = "reach_precise"
    #: Loopback address the libfranka server binds (the driver's ``robot_ip``).
    hostname: str = "127.0.0.1"
    #: Seed of the first episode; each reset advances it by one (evaluation seeds, distinct from demos').
    first_seed: int = 100000
    #: 1.0 = real time (what a libfranka client expects); physics is always 1 kHz.
    realtime_factor: float = 1.0
    ground_truth_rate_hz: float = 30.0
    #: On shutdown the simulated arm keeps running until it has rested for 0.2 s or this long (s):
    #: under ``ros2 launch`` every node gets SIGINT at once, and the driver's jerk-limited stop
    #: needs a live arm to stop.
    shutdown_grace_s: float = 4.0
    #: Where the ground-truth object pose goes: straight to the policy's input, or (perception in
    #: the loop) to /sim/object_pose, which the simulated camera renders from.
    object_pose_topic: str = "/perception/object_pose"


@dataclass
class EpisodeStatus:
    """Ground truth of the running episode, as the success monitor last saw it."""

    seed: int
    params: dict[str, Any]
    sim_time: float
    success: bool
    tip_error_m: float
    object_position: np.ndarray
    object_quat_xyzw: np.ndarray


class TaskSimulation:
    """One simulated FR3 with a task scene served over the libfranka protocol."""

    def __init__(self, config: SimConfig):
        self.config = config
        self.task = get_task(config.task)
        self.sim, self.robot = build_task_simulator(self.task, HOME_Q)
        self.monitor = SuccessMonitor(self.task)
        self._lock = threading.Lock()
        self._pending: tuple[int, dict[str, Any]] | None = None
        self._seed = config.first_seed - 1
        self._params: dict[str, Any] = {}
        self._episode_start = 0.0
        self._steps = 0
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._running = False
        self._error: BaseException | None = None

    # --- lifecycle --------------------------------------------------------------------
    def start(self) -> None:
        """Build the model, bind the server and run its 1 kHz loop in a thread."""
        import franky_sim

        self.sim.init()
        self._server = franky_sim.SimulationServer(self.sim, hostname_candidates=[self.config.hostname])
        self._server.init()  # starts the simulation (compiles the MJCF)
        self.sim.register_pre_step_callback(self._pre_step)
        self.sim.register_post_step_callback(self._post_step)
        self.reset_episode()
        self._running = True
        self._thread = threading.Thread(target=self._loop, name="franky-sim-1kHz", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        try:
            while self._running:
                self._server.run_once(self.config.realtime_factor)
        except BaseException as exc:  # surfaced through .error; the node turns it into a fatal diagnostic
            self._error = exc
            self._running = False

    def wait_for_rest(self, timeout_s: float, spread_rad: float = 5e-4, window_s: float = 0.2) -> float:
        """Keep simulating until the arm's joints moved less than ``spread_rad`` (peak to peak) over
        ``window_s``, or ``timeout_s`` passed; returns the last spread (rad)."""
        t_end, spread, window = time.monotonic() + timeout_s, math.inf, []
        while self.alive and time.monotonic() < t_end:
            now = time.monotonic()
            window = [(t, q) for t, q in window if now - t <= window_s] + [
                (now, np.array(self.robot.inner_state.q)[:7])
            ]
            if now - window[0][0] >= 0.9 * window_s:
                spread = float(np.max(np.ptp(np.array([q for _, q in window]), axis=0)))
                if spread < spread_rad:
                    break
            time.sleep(0.01)
        return spread

    def stop(self) -> None:
        self._running = False
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        if self._server is not None:
            self._server.cleanup()
            self._server = None
        if self.sim.is_initialized and not self.sim.is_cleaned_up:
            self.sim.cleanup()

    @property
    def alive(self) -> bool:
        return self._running and self._thread is not None and self._thread.is_alive()

    @property
    def error(self) -> BaseException | None:
        return self._error

    # --- episodes ---------------------------------------------------------------------
    def reset_episode(self, seed: int | None = None) -> tuple[int, dict[str, Any]]:
        """Draw the next episode's object placement; applied at the next physics step.

        The arm is not teleported: like on the real robot, whoever runs episodes brings it home
        through the safety filter first.
        """
        with self._lock:
            self._seed = self._seed + 1 if seed is None else int(seed)
            params, _ = self.task.episode_start(self._seed, 0.0)  # the arm is homed by whoever runs episodes
            self._pending = (self._seed, params)
        if not self._running:  # not started yet: apply now so the first state is consistent
            self._pre_step(self.sim)
        return self._seed, params

    def start_episode(self) -> None:
        """Restart the success monitor and the episode clock (the arm is home, the policy starts now)."""
        with self._lock:
            self._episode_start = self._steps * PHYSICS_DT
            self.monitor.reset()

    def _pre_step(self, _sim: Any) -> None:
        with self._lock:
            pending, self._pending = self._pending, None
        if pending is None:
            return
        seed, params = pending
        if self.sim.data is not None:
            self.task.apply(self.sim.model, self.sim.data, params)
        with self._lock:
            self._params = params
            self._episode_start = self._steps * PHYSICS_DT
            self.monitor.reset()

    def _post_step(self, _sim: Any) -> None:
        self._steps += 1
        if self._steps % CHECK_EVERY or not self._params:
            return
        q = np.array(self.robot.inner_state.q)
        tip = tip_position(q, self.task.tip_offset)
        with self._lock:
            self.monitor.update(tip, self._params, CHECK_EVERY * PHYSICS_DT)

    def status(self) -> EpisodeStatus:
        """The episode's ground truth now (thread-safe snapshot)."""
        with self._lock:
            params = dict(self._params)
            position, quat = self.task.object_pose(params) if params else (np.zeros(3), np.array([0.0, 0.0, 0.0, 1.0]))
            return EpisodeStatus(
                seed=self._seed,
                params=params,
                sim_time=self._steps * PHYSICS_DT - self._episode_start,
                success=self.monitor.success,
                tip_error_m=self.monitor.error,
                object_position=np.array(position),
                object_quat_xyzw=np.array(quat),
            )

    def wait_steps(self, n: int, timeout_s: float = 10.0) -> None:
        """Block until the physics has advanced ``n`` steps (tests)."""
        target, t_end = self._steps + n, time.monotonic() + timeout_s
        while self._steps < target:
            if time.monotonic() > t_end:
                raise TimeoutError(f"simulation advanced {self._steps - target + n} of {n} steps")
            time.sleep(0.005)
