"""An in-process fake of the running stack for unit tests of tools that drive it (no simulator).

:class:`FakeFilter` plays the safety filter (its ``active_source`` parameter and
``/safety/intervention``), the policy's enable service, the driver's recover service and
diagnostics, and an arm that follows ``/teleop/command``; :class:`FakeSim` plays ``sim_robot``
(``next_seed``, the episode services, ``/task/success`` once the policy is enabled).
"""

from __future__ import annotations

import json

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, Float64, String
from std_srvs.srv import SetBool, Trigger
from trajectory_msgs.msg import JointTrajectory

from . import names
from .conversions import msg_to_chunk
from .diagnostics import OK, array, status

#: Where the fake arm starts (the simulated tasks' home).
Q0 = np.array([0.0, -0.3, 0.0, -2.2, 0.0, 1.9, 0.785])


class FakeFilter(Node):
    """``safety_filter``'s parameter, the policy's enable, the driver's recover, and an obedient arm."""

    def __init__(self, context):
        super().__init__("safety_filter", context=context)
        self.declare_parameter("active_source", "policy")
        self.add_on_set_parameters_callback(self._on_params)
        self.q = Q0.copy()
        self.frozen = False
        self.driver_error = ""
        self.policy_enabled = False
        self.refuse_enable = False
        self.teleop_commands = 0
        self.create_subscription(JointTrajectory, names.TELEOP_COMMAND, self._on_teleop, 50)
        self.joints = self.create_publisher(JointState, names.JOINT_STATES, 10)
        self.diag = self.create_publisher(DiagnosticArray, names.DIAGNOSTICS, 10)
        self.create_service(SetBool, names.POLICY_ENABLE, self._enable)
        self.interventions = self.create_publisher(String, names.SAFETY_INTERVENTION, 10)
        self.create_service(Trigger, names.DRIVER_RECOVER, self._recover)
        self.create_timer(0.02, self._publish)

    def _on_params(self, params) -> SetParametersResult:
        for p in params:
            if p.name == "active_source" and p.value not in ("policy", "teleop"):
                return SetParametersResult(successful=False, reason=f"unknown source {p.value!r}")
        return SetParametersResult(successful=True)

    def _on_teleop(self, msg: JointTrajectory) -> None:
        self.teleop_commands += 1
        if not self.frozen:
            _, positions = msg_to_chunk(msg)
            self.q = np.asarray(positions[0], dtype=np.float64)

    def _enable(self, req, res):
        res.success = not self.refuse_enable
        res.message = "model not loaded" if self.refuse_enable else "ok"
        self.policy_enabled = req.data if res.success else self.policy_enabled
        return res

    def _recover(self, _req, res):
        self.driver_error = ""
        res.success, res.message = True, "recovered"
        return res

    def _publish(self) -> None:
        msg = JointState(name=list(names.JOINT_NAMES), position=self.q.tolist(), velocity=[0.0] * 7)
        self.joints.publish(msg)
        self.diag.publish(array(0.0, status("franka_driver", OK, "ok", {"error": self.driver_error})))


class FakeSim(Node):
    def __init__(self, context):
        super().__init__("sim_robot", context=context)
        self.declare_parameter("next_seed", 100)
        self.honour_seed = True
        self.started = 0
        #: Set by the test: the episode succeeds this long after it starts (None: never).
        self.succeed_after_s: float | None = None
        self._started_at: float | None = None
        self.success_pub = self.create_publisher(Bool, names.TASK_SUCCESS, 10)
        self.error_pub = self.create_publisher(Float64, names.TASK_TIP_ERROR, 10)
        self.create_timer(0.02, self._publish)
        self.create_service(Trigger, names.SIM_RESET_EPISODE, self._reset)
        self.create_service(Trigger, names.SIM_START_EPISODE, self._start)

    def _reset(self, _req, res):
        seed = self.get_parameter("next_seed").value if self.honour_seed else 1
        res.success, res.message = True, json.dumps({"seed": seed, "params": {"x": 1}})
        return res

    def _publish(self) -> None:
        now = self.get_clock().now().nanoseconds * 1e-9
        ok = (
            self._started_at is not None
            and self.succeed_after_s is not None
            and now - self._started_at >= self.succeed_after_s
        )
        self.success_pub.publish(Bool(data=bool(ok)))
        self.error_pub.publish(Float64(data=0.001 if ok else 0.05))

    def _start(self, _req, res):
        self.started += 1
        self._started_at = self.get_clock().now().nanoseconds * 1e-9
        res.success, res.message = True, "started"
        return res
