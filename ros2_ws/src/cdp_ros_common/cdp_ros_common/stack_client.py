"""``StackClient``: the one way a tool drives the running stack (a plain object composed into a node).

Every tool that moves the arm outside the policy (episode runners, the evaluation protocol,
scripted teleop, recording replay, calibration collection) does the same few things: call a
service with a timeout, hand the safety filter's input to a source, bring the arm to a joint
configuration *through the filter* (teleop source), enable or disable the policy, reset and start
a simulated episode, and check that the driver reports no error. They are here once, with one
error type, :class:`StackError`; the arm is never commanded except on ``/teleop/command`` (or a
caller's own sink feeding it), so the filter's limits apply to all of it.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import Parameter as ParameterMsg
from rcl_interfaces.msg import ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_srvs.srv import SetBool, Trigger
from trajectory_msgs.msg import JointTrajectory

from . import names
from .conversions import chunk_to_msg
from .trajectories import homing_trajectory

#: ``sink(times, path)``: the part of a joint path still to go (absolute due times [n], positions [n, 7]).
JointSink = Callable[[np.ndarray, np.ndarray], None]


class StackError(RuntimeError):
    """The running stack did not do what was asked (a service missing or refusing, a node dead,
    the driver in error, the arm not arriving). The arm holds; a person decides."""


@dataclass
class StackClientConfig:
    """How a tool talks to the stack."""

    #: Node whose ``active_source`` parameter selects the command source.
    safety_node: str = "safety_filter"
    #: Node whose parameters set the simulated episode (``next_seed``).
    sim_node: str = "sim_robot"
    #: Wait for a service to appear, and for its answer (s).
    service_timeout_s: float = 10.0
    #: Homing: peak joint speed of the path (rad/s), how close counts as there (rad), how long it
    #: must stay there (s), and the time it may take in all (s).
    homing_speed: float = 0.4
    home_tolerance: float = 0.01
    home_settle_s: float = 0.3
    homing_timeout_s: float = 30.0
    #: Period (s) at which the homing path is re-sent (the filter goes stale without fresh commands).
    command_period_s: float = 0.05

    def __post_init__(self) -> None:
        for name in ("service_timeout_s", "homing_speed", "home_tolerance", "homing_timeout_s", "command_period_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"StackClientConfig.{name} must be > 0, got {getattr(self, name)}")
        if self.home_settle_s < 0:
            raise ValueError(f"StackClientConfig.home_settle_s must be >= 0, got {self.home_settle_s}")


class StackClient:
    """Composed into ``node``: measured joints, diagnostics, the stack's services and homing.

    The blocking methods are for a worker thread while an executor spins ``node`` elsewhere.
    ``guard`` (settable) is called in every wait loop: an owner that supervises processes raises
    from it when one died, so no wait outlives the stack.
    """

    def __init__(self, node: Node, config: StackClientConfig | None = None):
        self.node = node
        self.config = config or StackClientConfig()
        self.group = ReentrantCallbackGroup()
        self.q: np.ndarray | None = None
        self.dq: np.ndarray | None = None
        #: Latest key/values of every diagnostics status, by status name, and when each arrived (monotonic).
        self.diagnostics: dict[str, dict[str, str]] = {}
        self.diag_time: dict[str, float] = {}
        self.guard: Callable[[], None] = lambda: None
        node.create_subscription(JointState, names.JOINT_STATES, self._on_joints, 10, callback_group=self.group)
        node.create_subscription(DiagnosticArray, names.DIAGNOSTICS, self._on_diag, 50, callback_group=self.group)
        self.teleop = node.create_publisher(JointTrajectory, names.TELEOP_COMMAND, 10)
        self._clients: dict[str, Any] = {}
        self._types = {
            names.POLICY_ENABLE: SetBool,
            names.SIM_RESET_EPISODE: Trigger,
            names.SIM_START_EPISODE: Trigger,
            names.DRIVER_RECOVER: Trigger,
            self.filter_parameters: SetParameters,
            self.sim_parameters: SetParameters,
        }

    # --- names ----------------------------------------------------------------------------
    @property
    def filter_parameters(self) -> str:
        return f"/{self.config.safety_node}/set_parameters"

    @property
    def sim_parameters(self) -> str:
        return f"/{self.config.sim_node}/set_parameters"

    # --- subscriptions --------------------------------------------------------------------
    def _on_joints(self, msg: JointState) -> None:
        idx = {n: i for i, n in enumerate(msg.name)}
        if not all(j in idx for j in names.JOINT_NAMES) or len(msg.position) != len(msg.name):
            return
        q = np.array([msg.position[idx[j]] for j in names.JOINT_NAMES])
        if not np.isfinite(q).all():
            return
        self.q = q
        if len(msg.velocity) == len(msg.name):
            self.dq = np.array([msg.velocity[idx[j]] for j in names.JOINT_NAMES])

    def _on_diag(self, msg: DiagnosticArray) -> None:
        now = time.monotonic()
        for st in msg.status:
            self.diagnostics[st.name] = {kv.key: kv.value for kv in st.values}
            self.diag_time[st.name] = now

    # --- services -------------------------------------------------------------------------
    def client(self, service: str, srv_type: Any | None = None) -> Any:
        """The (cached) client of ``service``; its type is known for the stack's own services."""
        if service not in self._clients:
            kind = srv_type or self._types.get(service)
            if kind is None:
                raise ValueError(f"StackClient does not know the type of service {service}: pass srv_type")
            self._clients[service] = self.node.create_client(kind, service, callback_group=self.group)
        return self._clients[service]

    def call(self, service: str, request: Any, timeout_s: float | None = None, srv_type: Any | None = None) -> Any:
        """Call ``service`` and return its response; StackError if it is missing or does not answer in time."""
        timeout_s = self.config.service_timeout_s if timeout_s is None else timeout_s
        cli = self.client(service, srv_type)
        if not cli.wait_for_service(timeout_sec=timeout_s):
            raise StackError(f"service {service} is not available within {timeout_s} s: is its node running?")
        done = threading.Event()
        future = cli.call_async(request)
        future.add_done_callback(lambda _f: done.set())
        if not done.wait(timeout_s):
            raise StackError(f"service {service} did not answer within {timeout_s} s")
        result = future.result()
        if result is None:
            raise StackError(f"service {service} failed: {future.exception()}")
        return result

    def trigger(self, service: str, timeout_s: float | None = None) -> str:
        """Call a Trigger service; its message, or StackError with the refusal."""
        res = self.call(service, Trigger.Request(), timeout_s)
        if not res.success:
            raise StackError(f"{service} refused: {res.message}")
        return res.message

    def set_parameter(self, node_parameters: str, name: str, value: str | int) -> None:
        """Set one string or integer parameter through a node's ``set_parameters`` service."""
        if isinstance(value, str):
            pv = ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=value)
        else:
            pv = ParameterValue(type=ParameterType.PARAMETER_INTEGER, integer_value=int(value))
        res = self.call(node_parameters, SetParameters.Request(parameters=[ParameterMsg(name=name, value=pv)]))
        if not res.results or not res.results[0].successful:
            why = res.results[0].reason if res.results else "no result"
            raise StackError(f"{node_parameters.rsplit('/', 2)[-2]} refused {name}={value}: {why}")

    def wait_for(self, services: list[str], timeout_s: float) -> None:
        """Until joint states flow and every service in ``services`` is served."""
        t_end = time.monotonic() + timeout_s
        while self.q is None:
            self.guard()
            if time.monotonic() > t_end:
                raise StackError(f"no {names.JOINT_STATES} within {timeout_s} s: is the driver running?")
            time.sleep(0.05)
        for service in services:
            if not self.client(service).wait_for_service(timeout_sec=max(0.1, t_end - time.monotonic())):
                raise StackError(f"service {service} is not available within {timeout_s} s: is its node running?")

    # --- what tools do ----------------------------------------------------------------------
    def select_source(self, source: str) -> None:
        """Hand the safety filter's input to ``source`` (``policy`` or ``teleop``)."""
        self.set_parameter(self.filter_parameters, "active_source", source)

    def enable_policy(self, on: bool) -> None:
        res = self.call(names.POLICY_ENABLE, SetBool.Request(data=on))
        if not res.success:
            raise StackError(f"policy refused enable={on}: {res.message}")

    def reset_episode(self, seed: int | None = None) -> dict[str, Any]:
        """Draw the simulator's next episode (``seed``: ask for that one); its ``{"seed", "params"}``."""
        if seed is not None:
            self.set_parameter(self.sim_parameters, "next_seed", int(seed))
        reset = json.loads(self.trigger(names.SIM_RESET_EPISODE))
        if seed is not None and int(reset["seed"]) != seed:
            raise StackError(
                f"{self.config.sim_node} drew seed {reset['seed']} instead of the requested {seed}: "
                "it does not honour next_seed; episodes would not pair"
            )
        return reset

    def start_episode(self) -> None:
        """Restart the simulator's success monitor and episode clock."""
        self.trigger(names.SIM_START_EPISODE)

    def recover_driver(self, timeout_s: float = 15.0) -> str:
        """Ask the driver to clear a reflex (it never resumes motion by itself); its message."""
        return self.call(names.DRIVER_RECOVER, Trigger.Request(), timeout_s).message

    def driver_error(self) -> str:
        """The error the driver's diagnostics report; "" when none."""
        err = self.diagnostics.get("franka_driver", {}).get("error", "")
        return "" if err == "no state yet" else err

    def check_driver(self) -> None:
        """StackError if the driver reports an error (and whatever ``guard`` raises)."""
        self.guard()
        err = self.driver_error()
        if err:
            raise StackError(
                f"franka_driver reports an error ({err}); the arm holds. Find the cause, "
                f"then call {names.DRIVER_RECOVER}"
            )

    def now(self) -> float:
        return self.node.get_clock().now().nanoseconds * 1e-9

    def send_teleop(self, times: np.ndarray, path: np.ndarray) -> None:
        """The default sink: the path still to go (up to 2 s of it) on ``/teleop/command``."""
        dt = float(times[1] - times[0]) if len(times) > 1 else 0.1
        self.teleop.publish(chunk_to_msg(float(times[0]), dt, np.asarray(path)[:40]))

    def go_home(
        self,
        q_goal: np.ndarray,
        sink: JointSink | None = None,
        tolerance: float | None = None,
        timeout_s: float | None = None,
        speed: float | None = None,
    ) -> None:
        """Bring the arm to ``q_goal`` through the safety filter and return once it stays there.

        The filter's source must be ``teleop``; ``sink`` (default :meth:`send_teleop`) receives the
        path still to go every ``command_period_s``, then the goal itself, so the filter never goes
        stale. StackError if the driver reports an error or the arm is not there within the timeout.
        """
        c = self.config
        sink = sink or self.send_teleop
        tolerance = c.home_tolerance if tolerance is None else tolerance
        timeout_s = c.homing_timeout_s if timeout_s is None else timeout_s
        q_goal = np.asarray(q_goal, dtype=np.float64).reshape(7)
        t_end = time.monotonic() + timeout_s
        while self.q is None:
            self.check_driver()
            if time.monotonic() > t_end:
                raise StackError(f"no {names.JOINT_STATES} within {timeout_s} s: is the driver running?")
            time.sleep(0.05)
        times, path = homing_trajectory(
            self.q.copy(), q_goal, self.now() + 0.1, speed or c.homing_speed, dt=c.command_period_s
        )
        settled_since: float | None = None
        while True:
            now = self.now()  # read once: a second reading may already be past the path's end
            if now < times[-1]:
                k = max(int(np.searchsorted(times, now, side="right")) - 1, 0)
                sink(times[k:], path[k:])
            else:
                sink(np.array([now]), q_goal[None])
                # Settled = within tolerance for home_settle_s (velocities are too noisy at rest to judge).
                if float(np.max(np.abs(self.q - q_goal))) < tolerance:
                    settled_since = settled_since or time.monotonic()
                    if time.monotonic() - settled_since >= c.home_settle_s:
                        return
                else:
                    settled_since = None
            self.check_driver()
            if time.monotonic() > t_end:
                raise StackError(
                    f"arm did not reach {np.round(q_goal, 3).tolist()} within {timeout_s} s "
                    f"(error {np.max(np.abs(self.q - q_goal)):.3f} rad)"
                )
            time.sleep(c.command_period_s)
