"""``sim_robot``: the simulated FR3 (libfranka protocol on ``hostname``) and the task's ground truth.

Publishes /perception/object_pose (ground truth; perception replaces it on the robot path),
/task/success and /task/tip_error; /sim/reset_episode draws the next episode's placement.
"""

from __future__ import annotations

import json
import sys

import rclpy
from cdp_ros_common import diagnostics, names
from cdp_ros_common.conversions import pose_to_msg
from cdp_ros_common.params import declare_dataclass
from cdp_ros_common.spinning import spin_node
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.parameter import Parameter
from rcl_interfaces.msg import SetParametersResult
from std_msgs.msg import Bool, Float64
from std_srvs.srv import Trigger

from .simulation import SimConfig, TaskSimulation


class SimRobotNode(Node):
    def __init__(self) -> None:
        super().__init__("sim_robot")
        self.config = declare_dataclass(self, SimConfig)
        self.sim = TaskSimulation(self.config)
        self.sim.start()
        self.get_logger().info(
            f"franky-sim FR3 with task {self.config.task!r} serving libfranka on {self.config.hostname}"
        )
        self.pose_pub = self.create_publisher(PoseStamped, self.config.object_pose_topic, 10)
        self.success_pub = self.create_publisher(Bool, names.TASK_SUCCESS, 10)
        self.error_pub = self.create_publisher(Float64, names.TASK_TIP_ERROR, 10)
        self.diag_pub = self.create_publisher(DiagnosticArray, names.DIAGNOSTICS, 10)
        self.create_service(Trigger, names.SIM_RESET_EPISODE, self._reset)
        self.create_service(Trigger, names.SIM_START_EPISODE, self._start)
        self.create_timer(1.0 / self.config.ground_truth_rate_hz, self._publish)
        self.create_timer(1.0, self._diagnose)
        # next_seed: the seed the next /sim/reset_episode draws (-1 = the one after the last);
        # evaluation protocols set it to reuse the same placements across policies.
        self.declare_parameter("next_seed", -1)
        self.add_on_set_parameters_callback(self._on_parameters)

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _publish(self) -> None:
        if not self.sim.alive:
            self.get_logger().fatal(f"simulation loop stopped: {self.sim.error!r}")
            raise SystemExit(1)
        st = self.sim.status()
        self.pose_pub.publish(pose_to_msg(self._now(), st.object_position, st.object_quat_xyzw))
        self.success_pub.publish(Bool(data=st.success))
        self.error_pub.publish(Float64(data=float(st.tip_error_m)))

    def _diagnose(self) -> None:
        st = self.sim.status()
        self.diag_pub.publish(
            diagnostics.array(
                self._now(),
                diagnostics.status(
                    "sim_robot",
                    diagnostics.OK,
                    "running",
                    {
                        "task": self.config.task,
                        "seed": st.seed,
                        "episode_time_s": st.sim_time,
                        "success": st.success,
                        "tip_error_m": st.tip_error_m,
                    },
                ),
            )
        )

    def _on_parameters(self, params: list[Parameter]) -> SetParametersResult:
        for p in params:
            if p.name != "next_seed":
                return SetParametersResult(successful=False, reason=f"{p.name} cannot change while running")
            if not isinstance(p.value, int):
                return SetParametersResult(successful=False, reason=f"next_seed must be an integer, got {p.value!r}")
        return SetParametersResult(successful=True)

    def _reset(self, _req: Trigger.Request, res: Trigger.Response) -> Trigger.Response:
        requested = int(self.get_parameter("next_seed").value)
        seed, params = self.sim.reset_episode(None if requested < 0 else requested)
        if requested >= 0:  # one-shot: the following reset continues from this seed
            self.set_parameters([Parameter("next_seed", value=-1)])
        res.success = True
        res.message = json.dumps(
            {
                "seed": seed,
                "task": self.config.task,
                "params": {k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in params.items()},
            }
        )
        self.get_logger().info(f"episode reset: {res.message}")
        return res

    def _start(self, _req: Trigger.Request, res: Trigger.Response) -> Trigger.Response:
        self.sim.start_episode()
        res.success, res.message = True, f"episode {self.sim.status().seed} started"
        return res

    def destroy_node(self) -> None:
        if self.sim.alive:
            spread = self.sim.wait_for_rest(self.config.shutdown_grace_s)
            print(
                f"sim_robot: arm {'at rest' if spread < 5e-4 else 'still moving'} when the simulator stopped "
                f"(joints moved {spread * 1e3:.2f} mrad in the last 0.2 s)",
                flush=True,
            )
        self.sim.stop()
        super().destroy_node()


def main(argv: list[str] | None = None) -> int:
    rclpy.init(args=argv if argv is not None else sys.argv)
    node = None
    code = 0
    try:
        node = SimRobotNode()
        spin_node(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except SystemExit as exc:
        code = int(exc.code or 0)
    finally:
        if node is not None:
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return code


if __name__ == "__main__":
    sys.exit(main())
