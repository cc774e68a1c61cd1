"""System test: the README's main command (quick variant) end to end, through the real CLI."""

import json
import os
import subprocess
import sys
from pathlib import Path

CDP = [sys.executable, "-m", "cdp_core.cli"]


def _run(args, cwd):
    env = {**os.environ, "PYTHONPATH": ""}
    return subprocess.run(CDP + args, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)


def test_demo_quick_writes_report_models_and_plot(tmp_path):
    out = tmp_path / "demo"
    r = _run(["demo", "--out", str(out), "--quick"], tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    report = (out / "report.md").read_text()
    assert "ONNX vs PyTorch" in report and (out / "demo.png").stat().st_size > 10_000
    results = json.loads((out / "results.json").read_text())
    assert results["dp"]["onnx_parity_max_abs"] <= 1e-4 and results["cdp"]["onnx_parity_max_abs"] <= 1e-4
    r = _run(["inspect", str(out / "models" / "cdp.onnx")], tmp_path)
    meta = json.loads(r.stdout)
    assert meta["gamma"] == 0.1 and meta["sampler"] == "ddim" and meta["providers"]


def test_cli_reports_bad_input_clearly(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("contraction:\n  gama: 0.1\n")
    r = _run(["train", "--config", str(cfg), "--out", str(tmp_path / "run")], tmp_path)
    assert r.returncode == 2 and "unknown config key(s) ['gama']" in r.stderr
    r = _run(["train", "--set", f"data.path={tmp_path / 'nothing'}", "--out", str(tmp_path / "run")], tmp_path)
    assert r.returncode == 2 and "dataset not found" in r.stderr
    r = _run(["export", "--checkpoint", str(cfg), "--out", str(tmp_path / "m.onnx")], tmp_path)
    assert r.returncode == 2 and "corrupt or not a CDP checkpoint" in r.stderr


def test_bundled_default_model_loads_with_its_contract():
    from cdp_core.runtime import OnnxPolicy

    model_path = Path(__file__).resolve().parents[1] / "models" / "default" / "toy_cdp.onnx"
    model = OnnxPolicy(model_path, expect={"obs_keys": ["agent_pos", "goal"], "action_dim": 2})
    import numpy as np

    out = model(np.zeros((3, 2, 4), np.float32))
    assert out.shape == (3, 8, 2) and np.isfinite(out).all()


def test_sim_stack_demo_runs_an_episode_and_reports(tmp_path):
    """The README's main command (one episode): the whole ROS graph on franky-sim, then a summary."""
    root = Path(__file__).resolve().parents[1]
    host = f"127.0.5.{os.getpid() % 200 + 20}"
    r = subprocess.run(
        [
            str(Path(sys.executable).parent / "cdp-sim-demo"),
            "--episodes",
            "1",
            "--out",
            str(tmp_path),
            f"robot_ip:={host}",
        ],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:] + (tmp_path / "graph.log").read_text()[-4000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["episodes"] == 1 and summary["rows"][0]["chunks"] > 0
    assert "reach_precise: " in r.stdout and "succeeded" in r.stdout
