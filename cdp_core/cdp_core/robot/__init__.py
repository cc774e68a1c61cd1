"""The one FR3 robot model every package imports (franka_description's idea, in numpy).

* :mod:`.limits`: the FR3 limit table (datasheet + libfranka ``rate_limiting.h``) and the
  profiles derived from it by name;
* :mod:`.kinematics`: forward kinematics, the analytic Jacobian, damped-least-squares IK, tools
  as data;
* :mod:`.rotations`: the only quaternion / rotation module, with an explicit hemisphere;
* :mod:`.trajectories`: the minimum-jerk profile.

No ROS, torch or MuJoCo import here (``cdp_core/tests/test_robot_model.py`` checks it), so the
safety filter and the driver import it on a robot PC without the learning stack's weight.
"""

from .kinematics import (
    FLANGE,
    FRANKA_HAND,
    IKConfig,
    IKResult,
    Tool,
    forward_kinematics,
    jacobian,
    pose_error,
    solve_ik,
    tcp_pose,
    tcp_position,
)
from .limits import FR3, WORKSPACE_BOX_MAX, WORKSPACE_BOX_MIN, FR3Limits

__all__ = [
    "FLANGE",
    "FR3",
    "FRANKA_HAND",
    "FR3Limits",
    "IKConfig",
    "IKResult",
    "Tool",
    "WORKSPACE_BOX_MAX",
    "WORKSPACE_BOX_MIN",
    "forward_kinematics",
    "jacobian",
    "pose_error",
    "solve_ik",
    "tcp_pose",
    "tcp_position",
]
