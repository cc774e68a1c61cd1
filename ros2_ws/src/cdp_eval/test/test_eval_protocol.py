"""Protocol loading, scheduling, and the checks that stop a protocol before anything moves."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from cdp_eval.protocol import ProtocolError, load_protocol, preflight, protocol_from_dict

ROOT = Path(__file__).resolve().parents[4]
MODEL = ROOT / "models" / "reach_precise" / "cdp_reach.onnx"
TOY = ROOT / "models" / "default" / "toy_cdp.onnx"  # a 2-D toy task's model: does not fit reach_precise


def base(tmp_path: Path, **over) -> dict:
    d = {
        "name": "t",
        "task": "reach_precise",
        "policies": {"A": str(MODEL), "B": str(MODEL)},
        "trials": 3,
        "output": str(tmp_path / "out"),
    }
    d.update(over)
    return d


def test_schedule_interleaves_and_pairs_seeds(tmp_path):
    p = protocol_from_dict(base(tmp_path, seeds={"first": 7}))
    assert p.schedule() == [(0, "A"), (0, "B"), (1, "A"), (1, "B"), (2, "A"), (2, "B")]
    assert p.seeds == [7, 8, 9]
    q = protocol_from_dict(base(tmp_path, interleaving="ABBA", seeds=[5, 3, 11]))
    assert q.schedule() == [(0, "A"), (0, "B"), (1, "B"), (1, "A"), (2, "A"), (2, "B")]
    assert q.seeds == [5, 3, 11]


@pytest.mark.parametrize(
    "over, words",
    [
        ({"trails": 3}, "unknown key"),
        ({"trials": 0}, "trials"),
        ({"trials": True}, "trials"),
        ({"seeds": [1, 2]}, "2 seeds for 3 trials"),
        ({"seeds": [1, 1, 2]}, "repeats"),
        ({"interleaving": "AABB"}, "interleaving"),
        ({"task": "stack_blocks"}, "unknown task"),
        ({"policies": {}}, "policies"),
        ({"launch": {"model": "x.onnx"}}, "set by the protocol"),
    ],
)
def test_bad_protocols_are_refused_naming_the_field(tmp_path, over, words):
    with pytest.raises(ProtocolError, match=words):
        protocol_from_dict(base(tmp_path, **over))


def test_missing_required_key(tmp_path):
    d = base(tmp_path)
    del d["task"]
    with pytest.raises(ProtocolError, match="task"):
        protocol_from_dict(d)


def write(tmp_path: Path, d: dict) -> Path:
    path = tmp_path / "protocol.yaml"
    path.write_text(yaml.safe_dump(d))
    return path


def run_cli(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cdp_eval.run", str(path)], capture_output=True, text=True, timeout=120, cwd=ROOT
    )


def test_model_not_fitting_the_task_stops_before_any_motion(tmp_path):
    d = base(tmp_path, policies={"cdp": str(MODEL), "toy": str(TOY)})
    with pytest.raises(ProtocolError, match="policy 'toy'.*does not fit task reach_precise"):
        preflight(load_protocol(write(tmp_path, d)))
    res = run_cli(write(tmp_path, d))
    assert res.returncode == 2, res.stdout + res.stderr
    assert "does not fit task reach_precise" in res.stderr and "did not move" in res.stderr
    # Nothing was started: no node graph log, no results.
    assert not (tmp_path / "out" / "graph.log").exists()
    assert not (tmp_path / "out" / "results.jsonl").exists()


def test_missing_model_file_stops(tmp_path):
    d = base(tmp_path, policies={"cdp": str(MODEL), "gone": str(tmp_path / "gone.onnx")})
    with pytest.raises(ProtocolError, match="gone.onnx"):
        preflight(load_protocol(write(tmp_path, d)))


def calibration(path: Path, age: dt.timedelta) -> Path:
    date = dt.datetime.now(dt.timezone.utc) - age
    path.write_text(
        yaml.safe_dump(
            {
                "version": 1,
                "date": date.isoformat(),
                "camera": {"serial": "cam0", "width": 640, "height": 480},
                "intrinsics": {
                    "width": 640,
                    "height": 480,
                    "fx": 600.0,
                    "fy": 600.0,
                    "cx": 320.0,
                    "cy": 240.0,
                    "dist": [0.0] * 5,
                },
                "hand_eye": {
                    "mode": "eye_to_hand",
                    "transform": {"position": [1.0, 0.0, 0.8], "quat_xyzw": [0.0, 0.0, 0.0, 1.0]},
                },
            }
        )
    )
    return path


def test_stale_calibration_stops_the_protocol_on_the_robot(tmp_path):
    cal = calibration(tmp_path / "cal.yaml", dt.timedelta(days=30))
    d = base(
        tmp_path, use_sim=False, calibration=str(cal), calibration_max_age_h=24, launch={"robot_ip": "127.0.8.250"}
    )
    with pytest.raises(ProtocolError, match="stale calibration.*720.0 h old"):
        preflight(load_protocol(write(tmp_path, d)))
    res = run_cli(write(tmp_path, d))
    assert res.returncode == 2 and "stale calibration" in res.stderr, res.stdout + res.stderr
    assert not (tmp_path / "out" / "graph.log").exists()


def test_fresh_calibration_passes_and_enters_the_hash(tmp_path):
    cal = calibration(tmp_path / "cal.yaml", dt.timedelta(hours=1))
    d = base(tmp_path, use_sim=False, calibration=str(cal), calibration_max_age_h=24)
    pre = preflight(load_protocol(write(tmp_path, d)))
    assert pre.calibration["date"] and len(pre.calibration["sha256"]) == 64
    calibration(tmp_path / "cal.yaml", dt.timedelta(hours=2))  # re-calibrated: a different experiment
    assert preflight(load_protocol(write(tmp_path, d))).protocol_hash != pre.protocol_hash


def test_robot_protocol_without_calibration_stops(tmp_path):
    with pytest.raises(ProtocolError, match="calibration file is required"):
        preflight(load_protocol(write(tmp_path, base(tmp_path, use_sim=False))))
    # A stale calibration in simulation (not required) is only noted.
    cal = calibration(tmp_path / "cal.yaml", dt.timedelta(days=30))
    pre = preflight(load_protocol(write(tmp_path, base(tmp_path, calibration=str(cal), calibration_max_age_h=24))))
    assert "old" in pre.calibration["stale_warning"]


def test_operator_prompts_until_a_valid_answer_and_stops_at_end_of_input():
    import io

    from cdp_eval.run import Operator

    said: list[str] = []
    op = Operator(io.StringIO("maybe\nG\n"), out=said.append)
    assert op.ask("placed?", ("g", "q")) == "g"
    assert any("one of" in s for s in said)
    # End of input (operator gone, terminal closed): stop rather than guess.
    assert op.ask("outcome?", ("s", "f", "q")) == "q"


def test_placement_text_names_the_seeds_target():
    from cdp_eval.protocol import placement_text

    a, b = placement_text("reach_precise", 200000), placement_text("reach_precise", 200001)
    assert a.startswith("target_pos = [") and "fr3_link0" in a
    assert a == placement_text("reach_precise", 200000) and a != b
