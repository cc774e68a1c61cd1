"""Object pose from rendered images against ground truth, and the software-device / recording paths of the SDK."""

from __future__ import annotations

import numpy as np
import pytest

from cdp_perception.sim_camera import use_offscreen_gl

use_offscreen_gl()

from cdp_perception.calibration.simcal import calibrate_in_simulation  # noqa: E402
from cdp_perception.detector import ObjectPoseEstimator, ObjectTracker  # noqa: E402
from cdp_perception.geometry import transform_error  # noqa: E402
from cdp_perception.realsense import PlaybackSource, SoftwareSource  # noqa: E402
from cdp_perception.sim_camera import CameraScene, CameraSpec, SceneRenderer  # noqa: E402


def _truth_pose(task, params):
    v = next(iter(task.task_observation(params).values()))
    return v[:3], (v[3:7] if v.shape[0] >= 7 else np.array([0.0, 0.0, 0.0, 1.0]))


@pytest.fixture(scope="module")
def calibration():
    """The full chain: the eye-to-hand camera calibrated from rendered ChArUco views, not ground truth."""
    return calibrate_in_simulation("eye_to_hand", intrinsic_views=24, hand_eye_views=16, seed=0).calibration


@pytest.mark.parametrize(
    "task, plane_z, limit_mm", [("peg_insert", None, 6.0), ("peg_insert", 0.06, 1.2), ("reach_precise", None, 6.0)]
)
def test_object_pose_error_with_calibrated_camera(calibration, task, plane_z, limit_mm):
    cam = CameraSpec()  # the same camera that was calibrated (default eye-to-hand pose)
    scene = CameraScene(task, cam)
    renderer = SceneRenderer(scene.model, width=cam.width, height=cam.height)
    intr = calibration.intrinsics
    rng = np.random.default_rng(7)
    errors, deg = [], []
    for _ in range(6):
        params = scene.task.sample(rng)
        scene.set_object_pose(*_truth_pose(scene.task, params))
        scene.forward()
        img = renderer.render(scene.data)
        # a fresh tracker per placement: the error of one image, not of a smoothed sequence
        tracker = ObjectTracker(
            ObjectPoseEstimator(scene.object, intr.camera_matrix, intr.dist_coeffs),
            calibration.hand_eye.transform,
            eye_in_hand=False,
            plane_z=plane_z,
        )
        tracked = tracker.update(img, 0.0)
        assert tracked is not None, f"{task}: object not detected for {params}"
        e_m, e_deg = transform_error(tracked.base_T_object, scene.base_T_object())
        errors.append(e_m * 1000)
        deg.append(e_deg)
    renderer.close()
    print(
        f"\n{task} ({'free 6-DOF' if plane_z is None else f'on the plane z = {plane_z}'}): object position error mean {np.mean(errors):.2f} mm, max {np.max(errors):.2f} mm; "
        f"orientation mean {np.mean(deg):.2f} deg"
    )
    assert np.max(errors) < limit_mm


def test_outlier_rejected_then_accepted_when_persistent():
    from cdp_perception.detector import FilterConfig, PoseFilter
    from cdp_perception.geometry import make_transform

    f = PoseFilter(FilterConfig(alpha=0.5, outlier_m=0.02, reset_after=3))
    base = make_transform(np.eye(3), [0.5, 0.0, 0.06])
    assert f.update(base)
    jump = make_transform(np.eye(3), [0.6, 0.0, 0.06])
    assert not f.update(jump) and not f.update(jump)
    np.testing.assert_allclose(f.pose[:3, 3], base[:3, 3])  # a glitch never moves the estimate
    assert f.update(jump)  # three in a row: the object moved
    np.testing.assert_allclose(f.pose[:3, 3], jump[:3, 3])
    assert f.update(make_transform(np.eye(3), [0.61, 0.0, 0.06]))
    assert abs(f.pose[0, 3] - 0.605) < 1e-9  # smoothing halves the step


def test_software_device_and_recording_round_trip(tmp_path):
    cam = CameraSpec(width=320, height=240)
    scene = CameraScene("peg_insert", cam)
    renderer = SceneRenderer(scene.model, width=cam.width, height=cam.height)
    rec = tmp_path / "sim.db3"
    src = SoftwareSource(cam.camera_matrix(), cam.width, cam.height, fps=5, record_to=str(rec))
    images, stamps = [], [1000.25, 1000.45, 1000.65]
    for k, stamp in enumerate(stamps):
        scene.set_joints(np.array([0.1 * k, -0.3, 0.0, -2.2, 0.0, 1.9, 0.785]))
        scene.forward()
        img = renderer.render(scene.data)
        images.append(img)
        src.inject(img, stamp)
        frame = src.read(timeout_s=2.0)
        assert frame is not None
        np.testing.assert_array_equal(frame.image, img)
        assert abs(frame.stamp - stamp) < 1e-3  # the capture time survives the SDK
        np.testing.assert_allclose(frame.camera_matrix, cam.camera_matrix(), atol=1e-3)
    src.close()
    del src
    import gc

    gc.collect()
    assert rec.is_file() and rec.stat().st_size > 0
    play = PlaybackSource(str(rec), realtime=False)
    replayed = []
    while (f := play.read(timeout_s=1.0)) is not None:
        replayed.append(f)
    play.close()
    renderer.close()
    assert len(replayed) == len(images)
    for f, img in zip(replayed, images):
        np.testing.assert_array_equal(f.image, img)
