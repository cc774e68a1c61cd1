"""``teleop_node``: keyboard / gamepad / SpaceMouse / scripted operator -> /teleop/command through the safety filter.

Every tick (``rate_hz``) the device is polled, the TCP target advanced and IK-solved
(:class:`TeleopCore`), and the joint target published as a one-point JointTrajectory on
``/teleop/command`` (stamped now): a heartbeat, so the filter holds the arm when this node stops.
Episode keys publish ``/episode/event`` (JSON, see :mod:`cdp_teleop.events`) for the recorder;
the gripper toggle calls the driver's ``/franka/gripper/move`` without waiting for its answer.

``device:=scripted`` runs ``episodes`` unattended demonstrations in simulation: reset the
scene (``/sim/reset_episode``), home the arm to the fast path's start configuration for the
seed, start the episode (``/sim/start_episode`` + event ``start``), move the target along the
scripted demonstrator's path, then mark success/failure from ``/task/success`` and ``stop``.
With ``select_source:=true`` the node makes itself the safety filter's active source at start.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from cdp_core.robot.kinematics import tcp_pose
import rclpy
from rclpy.duration import Duration
from cdp_ros_common import diagnostics, names
from cdp_ros_common.conversions import chunk_to_msg, msg_to_pose
from cdp_ros_common.params import declare_dataclass
from cdp_ros_common.spinning import ignore_further_signals
from cdp_ros_common.stack_client import StackClient, StackClientConfig, StackError
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, String
from std_srvs.srv import SetBool
from trajectory_msgs.msg import JointTrajectory

from .devices import DeviceError, PygameGamepad, SpaceMouse, TerminalKeyboard
from .events import EPISODE_EVENT, EPISODE_EVENTS, FAILURE, START, STOP, SUCCESS, encode_event
from .mapping import (
    GRIPPER_TOGGLE,
    HALT,
    KEYBOARD_HELP,
    QUIT,
    RECORD_TOGGLE,
    SPEED_DOWN,
    SPEED_UP,
    DeviceInput,
    GamepadLayout,
    SpaceMouseLayout,
    TeleopConfig,
    TeleopCore,
)
from .scripted import plan_scripted_demo


@dataclass
class TeleopNodeConfig:
    """Node-only parameters (the core's are TeleopConfig's fields)."""

    #: keyboard | gamepad | spacemouse | scripted | none (hold + events only)
    device: str = "keyboard"
    task: str = "reach_precise"
    operator: str = "unknown"
    key_timeout_s: float = 0.25
    gamepad_index: int = 0
    #: SpaceMouse: rotation of the device frame into the base frame (deg; 0: the operator looks
    #: along the robot's +x), and how long a deflection is believed without a new HID report.
    spacemouse_yaw_deg: float = 0.0
    spacemouse_stale_s: float = 0.25
    #: Make this node the safety filter's active source at start (parameter service of ``safety_node``).
    select_source: bool = True
    safety_node: str = "safety_filter"
    #: Scripted mode: number of episodes, seed of the first strategy draw, home jitter (rad), and
    #: whether the node exits (code 0) when done.
    episodes: int = 3
    scripted_seed: int = 0
    home_jitter: float = 0.05
    exit_when_done: bool = False


class TeleopNode(Node):
    def __init__(self) -> None:
        super().__init__("teleop_node")
        self.config = declare_dataclass(self, TeleopConfig)
        self.node_config = declare_dataclass(self, TeleopNodeConfig)
        nc = self.node_config
        if nc.device not in ("keyboard", "gamepad", "spacemouse", "scripted", "none"):
            raise ValueError(f"device:={nc.device!r}: expected keyboard, gamepad, spacemouse, scripted or none")
        self.core = TeleopCore(self.config)
        self.lock = threading.Lock()
        self.device: Any = None
        if nc.device == "keyboard":
            self.device = TerminalKeyboard(nc.key_timeout_s)
            sys.stdout.write(KEYBOARD_HELP)
            sys.stdout.flush()
        elif nc.device == "gamepad":
            self.device = PygameGamepad(GamepadLayout(), nc.gamepad_index)
            self.get_logger().info(f"gamepad: {self.device.name}")
        elif nc.device == "spacemouse":
            self.device = SpaceMouse(
                SpaceMouseLayout(base_yaw_deg=nc.spacemouse_yaw_deg, stale_s=nc.spacemouse_stale_s)
            )
            self.get_logger().info(f"SpaceMouse: {self.device.name}")
        self.recording = False
        self.gripper_open = True  # the hand starts open (homing opens it); the toggle flips this
        self.success = False
        self.object_pose: tuple[float, np.ndarray, np.ndarray] | None = None
        self.done = threading.Event()
        self.exit_code = 0
        group = ReentrantCallbackGroup()
        self.create_subscription(JointState, names.JOINT_STATES, self._on_joints, 10, callback_group=group)
        self.create_subscription(PoseStamped, names.OBJECT_POSE, self._on_object, 10, callback_group=group)
        self.create_subscription(
            Bool, names.TASK_SUCCESS, lambda m: setattr(self, "success", bool(m.data)), 10, callback_group=group
        )
        self.stack = StackClient(
            self, StackClientConfig(safety_node=nc.safety_node, home_tolerance=0.03, homing_timeout_s=30.0)
        )
        self.stack.guard = self._stop_if_quitting
        self.cmd_pub = self.create_publisher(JointTrajectory, names.TELEOP_COMMAND, 10)
        self.event_pub = self.create_publisher(String, EPISODE_EVENT, 10)
        self.gripper_client = self.create_client(SetBool, names.GRIPPER_MOVE, callback_group=group)
        self.diag_pub = self.create_publisher(DiagnosticArray, names.DIAGNOSTICS, 10)
        self._last_tick = time.monotonic()
        self._device_error: str | None = None
        self.create_timer(1.0 / self.config.rate_hz, self._tick, callback_group=MutuallyExclusiveCallbackGroup())
        self.create_timer(1.0, self._diagnose, callback_group=group)
        self.worker: threading.Thread | None = None
        if nc.select_source or nc.device == "scripted":
            self.worker = threading.Thread(target=self._work, daemon=True, name="teleop-worker")
            self.worker.start()

    # --- inputs ---------------------------------------------------------------------------
    def now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_joints(self, msg: JointState) -> None:
        idx = {n: i for i, n in enumerate(msg.name)}
        if not all(j in idx for j in names.JOINT_NAMES) or len(msg.position) != len(msg.name):
            return
        q = np.array([msg.position[idx[j]] for j in names.JOINT_NAMES])
        if np.isfinite(q).all():
            with self.lock:
                self.core.measured(q)

    def _on_object(self, msg: PoseStamped) -> None:
        self.object_pose = msg_to_pose(msg)

    # --- the command stream -----------------------------------------------------------------
    def _tick(self) -> None:
        now_m = time.monotonic()
        dt = min(now_m - self._last_tick, 3.0 / self.config.rate_hz)  # a late tick must not jump the target
        self._last_tick = now_m
        inp = self.device.poll(self.now()) if self.device is not None else DeviceInput()
        device_error = getattr(self.device, "error", None)
        if device_error and device_error != self._device_error:
            self.get_logger().error(f"{device_error}: no motion until the node is restarted with a working device")
        self._device_error = device_error
        with self.lock:
            for ev in inp.events:
                self._handle(ev)
            q = self.core.step(inp, dt) if self.node_config.device != "scripted" else self.core.q_target
        if q is not None:
            self.cmd_pub.publish(chunk_to_msg(self.now(), 0.1, q[None]))

    def _handle(self, ev: str) -> None:
        if ev == SPEED_UP or ev == SPEED_DOWN:
            s = self.core.scale_speed(1.25 if ev == SPEED_UP else 0.8)
            self._say(f"speed scale {s:.2f}")
        elif ev == HALT:
            self.core.resync()
        elif ev == QUIT:
            self.done.set()
        elif ev == RECORD_TOGGLE:
            self.send_event(STOP if self.recording else START)
        elif ev == GRIPPER_TOGGLE:
            self.toggle_gripper()
        elif ev in EPISODE_EVENTS:
            self.send_event(ev)

    def toggle_gripper(self) -> None:
        """Open a closed hand, close an open one; the call is not awaited (the command stream
        goes on while the hand moves) and its answer is logged."""
        if not self.gripper_client.service_is_ready():
            self._say(f"gripper: {names.GRIPPER_MOVE} is not available")
            return
        self.gripper_open = not self.gripper_open
        want = "open" if self.gripper_open else "close"
        future = self.gripper_client.call_async(SetBool.Request(data=self.gripper_open))

        def done(f: Any) -> None:
            res = f.result()
            self._say(f"gripper {want}: {res.message if res is not None else 'no answer'}")

        future.add_done_callback(done)

    def send_event(self, ev: str, **extra: Any) -> None:
        nc = self.node_config
        self.event_pub.publish(
            String(data=encode_event(ev, self.now(), task=nc.task, operator=nc.operator, source=nc.device, **extra))
        )
        if ev == START:
            self.recording = True
        elif ev in (STOP, "discard"):
            self.recording = False
        self._say(f"episode event: {ev}")

    def _say(self, text: str) -> None:
        if self.node_config.device == "keyboard":  # cbreak mode: keep the help text readable
            sys.stdout.write(f"\r{text}\n")
            sys.stdout.flush()
        self.get_logger().info(text)

    def _diagnose(self) -> None:
        c = self.core
        level = diagnostics.OK if c.synced and not self._device_error else diagnostics.WARN
        self.diag_pub.publish(
            diagnostics.array(
                self.now(),
                diagnostics.status(
                    "teleop_node",
                    level,
                    "ok" if c.synced else "no joint states yet",
                    {
                        "device": self.node_config.device,
                        "speed_scale": c.speed_scale,
                        "ik_refusals": c.ik_refusals,
                        "recording": self.recording,
                        "device_error": self._device_error or "",
                    },
                ),
            )
        )

    # --- worker thread: source selection and the scripted operator ----------------------------
    def _wait_synced(self, timeout_s: float = 60.0) -> None:
        t_end = time.monotonic() + timeout_s
        while not self.core.synced:
            if time.monotonic() > t_end:
                raise StackError(f"no {names.JOINT_STATES} within {timeout_s} s")
            time.sleep(0.05)

    def _work(self) -> None:
        try:
            self._wait_synced()
            if self.node_config.select_source or self.node_config.device == "scripted":
                self.stack.select_source("teleop")
                self._say("teleop is the safety filter's active source")
            if self.node_config.device == "scripted":
                # Unattended: clear a reflex latched before we started (the driver holds until our next command).
                self._recover()
                self.run_scripted()
                if self.node_config.exit_when_done:
                    # The last stop event must reach the recorder before this process goes: it
                    # closes that episode's file on it (seen lost under load without this wait).
                    if not self.event_pub.wait_for_all_acked(Duration(seconds=10.0)):
                        self.get_logger().warning("episode events not acknowledged by every subscriber")
                    self.done.set()
        except Exception as exc:  # noqa: BLE001 - reported, and the node stops (the filter holds the arm)
            self.get_logger().error(f"teleop worker: {type(exc).__name__}: {exc}")
            self.exit_code = 1
            self.done.set()

    def _stop_if_quitting(self) -> None:
        if self.done.is_set():
            raise StackError("teleop node is stopping")

    def _home(self, q_goal: np.ndarray) -> None:
        """Home through the teleop core's target (this node's own stream carries it to the filter)."""

        def follow(_times: np.ndarray, path: np.ndarray) -> None:
            with self.lock:
                self.core.set_target_joints(path[0])

        self.stack.go_home(q_goal, sink=follow)

    def _recover(self) -> None:
        self._say(f"driver recover: {self.stack.recover_driver()}")
        with self.lock:
            self.core.resync()
        t_end = time.monotonic() + 3.0
        while self.stack.driver_error() and time.monotonic() < t_end:  # wait for the next diagnostics to confirm
            time.sleep(0.1)

    def run_scripted(self) -> None:
        """Collect ``episodes`` demonstrations; an episode spoilt by a driver error is discarded and redone."""
        nc = self.node_config
        kept, attempts = 0, 0
        while kept < nc.episodes and not self.done.is_set():
            if attempts >= 2 * nc.episodes + 3:
                raise StackError(
                    f"gave up after {attempts} attempts ({kept} episodes kept): "
                    f"driver error {self.stack.driver_error()!r}"
                )
            attempts += 1
            try:
                if self._scripted_episode(kept):
                    kept += 1
            except StackError as exc:
                self.get_logger().warning(f"scripted episode failed to run ({exc}); recovering")
                if self.recording:
                    self.send_event("discard")
                self._recover()

    def _scripted_episode(self, index: int) -> bool:
        """One demonstration; False (episode discarded) when the driver reported an error meanwhile."""
        from cdp_core.sim.tasks import get_task

        nc = self.node_config
        task = get_task(nc.task)
        seed = int(self.stack.reset_episode()["seed"])
        if self.stack.driver_error():
            self._recover()
        self._home(task.episode_start(seed, nc.home_jitter)[1])
        t_reset = self.now()
        t_end = time.monotonic() + 5.0
        while self.object_pose is None or self.object_pose[0] < t_reset:
            if time.monotonic() > t_end:
                raise StackError(f"no fresh {names.OBJECT_POSE} after the scene reset")
            time.sleep(0.02)
        _, obj_pos, obj_quat = self.object_pose
        rng = np.random.default_rng(nc.scripted_seed + seed)
        with self.lock:
            pos, rot = tcp_pose(self.core.q_target)
        plan = plan_scripted_demo(task, obj_pos, obj_quat, pos, rot, rng)
        self.stack.start_episode()
        self.success = False
        self.send_event(START, seed=seed, strategy=plan.strategy, episode_index=index)
        t0 = self.now()
        while not self.done.is_set():
            t = self.now() - t0
            p, r = plan.tcp_pose(min(t, plan.duration))
            with self.lock:
                self.core.move_target(p, r)
            if t >= plan.duration and (self.success or t >= plan.duration + 2.0):  # the arm lags the target a little
                break
            if self.stack.driver_error():
                break
            time.sleep(1.0 / self.config.rate_hz)
        err = self.stack.driver_error()
        if err:
            self.send_event("discard", seed=seed, reason=f"driver error: {err}")
            self._say(f"scripted episode seed {seed} discarded: driver error {err}")
            self._recover()
            return False
        ok = self.success
        self.send_event(SUCCESS if ok else FAILURE, seed=seed)
        self.send_event(STOP, seed=seed)
        self._say(
            f"scripted episode {index + 1}/{nc.episodes} seed {seed} ({plan.strategy}): "
            f"{'success' if ok else 'failure'}"
        )
        return True

    def destroy_node(self) -> None:
        if self.device is not None:
            self.device.close()
        super().destroy_node()


def main(argv: list[str] | None = None) -> int:
    rclpy.init(args=argv if argv is not None else sys.argv)
    node = None
    code = 0
    executor = MultiThreadedExecutor(num_threads=3)
    try:
        node = TeleopNode()
        executor.add_node(node)
        while rclpy.ok() and not node.done.is_set():
            executor.spin_once(timeout_sec=0.1)
        code = node.exit_code
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except (DeviceError, ValueError) as exc:
        print(f"teleop_node: {exc}", file=sys.stderr)
        code = 2
    finally:
        ignore_further_signals()
        if node is not None:
            node.done.set()
            node.destroy_node()
        executor.shutdown()
        if rclpy.ok():
            rclpy.shutdown()
    return code


if __name__ == "__main__":
    sys.exit(main())
