"""cdp-preflight on this machine (no robot, camera, GPU or RT kernel) and against real protocol servers."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml
from preflight_test_env import NOBODY_IP, REPO, SIM_IP, STUB_IP

from cdp_preflight import compat
from cdp_preflight.preflight import (
    FAIL,
    PASS,
    WARN,
    PreflightConfig,
    check_calibration,
    check_cpu_governor,
    check_model,
    check_robot,
    check_rt_kernel,
    run_preflight,
)

SIM_CALIBRATION = REPO / "calibration" / "sim_eye_in_hand.yaml"


def _cli(*args: str, timeout: float = 120.0) -> tuple[int, dict]:
    proc = subprocess.run(
        [sys.executable, "-m", "cdp_preflight", "--json", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"no JSON report (exit {proc.returncode}): {proc.stdout[-500:]} {proc.stderr[-1500:]}")
    return proc.returncode, report


def _by_name(report: dict) -> dict[str, dict]:
    return {c["name"]: c for c in report["checks"]}


def test_sim_mode_passes_here(fr3_model):
    rc, report = _cli("--sim", "--model", str(fr3_model))
    checks = _by_name(report)
    assert rc == 0 and report["ok"], report
    assert set(checks) == {"ros", "libfranka", "franky_sim", "osmesa", "model"}
    assert all(c["status"] == PASS for c in checks.values()), checks
    assert "FR3 robot system >= 5.9.0 (robot/gripper server 10/3)" in checks["libfranka"]["detail"]
    assert "fits task reach_precise" in checks["model"]["detail"]


def test_robot_mode_fails_here_naming_robot_camera_gpu(fr3_model, tmp_path):
    cal = _fresh_calibration(tmp_path)
    rc, report = _cli("--robot-ip", NOBODY_IP, "--model", str(fr3_model), "--calibration", str(cal))
    checks = _by_name(report)
    assert rc == 1 and not report["ok"]
    assert checks["robot"]["status"] == FAIL and f"no robot at {NOBODY_IP}" in checks["robot"]["detail"]
    assert "Activate FCI" in checks["robot"]["fix"]
    assert checks["camera"]["status"] == FAIL and "no RealSense camera found" in checks["camera"]["detail"]
    assert "USB 3" in checks["camera"]["fix"]
    if not Path("/dev/nvidia0").exists():  # a GPU test machine has one
        assert checks["gpu"]["status"] == FAIL
        assert "no NVIDIA GPU device" in checks["gpu"]["detail"]
        assert "onnxruntime-gpu" in checks["gpu"]["fix"] or "NVIDIA driver" in checks["gpu"]["fix"]
    # What the host does have is still reported as such: the failures are the named ones, not everything.
    assert checks["model"]["status"] == PASS and checks["calibration"]["status"] == PASS
    assert checks["ros"]["status"] == PASS and checks["libfranka"]["status"] == PASS
    for c in checks.values():
        if c["status"] == FAIL:
            assert c["fix"], f"{c['name']} fails without a fix"


def test_robot_mode_table_output_names_failures(fr3_model):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "cdp_preflight",
            "--robot-ip",
            NOBODY_IP,
            "--model",
            str(fr3_model),
            "--skip",
            "calibration",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert proc.returncode == 1
    assert "NOT ready" in proc.stdout and "robot" in proc.stdout and "camera" in proc.stdout
    assert "SKIP" in proc.stdout


def test_missing_gpu_and_camera_can_be_downgraded(fr3_model):
    cfg = PreflightConfig(
        robot_ip=NOBODY_IP,
        model=str(fr3_model),
        require_gpu=False,
        require_camera=False,
        skip=("robot", "calibration", "rt_kernel", "rt_scheduling", "cpu_governor"),
    )
    results = {r.name: r for r in run_preflight(cfg)}
    assert results["camera"].status == WARN and "--no-camera" in results["camera"].detail
    if not Path("/dev/nvidia0").exists():
        assert results["gpu"].status == WARN


def test_bad_arguments_exit_2():
    proc = subprocess.run(
        [sys.executable, "-m", "cdp_preflight", "--skip", "warp_drive"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert proc.returncode == 2 and "warp_drive" in proc.stderr


# --- model ---------------------------------------------------------------------------------------


def test_corrupt_model_is_reported(fr3_model, tmp_path):
    bad = tmp_path / "reach.onnx"
    bad.write_bytes(fr3_model.read_bytes()[: fr3_model.stat().st_size // 3])  # a truncated copy
    shutil.copy(fr3_model.with_suffix(".json"), bad.with_suffix(".json"))
    res = check_model(str(bad), "reach_precise")
    assert res.status == FAIL and "corrupt" in res.detail and "cdp export" in res.fix
    rc, report = _cli("--sim", "--model", str(bad))
    assert rc == 1 and _by_name(report)["model"]["status"] == FAIL


def test_model_sidecar_from_another_export_is_reported(fr3_model, tmp_path):
    m = tmp_path / "reach.onnx"
    shutil.copy(fr3_model, m)
    side = json.loads(fr3_model.with_suffix(".json").read_text())
    side["steps"] = side["steps"] + 1
    m.with_suffix(".json").write_text(json.dumps(side))
    res = check_model(str(m), "reach_precise")
    assert res.status == FAIL and "sidecar" in res.detail


def test_model_for_another_task_is_reported(fr3_model):
    res = check_model(str(fr3_model), "peg_insert")
    assert res.status == FAIL and "peg_insert" in res.detail


def test_missing_model_points_to_the_recipe(tmp_path):
    res = check_model(str(tmp_path / "none.onnx"), "reach_precise")
    assert res.status == FAIL and "not found" in res.detail and "make_model.sh" in res.fix


# --- calibration ---------------------------------------------------------------------------------


def _fresh_calibration(tmp_path: Path, age: dt.timedelta = dt.timedelta(0)) -> Path:
    d = yaml.safe_load(SIM_CALIBRATION.read_text())
    d["date"] = (dt.datetime.now(dt.timezone.utc) - age).isoformat()
    out = tmp_path / f"cal_{int(age.total_seconds())}.yaml"
    out.write_text(yaml.safe_dump(d, sort_keys=False))
    return out


def test_stale_calibration_is_reported(tmp_path):
    old = _fresh_calibration(tmp_path, dt.timedelta(days=3))
    res = check_calibration(str(old), max_age_h=24.0)
    assert res.status == FAIL and "stale" in res.detail and "72.0 h old" in res.detail
    assert "re-run the hand-eye calibration" in res.fix
    assert check_calibration(str(old), max_age_h=100.0).status == PASS


def test_fresh_and_broken_calibrations(tmp_path):
    assert check_calibration(str(_fresh_calibration(tmp_path)), max_age_h=1.0).status == PASS
    broken = tmp_path / "broken.yaml"
    d = yaml.safe_load(SIM_CALIBRATION.read_text())
    d["hand_eye"]["transform"]["quat_xyzw"] = [0.0, 0.0, 0.0, 2.0]
    broken.write_text(yaml.safe_dump(d))
    res = check_calibration(str(broken), max_age_h=1.0)
    assert res.status == FAIL and "unit quaternion" in res.detail
    res = check_calibration(str(tmp_path / "nope.yaml"), max_age_h=1.0)
    assert res.status == FAIL and "does not exist" in res.detail and "cdp-calibrate" in res.fix


# --- host ---------------------------------------------------------------------------------------


def test_cpu_governor_reads_sysfs(tmp_path):
    def tree(govs: list[str]) -> Path:
        root = tmp_path / "-".join(govs)
        for i, g in enumerate(govs):
            f = root / f"cpu{i}" / "cpufreq" / "scaling_governor"
            f.parent.mkdir(parents=True)
            f.write_text(g + "\n")
        return root

    assert check_cpu_governor(str(tree(["performance", "performance"]))).status == PASS
    res = check_cpu_governor(str(tree(["performance", "powersave"])))
    assert res.status == FAIL and "powersave: 1 CPU" in res.detail and "cpupower" in res.fix
    assert check_cpu_governor(str(tmp_path / "empty")).status == WARN


def test_rt_kernel_flag(tmp_path):
    flag = tmp_path / "realtime"
    flag.write_text("1\n")
    assert check_rt_kernel(str(flag)).status == PASS
    res = check_rt_kernel(str(tmp_path / "missing"))
    expect = PASS if "PREEMPT_RT" in os.uname().version else FAIL
    assert res.status == expect
    if expect == FAIL:
        assert "realtime-kernel" in res.fix


# --- robot: franky-sim (the libfranka protocol) and a server that refuses the library ------------


@pytest.fixture
def franky_sim_server():
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "franky-sim"), "-s", "mujoco", "--hostname", SIM_IP],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        for line in proc.stdout:
            if "Connect to the server" in line:
                break
            if time.monotonic() > deadline:
                pytest.fail("franky-sim did not start")
        else:
            pytest.fail(f"franky-sim exited ({proc.poll()})")
        yield SIM_IP
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.mark.parametrize("backend", ["franky", "pylibfranka"])
def test_robot_check_connects_to_franky_sim(franky_sim_server, backend):
    res = check_robot(franky_sim_server, backend, timeout_s=3.0)
    assert res.status == PASS, res
    assert "robot server 10" in res.detail and "robot mode Idle" in res.detail


@pytest.fixture
def refusing_server():
    """Answers libfranka's Connect with 'incompatible library version', as an arm on robot server 9 does."""
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((STUB_IP, 1337))
    srv.listen(4)
    srv.settimeout(0.5)
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(10)
                data = b""
                try:
                    while len(data) < 16:  # header (command, id, size: 3 x uint32) + Connect (version, udp port)
                        chunk = conn.recv(16 - len(data))
                        if not chunk:
                            break
                        data += chunk
                except OSError:
                    continue
                if len(data) == 16:
                    command, command_id, _ = struct.unpack("<III", data[:12])
                    # status kIncompatibleLibraryVersion (uint8), server version 9 (uint16), padding
                    conn.sendall(struct.pack("<III", command, command_id, 20) + struct.pack("<BH5x", 1, 9))

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield STUB_IP
    stop.set()
    t.join(2)
    srv.close()


