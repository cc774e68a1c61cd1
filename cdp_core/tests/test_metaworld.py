"""Meta-World benchmark: expert demos -> DP and CDP -> seeded evaluation, in its own environment.

Meta-World needs MuJoCo 3.3.0 and franky-sim MuJoCo 4, so the benchmark runs in
``.venv-metaworld`` (``scripts/setup_metaworld.sh``, which ``scripts/test.sh`` runs); these
tests drive it through its command line, as a user does.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MW_CDP = REPO / ".venv-metaworld" / "bin" / "cdp"
needs_env = pytest.mark.skipif(not MW_CDP.exists(), reason="no .venv-metaworld: run scripts/setup_metaworld.sh")


def test_main_environment_says_where_metaworld_lives(tmp_path):
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "cdp_core.cli",
            "metaworld",
            "--tasks",
            "push-v3",
            "--work",
            str(tmp_path / "w"),
            "--out",
            str(tmp_path / "r"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    try:
        import metaworld  # noqa: F401
    except ImportError:
        assert r.returncode == 2 and "scripts/setup_metaworld.sh" in r.stderr
    else:  # pragma: no cover - an environment that has both
        pytest.skip("this environment has Meta-World")


@needs_env
def test_tiny_benchmark_records_trains_evaluates_and_resumes(tmp_path):
    args = [
        str(MW_CDP),
        "metaworld",
        "--tasks",
        "push-v3",
        "--demos",
        "2",
        "--seeds",
        "0",
        "--episodes",
        "2",
        "--steps",
        "2",
        "--workers",
        "1",
        "--work",
        str(tmp_path / "work"),
        "--out",
        str(tmp_path / "report"),
        "--set",
        "train.steps=5",
        "--set",
        "model.mlp_hidden=32",
        "--set",
        "model.mlp_blocks=1",
        "--set",
        "train.batch_size=16",
        "--set",
        "train.checkpoint_every=5",
    ]
    r = subprocess.run(args, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    results = json.loads((tmp_path / "report" / "results.json").read_text())
    assert set(results["cells"]) == {"push-v3/gamma=0/seed=0", "push-v3/gamma=0.1/seed=0"}
    cell = results["cells"]["push-v3/gamma=0.1/seed=0"]
    assert cell["episodes"] == 2 and len(cell["successes"]) == 2 and cell["dispersion"] > 0
    assert results["experts"]["push-v3"]["episodes"] == 2  # only successful expert episodes are kept
    meta = json.loads((tmp_path / "work" / "push-v3" / "demos" / "meta.json").read_text())
    assert meta["action_dim"] == 4 and meta["obs"] == {"state": 39} and meta["task"] == "metaworld/push-v3"
    report = (tmp_path / "report" / "report.md").read_text()
    assert "| push-v3 | CDP 0.1 |" in report and (tmp_path / "report" / "metaworld.png").stat().st_size > 5000
    # resumable: a second run finds every cell done and trains nothing
    ckpt = tmp_path / "work" / "push-v3" / "runs" / "gamma0_seed0" / "checkpoints" / "latest.pt"
    mtime = ckpt.stat().st_mtime
    r = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and ckpt.stat().st_mtime == mtime and "training" not in r.stdout
    # seeded: the same placements for every policy, and an unknown task is refused by name
    r = subprocess.run([*args[:3], "push-v9", *args[4:]], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "unknown Meta-World task 'push-v9'" in r.stderr
