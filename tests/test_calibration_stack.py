"""Integration: eye-to-hand calibration collected through the running stack (cdp-calibrate collect).

The arm moves through the pose set on /teleop/command via the safety filter (franky-sim over the
libfranka protocol), the simulated camera renders the ChArUco board carried by the hand through
librealsense's software device, and each view is paired with /franka/ee_pose at the frame's
capture time: the path a real robot takes, checked against MuJoCo's ground-truth camera pose.
"""

from __future__ import annotations

from pathlib import Path

import pytest

rclpy = pytest.importorskip("rclpy")

from cdp_bringup.graph import load_graph, resolve  # noqa: E402
from cdp_bringup.testing import loopback_host, running_graph  # noqa: E402
from cdp_perception.calibration.ros_collect import calibrate_via_stack  # noqa: E402
from cdp_perception.geometry import transform_error  # noqa: E402
from cdp_perception.sim_camera import CameraSpec  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def test_eye_to_hand_calibration_through_the_stack():
    specs = resolve(
        load_graph(),
        {
            "use_sim": "true",
            "use_perception": "true",
            "robot_ip": loopback_host(5),
            "task": "reach_precise",
            "calibration_board": "hand",
        },
    )
    specs = [s for s in specs if s.name not in ("policy_node", "perception_node")]  # collection needs neither
    lines: list[str] = []
    with running_graph(specs, ROOT / "outputs" / "test_calibration_stack.log") as (_, log):
        try:
            cal, col = calibrate_via_stack("eye_to_hand", views=14, seed=0, log=lines.append)
        except Exception as exc:
            raise RuntimeError(
                "collection through the stack failed:\n" + "\n".join(lines) + "\n" + log.getvalue()[-6000:]
            ) from exc
    err_m, err_deg = transform_error(cal.hand_eye.transform, CameraSpec().mount_T_cam)
    print(
        f"\nthrough the stack: {len(col.data.views)} views of {col.visited} poses; base_T_cam error "
        f"{err_m * 1000:.2f} mm, {err_deg:.3f} deg; residuals {cal.hand_eye.residuals}"
    )
    assert col.unreachable == 0, "\n".join(lines)
    assert len(col.data.views) >= 10
    assert err_m < 0.002 and err_deg < 0.3