def test_incompatible_robot_system_version_is_named(refusing_server):
    res = check_robot(refusing_server, "franky", timeout_s=3.0)
    assert res.status == FAIL and "server version: 9" in res.detail
    assert "libfranka >= 0.15.0 < 0.18.0" in res.fix and "5.7.2" in res.fix


def test_nothing_listening_is_reported_fast():
    t0 = time.monotonic()
    res = check_robot(NOBODY_IP, "franky", timeout_s=3.0)
    assert res.status == FAIL and "nothing listens" in res.detail and "Activate FCI" in res.fix
    assert time.monotonic() - t0 < 30.0  # generous: only guards against waiting for libfranka's own timeouts


# --- compatibility table ---------------------------------------------------------------------------


def test_compat_table():
    assert compat.row_for_libfranka("0.21.3").robot_server == 10
    assert compat.row_for_libfranka("0.16.1").robot_server == 9
    assert compat.row_for_libfranka("0.9.2").robot == "FER"
    assert compat.row_for_libfranka("0.1.0") is None
    assert "libfranka >= 0.10.0 < 0.13.3" in compat.advice_for_server(6)
    assert "not in the compatibility table" in compat.advice_for_server(42)


def test_docs_carry_the_same_table():
    doc = (REPO / "docs" / "robot_pc.md").read_text()
    assert compat.markdown_table() in doc
    for name, version in compat.PINNED_LIBFRANKA.items():
        assert version in doc, name
