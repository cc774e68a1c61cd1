"""Calibration in simulation against MuJoCo's ground truth: intrinsics, hand-eye (both mounts), gates, YAML."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from cdp_perception.sim_camera import use_offscreen_gl

use_offscreen_gl()

from cdp_perception.calibration import result  # noqa: E402
from cdp_perception.calibration.collect import collect_in_simulation, pose_set  # noqa: E402
from cdp_perception.calibration.simcal import calibrate_in_simulation, calibration_scene  # noqa: E402
from cdp_perception.calibration.solvers import CalibrationRefused, calibrate_hand_eye  # noqa: E402


@pytest.fixture(scope="module")
def eye_to_hand():
    return calibrate_in_simulation("eye_to_hand", intrinsic_views=24, hand_eye_views=16, seed=0)


@pytest.fixture(scope="module")
def eye_in_hand():
    return calibrate_in_simulation("eye_in_hand", intrinsic_views=24, hand_eye_views=16, seed=0)


def test_intrinsics_match_the_rendering_camera(eye_to_hand):
    k, kt = eye_to_hand.calibration.intrinsics.camera_matrix, eye_to_hand.true_camera_matrix
    print(
        f"\nintrinsics: fx {k[0, 0]:.2f}/{kt[0, 0]:.2f} fy {k[1, 1]:.2f}/{kt[1, 1]:.2f} "
        f"cx {k[0, 2]:.2f}/{kt[0, 2]:.2f} cy {k[1, 2]:.2f}/{kt[1, 2]:.2f} (estimated/true), "
        f"RMS {eye_to_hand.calibration.intrinsics.rms_px:.3f} px"
    )
    assert abs(k[0, 0] / kt[0, 0] - 1) < 0.01 and abs(k[1, 1] / kt[1, 1] - 1) < 0.01
    assert abs(k[0, 2] - kt[0, 2]) < 5.0 and abs(k[1, 2] - kt[1, 2]) < 5.0
    assert eye_to_hand.calibration.intrinsics.rms_px < 1.0


def test_eye_to_hand_extrinsic_error(eye_to_hand):
    r = eye_to_hand.calibration.hand_eye.residuals
    print(
        f"\neye-to-hand base_T_cam error: {eye_to_hand.hand_eye_error_mm:.2f} mm, "
        f"{eye_to_hand.hand_eye_error_deg:.3f} deg ({eye_to_hand.hand_eye_views} views); closed form alone "
        f"{r['sim_truth_closed_form_error_mm']:.2f} mm, {r['sim_truth_closed_form_error_deg']:.3f} deg"
    )
    assert eye_to_hand.hand_eye_error_mm < 1.0
    assert eye_to_hand.hand_eye_error_deg < 0.1
    # the joint refinement is what gets the millimetre: it must beat the closed form it starts from
    assert eye_to_hand.hand_eye_error_mm < r["sim_truth_closed_form_error_mm"]


def test_eye_in_hand_extrinsic_error(eye_in_hand):
    print(
        f"\neye-in-hand tcp_T_cam error: {eye_in_hand.hand_eye_error_mm:.2f} mm, "
        f"{eye_in_hand.hand_eye_error_deg:.3f} deg ({eye_in_hand.hand_eye_views} views)"
    )
    assert eye_in_hand.hand_eye_error_mm < 1.0
    assert eye_in_hand.hand_eye_error_deg < 0.1


@pytest.fixture(scope="module")
def scene():
    return calibration_scene("eye_to_hand")


def test_too_few_views_refused(scene, eye_to_hand):
    sc, renderer, spec = scene
    col = collect_in_simulation(sc, renderer, pose_set("eye_to_hand", 6, 1.0, seed=3), spec, "eye_to_hand")
    with pytest.raises(CalibrationRefused) as exc:
        calibrate_hand_eye(col.data, eye_to_hand.calibration.intrinsics)
    print(f"\nrefused: {exc.value}")
    assert any("views (need >= 10)" in r for r in exc.value.reasons)


def test_too_little_rotation_refused(scene, eye_to_hand):
    sc, renderer, spec = scene
    col = collect_in_simulation(sc, renderer, pose_set("eye_to_hand", 12, 0.08, seed=4), spec, "eye_to_hand")
    assert len(col.data.views) >= 10  # enough views: rotation alone must be the reason
    with pytest.raises(CalibrationRefused) as exc:
        calibrate_hand_eye(col.data, eye_to_hand.calibration.intrinsics)
    print(f"\nrefused: {exc.value}")
    assert any("too little rotation" in r for r in exc.value.reasons)


def test_yaml_round_trip_and_stale_warning(tmp_path, eye_to_hand):
    path = eye_to_hand.calibration.save(tmp_path / "cal.yaml")
    cal = result.load(path)
    assert cal.hand_eye is not None and cal.hand_eye.mode == "eye_to_hand"
    np.testing.assert_allclose(cal.hand_eye.transform, eye_to_hand.calibration.hand_eye.transform, atol=1e-9)
    np.testing.assert_allclose(cal.intrinsics.camera_matrix, eye_to_hand.calibration.intrinsics.camera_matrix)
    assert cal.stale_warning(3600) is None
    later = cal.date + dt.timedelta(hours=2)
    assert "old" in cal.stale_warning(3600, now=later)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda d: d.pop("hand_eye"), "no 'hand_eye'"),
        (lambda d: d["hand_eye"]["transform"].update(quat_xyzw=[0, 0, 0, 0.5]), "unit quaternion"),
        (lambda d: d["intrinsics"].update(fx="abc"), "'fx' is not a number"),
        (lambda d: d["hand_eye"].update(mode="on_the_table"), "'mode' must be one of"),
        (lambda d: d.update(date="yesterday"), "ISO 8601"),
    ],
)
def test_malformed_calibration_refused(tmp_path, eye_to_hand, edit, message):
    import yaml

    d = eye_to_hand.calibration.to_dict()
    edit(d)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(d))
    with pytest.raises(result.CalibrationError, match=message):
        result.load(path)


def test_missing_or_unparsable_file_refused(tmp_path):
    with pytest.raises(result.CalibrationError, match="does not exist"):
        result.load(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("intrinsics: [unclosed")
    with pytest.raises(result.CalibrationError, match="not valid YAML"):
        result.load(bad)
