"""The whole protocol in simulation (node graph, franky-sim, policy restarts), killed and resumed.

A 2-policy x 2-trial protocol: the runner is SIGKILLed once the first trial is on disk; its
nodes die with it; ``--resume`` then runs exactly the trials not yet recorded, on their seeds.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from cdp_eval.protocol import placement_text

pytest.importorskip("rclpy")

ROOT = Path(__file__).resolve().parents[4]
MODEL = ROOT / "models" / "reach_precise" / "cdp_reach.onnx"


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead too
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def test_killed_protocol_resumes_without_repeating_or_losing_trials(tmp_path):
    # Two paths to the same weights: switching policies restarts the policy node like for two models.
    copy = tmp_path / "copy.onnx"
    shutil.copy(MODEL, copy)
    shutil.copy(MODEL.with_suffix(".json"), copy.with_suffix(".json"))
    host = f"127.0.8.{random.Random(os.getpid()).randint(100, 199)}"
    protocol = tmp_path / "protocol.yaml"
    protocol.write_text(
        yaml.safe_dump(
            {
                "name": "resume",
                "task": "reach_precise",
                "policies": {"A": str(MODEL), "B": str(copy)},
                "trials": 2,
                "interleaving": "ABAB",
                "seeds": [100005, 100003],
                "time_limit_s": 3.0,
                "output": str(tmp_path / "out"),
                "launch": {"robot_ip": host},
            }
        )
    )
    results = tmp_path / "out" / "results.jsonl"
    cmd = [sys.executable, "-m", "cdp_eval.run", str(protocol), "--no-report"]
    first = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        t_end = time.monotonic() + 240
        while not (results.is_file() and results.read_text().count("\n") >= 1):
            assert first.poll() is None, f"runner exited early:\n{first.stdout.read()}"
            assert time.monotonic() < t_end, "no trial recorded within 240 s"
            time.sleep(0.2)
    finally:
        first.send_signal(signal.SIGKILL)
        out_first = first.communicate()[0]
    kept = results.read_text().splitlines()
    assert 1 <= len(kept) < 4, out_first
    # The nodes it started die with it (no orphaned simulator on the address, no unsupervised policy).
    pids = [int(p) for p in re.findall(r"started \w+ \(pid (\d+)\)", (tmp_path / "out" / "graph.log").read_text())]
    assert len(pids) >= 4
    t_end = time.monotonic() + 20
    while any(alive(p) for p in pids) and time.monotonic() < t_end:
        time.sleep(0.2)
    assert not any(alive(p) for p in pids), [p for p in pids if alive(p)]

    # Without --resume the runner refuses to touch a folder with results.
    refused = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and "--resume" in refused.stderr

    second = subprocess.run([*cmd, "--resume"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stdout[-4000:] + second.stderr[-4000:]
    assert f"{len(kept)} already recorded, {4 - len(kept)} to run" in second.stdout
    lines = results.read_text().splitlines()
    assert lines[: len(kept)] == kept  # recorded trials untouched
    rows = [json.loads(x) for x in lines]
    assert sorted((r["trial"], r["policy"]) for r in rows) == [(0, "A"), (0, "B"), (1, "A"), (1, "B")]
    assert all(r["seed"] == [100005, 100003][r["trial"]] for r in rows)
    assert all(r["params"] for r in rows)  # the simulator drew each trial's placement from its seed
    by = {(r["trial"], r["policy"]): r for r in rows}
    assert by[(0, "A")]["params"] == by[(0, "B")]["params"] != by[(1, "A")]["params"]
    # What the robot operator is told to place is what the simulator placed for that seed.
    x = by[(1, "B")]["params"]["target_pos"][0]
    assert placement_text("reach_precise", 100003).startswith(f"target_pos = [{x:.4f}, ")
    assert {r["model_sha256"] for r in rows} == {by[(0, "A")]["model_sha256"]}
    assert {r["model_path"] for r in rows} == {str(MODEL), str(copy)}
    for r in rows:
        assert r["outcome"] in ("success", "failure") and r["labelled_by"] == "simulation"
        assert r["final_error_mm"] is not None and r["chunks"] > 0 and r["policy_latency_p50_ms"] > 0
        assert r["software"]["python"] and r["protocol_hash"] == rows[0]["protocol_hash"]

    # Everything recorded: a further resume runs nothing and starts nothing.
    third = subprocess.run([*cmd, "--resume"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert third.returncode == 0 and "4 already recorded, 0 to run" in third.stdout
