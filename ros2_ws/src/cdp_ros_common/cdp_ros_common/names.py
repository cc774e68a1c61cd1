"""Frame, joint and topic names of the stack's ROS graph (../shared/ARCHITECTURE.md), in one place."""

#: REP 103/105 base frame: the robot's base link.
BASE_FRAME = "fr3_link0"
#: Arm joints, in the order every message and array of the stack uses.
JOINT_NAMES = [f"fr3_joint{i}" for i in range(1, 8)]
#: Gripper fingers as published on /joint_states (each finger = half the opening width).
FINGER_NAMES = ["fr3_finger_joint1", "fr3_finger_joint2"]

# Topics
JOINT_STATES = "/joint_states"
EE_POSE = "/franka/ee_pose"
OBJECT_POSE = "/perception/object_pose"
#: Simulator ground truth when perception is in the loop (the simulated camera renders from it).
SIM_OBJECT_POSE = "/sim/object_pose"


def camera_image_topic(camera: str) -> str:
    """The topic of an image policy's camera ``camera`` (cdp_core camera names): sensor_msgs/Image,
    rgb8 or bgr8, stamped with the capture time."""
    return f"/camera/{camera}/image_raw"


#: The agent-view camera an image policy sees.
AGENTVIEW_IMAGE = camera_image_topic("agentview")


POLICY_CHUNK = "/policy/action_chunk"
#: std_msgs/Float64MultiArray, layout [draws, steps, joints]: every draw of the last chunk (the
#: dispersion monitor's samples), for viewers; the arm executes draw 0 (POLICY_CHUNK).
POLICY_DRAWS = "/policy/chunk_draws"
TELEOP_COMMAND = "/teleop/command"
SAFETY_COMMAND = "/safety/command"
SAFETY_SPEED_SCALE = "/safety/speed_scale"
SAFETY_INTERVENTION = "/safety/intervention"
TASK_SUCCESS = "/task/success"
TASK_TIP_ERROR = "/task/tip_error"
DIAGNOSTICS = "/diagnostics"
EPISODE_EVENT = "/episode/event"  # std_msgs/String, JSON: teleop -> recorder (start, stop, discard, success, failure)
RECORDER_STATUS = "/recorder/status"  # std_msgs/String, JSON

# Services
POLICY_ENABLE = "/policy/enable"  # std_srvs/SetBool
SAFETY_ESTOP = "/safety/estop"  # std_srvs/Trigger, latched
SAFETY_RESET = "/safety/reset"  # std_srvs/Trigger
DRIVER_RECOVER = "/franka/recover"  # std_srvs/Trigger; never resumes motion by itself
DRIVER_ESTOP = "/franka/estop"  # std_srvs/Trigger: the driver brakes, holds and refuses commands (latched)
DRIVER_RESET = "/franka/reset"  # std_srvs/Trigger: clears the driver's e-stop and command-guard faults
#: Fully qualified name of the node whose publisher is the only one the driver takes commands from.
SAFETY_FILTER_NODE = "/safety_filter"
GRIPPER_MOVE = "/franka/gripper/move"  # std_srvs/SetBool: True = open, False = close
SIM_RESET_EPISODE = "/sim/reset_episode"  # std_srvs/Trigger: next seed's object placement
SIM_START_EPISODE = "/sim/start_episode"  # std_srvs/Trigger: success monitor and episode clock restart

# Cartesian command path (geometry_msgs/PoseStamped targets of the TCP in BASE_FRAME)
POLICY_CARTESIAN = "/policy/cartesian_command"
TELEOP_CARTESIAN = "/teleop/cartesian_command"
SAFETY_CARTESIAN_COMMAND = "/safety/cartesian_command"
