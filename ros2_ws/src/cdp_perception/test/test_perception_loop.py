"""Perception in the loop on the fast path: the scripted expert plans from what the camera sees."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from cdp_perception.sim_camera import use_offscreen_gl

use_offscreen_gl()

from cdp_core.sim.env import FR3TaskEnv  # noqa: E402
from cdp_perception.calibration.result import load  # noqa: E402
from cdp_perception.closed_loop import PerceivedTaskEnv, _scripted_episode  # noqa: E402
from cdp_perception.geometry import make_transform  # noqa: E402
from cdp_perception.loop_cli import main as loop_main  # noqa: E402
from cdp_perception.markers import object_model  # noqa: E402

CALIBRATION = Path(__file__).resolve().parents[4] / "calibration" / "sim_eye_to_hand.yaml"
SEED = 20_003


@pytest.fixture(scope="module")
def env():
    return FR3TaskEnv("peg_insert")


def _perceived(env, calibration):
    return PerceivedTaskEnv(env, calibration, plane_z=object_model("peg_insert").resting_z)


def test_scripted_insertion_succeeds_with_perception(env):
    penv = _perceived(env, load(CALIBRATION))
    try:
        row = _scripted_episode(penv, SEED)
        truth = env.task.task_observation(env.params)["hole_pose"]
        print(
            f"\nperception in the loop: success {row['success']}, pose error mean "
            f"{np.mean(penv.stats.errors_mm):.2f} mm max {np.max(penv.stats.errors_mm):.2f} mm over "
            f"{penv.stats.detections}/{penv.stats.frames} frames"
        )
        assert penv.stats.detections >= 0.9 * penv.stats.frames  # the peg and arm hide at most one marker
        assert max(penv.stats.errors_mm) < 2.0
        assert penv.perceived is not None and not np.array_equal(penv.perceived, truth)  # it really is perceived
        assert row["success"]
    finally:
        penv.close()


def test_a_wrong_hand_eye_makes_the_insertion_miss(env):
    """The policy acts on the perceived pose: a camera believed 8 mm off puts the hole 8 mm off, and the peg misses."""
    cal = load(CALIBRATION)
    shifted = make_transform(np.eye(3), [0.0, 0.008, 0.0]) @ cal.hand_eye.transform
    bad = dataclasses.replace(cal, hand_eye=dataclasses.replace(cal.hand_eye, transform=shifted))
    penv = _perceived(env, bad)
    try:
        row = _scripted_episode(penv, SEED)
        print(f"\nhand-eye 8 mm off: success {row['success']}, pose error mean {np.mean(penv.stats.errors_mm):.2f} mm")
        assert 6.0 < np.mean(penv.stats.errors_mm) < 10.0
        assert not row["success"]
    finally:
        penv.close()


def test_cli_refuses_bad_inputs_before_running(tmp_path, capsys):
    bad = tmp_path / "cal.yaml"
    bad.write_text("version: 1\nintrinsics: {fx: 1}\n")
    assert loop_main(["--calibration", str(bad), "--episodes", "1"]) == 2
    assert "cdp-perception-eval:" in capsys.readouterr().err
    assert loop_main(["--task", "pick_banana", "--episodes", "1"]) == 2
    assert "unknown task 'pick_banana'" in capsys.readouterr().err
    assert loop_main(["--policy", str(tmp_path / "missing.onnx"), "--episodes", "1"]) == 2
    assert "neither 'scripted' nor an existing .onnx file" in capsys.readouterr().err
