"""pylibfranka backend: the official bindings, their 1 kHz loop in a dedicated process.

The parent (the rclpy process) and the control child share two named, seqlocked blocks
(:mod:`.shared_memory`): the parent writes ``COMMAND`` (latest joint target, request counters),
the child writes ``STATE`` (robot state, loop counters, acknowledgements); error text travels in
an :class:`~.shared_memory.ErrorText`. The 1 kHz motion itself is :mod:`.control_loop` (one
continuous Ruckig trajectory at ``relative_dynamics_factor`` of the FR3 table), which this module
only wires to pylibfranka's ``start_joint_position_control(ControllerMode.JointImpedance)``.

A libfranka exception, a robot error or the child's death is reported as the state's error and
the backend refuses targets until ``recover()``; targets sent before the recovery are dropped,
so recovering never resumes motion. The gripper has its own small process
(:mod:`.pylibfranka_gripper`).
"""

from __future__ import annotations

import dataclasses
import math
import multiprocessing as mp
import queue
import time
from typing import Any

import numpy as np

from .backend import FR3, ArmState, Backend, BackendError, DriverConfig, clip_velocity, tcp_pose, validate_joint_target
from .child_process import ExitFlag, describe
from .control_loop import HOLD_BEFORE_FINISH_S, JointMotionGenerator, JointTarget, run_motion, settle
from .pylibfranka_gripper import gripper_main
from .shared_memory import COMMAND, STATE, ErrorText, SeqlockBlock

__all__ = ["HOLD_BEFORE_FINISH_S", "PylibfrankaBackend", "ROBOT_MODES"]

#: libfranka RobotMode values (franka/robot_state.h).
ROBOT_MODES = {
    0: "Other",
    1: "Idle",
    2: "Move",
    3: "Guiding",
    4: "Reflex",
    5: "UserStopped",
    6: "AutomaticErrorRecovery",
}


# ----------------------------------------------------------------------------------------
# Child: the control process
# ----------------------------------------------------------------------------------------


def _target_of(c: np.void) -> JointTarget:
    return JointTarget(float(c["target_id"]), np.array(c["q"]), np.array(c["dq"]) if c["has_dq"] else None)


def _control_main(cfg: dict, cmd_raw: Any, state_raw: Any, err_raw: Any) -> None:
    """Entry point of the control process (spawn context: nothing inherited but the arguments)."""
    should_exit = ExitFlag()
    import pylibfranka as plf

    # A parent killed mid-write must not stall the 1 kHz loop for the reader's 0.5 s deadline:
    # the loop keeps the last whole command and winds down on the orphan check.
    cmd = SeqlockBlock(cmd_raw, COMMAND, writer_alive=should_exit.parent_alive)
    st = SeqlockBlock(state_raw, STATE)
    err = ErrorText(err_raw)
    counters = {"cycles": 0.0, "motions": 0.0}
    gen = JointMotionGenerator(
        FR3.generator_limits(cfg["relative_dynamics_factor"]), use_velocity=bool(cfg["use_command_velocity"])
    )

    def publish(s: Any, in_control: bool, **extra: Any) -> None:
        errs = str(s.current_errors)
        if errs != "[]" and not st.current("error"):
            err.write(f"robot errors: {errs}")
            extra["error"] = 1.0
        st.write(
            time=s.time.to_sec(),
            q=s.q,
            dq=s.dq,
            tau=s.tau_J,
            O_T_EE=s.O_T_EE,
            F_T_EE=s.F_T_EE,
            mode=float(int(s.robot_mode.value)),
            in_control=1.0 if in_control else 0.0,
            cycles=counters["cycles"],
            motions=counters["motions"],
            late=float(gen.late_cycles),
            **extra,
        )

    def fail(text: str) -> None:
        err.write(text)
        st.write(error=1.0, in_control=0.0)

    rt = plf.RealtimeConfig.kEnforce if cfg["realtime"] == "enforce" else plf.RealtimeConfig.kIgnore
    try:
        robot = plf.Robot(cfg["robot_ip"], rt)
        tt, ft = cfg["collision_torque_threshold"], cfg["collision_force_threshold"]
        robot.set_collision_behavior([tt] * 7, [tt] * 7, [ft] * 6, [ft] * 6)
        publish(robot.read_once(), False, connected=1.0)
    except Exception as exc:
        fail(f"cannot connect to the arm at {cfg['robot_ip']}: {describe(exc)}")
        return

    applied_id = float(cmd.read()["target_id"])  # targets written before the loop started are not motion requests
    stop_ack = recover_ack = 0.0
    # Where in the motion sequence a libfranka exception came: the error text names it.
    where = {"in_motion": False, "n": 0, "ended": math.nan}

    def context() -> str:
        since = (time.monotonic() - where["ended"]) * 1e3
        phase = (
            f"{where['n']} cycles into motion {int(counters['motions'])}" if where["in_motion"] else "between motions"
        )
        return f"{phase}; {since:.0f} ms after the previous motion ended" if math.isfinite(since) else phase

    def motion(first: np.void) -> None:
        nonlocal applied_id, stop_ack
        where.update(in_motion=True, n=0)
        ctrl = robot.start_joint_position_control(plf.ControllerMode.JointImpedance)
        counters["motions"] += 1
        last = {"c": first, "n": 0}

        def poll() -> tuple[JointTarget, bool]:
            c = last["c"] = cmd.read()
            last["n"] += 1
            where["n"] = last["n"]
            stop = bool(c["shutdown"]) or c["stop"] != stop_ack or (last["n"] % 100 == 0 and should_exit())
            return _target_of(c), stop

        def command(q: np.ndarray, finished: bool) -> Any:
            counters["cycles"] += 1
            jp = plf.JointPositions(list(q))
            if finished:
                jp.motion_finished = True
            return jp

        stopped = run_motion(ctrl, gen, _target_of(first), poll, command, lambda s: publish(s, True))
        applied_id = gen.target_id if gen.target_id is not None else applied_id
        if stopped:
            stop_ack = float(last["c"]["stop"])
            # A stop drops every target sent before it ends: one that came while braking (a hold
            # the parent sent at a mid-brake position, a command racing the e-stop) must not start
            # a new motion once the arm rests. Only a target newer than the stop moves it again.
            applied_id = float(last["c"]["target_id"])
        where.update(in_motion=False, ended=time.monotonic())
        settle(robot.read_once, lambda s: publish(s, False, stop_ack=stop_ack))

    while True:
        c = cmd.read()
        if c["shutdown"] or should_exit():
            break
        try:
            if c["recover"] != recover_ack:
                recover_ack = float(c["recover"])
                ok = False
                try:
                    robot.automatic_error_recovery()
                    ok = str(robot.read_once().current_errors) == "[]"
                except Exception as exc:
                    err.write(f"recovery failed: {describe(exc)}")
                if ok:
                    err.write("")
                # Whatever was streamed before the recovery is stale: never resume it.
                applied_id = float(cmd.read()["target_id"])
                st.write(error=0.0 if ok else 1.0, recover_ack=recover_ack, recover_ok=1.0 if ok else 0.0)
                continue
            if c["stop"] != stop_ack:
                stop_ack = float(c["stop"])
                applied_id = float(c["target_id"])  # a stop drops the targets sent before it
                st.write(stop_ack=stop_ack)
            if not st.current("error") and c["target_id"] != applied_id:
                motion(c)
                continue
            publish(robot.read_once(), False)  # idle: keep the state fresh (blocks ~1 ms)
            time.sleep(0.002)
        except Exception as exc:  # libfranka ControlException / NetworkException / ...
            fail(f"{describe(exc)} ({context()})")
            where["in_motion"] = False
            time.sleep(0.01)
            if "NetworkException" in type(exc).__name__:
                break  # the connection is gone; the parent reports it, nothing left to do here


# ----------------------------------------------------------------------------------------
# Parent
# ----------------------------------------------------------------------------------------


class PylibfrankaBackend(Backend):
    """Same API as FrankyBackend; the arm is driven by a child process (joint targets only)."""

    CONNECT_TIMEOUT_S = 30.0

    def __init__(self, config: DriverConfig):
        super().__init__(config)
        self._ctx = mp.get_context("spawn")
        self._proc = None
        self._gproc = None
        self._gripper_status = "disabled" if not config.gripper_enabled else "not connected"

    def connect(self) -> None:
        ctx = self._ctx
        self._cmd = SeqlockBlock(COMMAND.allocate(ctx), COMMAND)
        self._state = SeqlockBlock(STATE.allocate(ctx), STATE, writer_alive=self._control_alive)
        self._err = ErrorText(ErrorText.allocate(ctx))
        cfg = dataclasses.asdict(self.config)
        self._proc = ctx.Process(
            target=_control_main,
            args=(cfg, self._cmd.raw, self._state.raw, self._err.raw),
            name="franka-control",
            daemon=True,
        )
        self._proc.start()
        deadline = time.monotonic() + self.CONNECT_TIMEOUT_S
        while True:
            s = self._state.read()
            if s["connected"]:
                break
            if s["error"] or not self._proc.is_alive():
                msg = self._err.read() or f"control process exited with code {self._proc.exitcode}"
                self.close()
                raise BackendError(msg)
            if time.monotonic() > deadline:
                self.close()
                raise BackendError(f"no connection to {self.config.robot_ip} within {self.CONNECT_TIMEOUT_S} s")
            time.sleep(0.01)
        if self.config.gripper_enabled:
            self._greq, self._gresp = ctx.Queue(), ctx.Queue()
            self._gwidth = ctx.Value("d", math.nan, lock=False)
            self._gproc = ctx.Process(
                target=gripper_main,
                args=(self.config.robot_ip, self._greq, self._gresp, self._gwidth),
                name="franka-gripper",
                daemon=True,
            )
            self._gproc.start()
            try:
                _, ok, msg = self._gresp.get(timeout=self.CONNECT_TIMEOUT_S)
            except queue.Empty:
                ok, msg = False, "no answer from the gripper process"
            self._gripper_status = "ok" if ok else f"gripper unavailable at {self.config.robot_ip}: {msg}"
            if not ok:
                self._gproc.join(timeout=2.0)
                self._gproc = None

    # --- state --------------------------------------------------------------------------
    def _control_alive(self) -> bool:
        return self._proc is not None and self._proc.is_alive()

    def _error_text(self, s: np.void) -> str:
        if self._proc is None:
            return "not connected"
        if not self._proc.is_alive():
            base = self._err.read() if s["error"] else ""
            died = f"control process died (exit code {self._proc.exitcode})"
            return f"{died}; {base}" if base else died
        return (self._err.read() or "error") if s["error"] else ""

    def read_state(self) -> ArmState:
        if self._proc is None:
            raise BackendError("backend not connected (call connect() first)")
        s = self._state.read()
        error = self._error_text(s)
        q = np.array(s["q"])
        f_t_ee = np.array(s["F_T_EE"]).reshape(4, 4, order="F")  # libfranka: column-major
        position, quat = tcp_pose(q, f_t_ee)
        return ArmState(
            time=float(s["time"]),
            q=q,
            dq=np.array(s["dq"]),
            tau=np.array(s["tau"]),
            position=position,
            quat_xyzw=quat,
            gripper_width=float(self._gwidth.value) if self._gproc is not None else math.nan,
            mode=ROBOT_MODES.get(int(s["mode"]), "Other") if self._proc.is_alive() else "Other",
            error=error,
            f_t_ee=np.array(f_t_ee),
        )

    @property
    def loop_stats(self) -> dict[str, float]:
        """Control-loop counters: cycles written, motions started, late cycles (> 1 ms apart)."""
        s = self._state.read()
        return {
            "cycles": float(s["cycles"]),
            "motions": float(s["motions"]),
            "late_cycles": float(s["late"]),
            "in_control": float(s["in_control"]),
        }

    @property
    def control_pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    # --- motion -------------------------------------------------------------------------
    def command_joint(self, q_target: np.ndarray, dq_target: np.ndarray | None = None) -> bool:
        q, dq = validate_joint_target(q_target, dq_target)
        dq = clip_velocity(dq, self.config.relative_dynamics_factor)
        if self._proc is None or self._error_text(self._state.read()):
            return False
        self._cmd.write(
            q=q,
            dq=dq if dq is not None else np.zeros(7),
            has_dq=0.0 if dq is None else 1.0,
            target_id=self._cmd.current("target_id") + 1.0,
        )
        return True

    def command_cartesian(self, position: np.ndarray, quat_xyzw: np.ndarray) -> bool:
        raise BackendError("the pylibfranka backend takes joint targets only (use backend 'franky' for Cartesian)")

    def _request(self, field: str, ack: str, timeout_s: float) -> np.void | None:
        """Count ``field`` up and wait until the child acknowledges it in ``ack``."""
        want = self._cmd.current(field) + 1.0
        self._cmd.write(**{field: want})
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self._proc is not None and self._proc.is_alive():
            s = self._state.read()
            if s[ack] == want:
                return s
            time.sleep(0.005)
        return None

    def stop(self) -> None:
        if self._proc is None or not self._proc.is_alive():
            return
        self._request("stop", "stop_ack", 3.0)

    def brake(self) -> None:
        if self._proc is None or not self._proc.is_alive():
            return
        self._cmd.write(stop=self._cmd.current("stop") + 1.0)

    def recover(self) -> bool:
        if self._proc is None or not self._proc.is_alive():
            return False  # a dead control process is not a reflex: restart the driver
        s = self._request("recover", "recover_ack", 10.0)
        return bool(s is not None and s["recover_ok"])

    # --- gripper ------------------------------------------------------------------------
    @property
    def gripper_status(self) -> str:
        if self._gproc is not None and not self._gproc.is_alive():
            return f"gripper process died (exit code {self._gproc.exitcode})"
        return self._gripper_status

    def _gripper(self, kind: str, args: tuple, timeout_s: float = 15.0) -> bool:
        if self._gproc is None or not self._gproc.is_alive():
            return False
        self._greq.put((kind, args))
        try:
            _, ok, _msg = self._gresp.get(timeout=timeout_s)
        except queue.Empty:
            return False
        return ok

    def gripper_move(self, width: float, speed: float) -> bool:
        return self._gripper("move", (float(width), float(speed)))

    def gripper_grasp(self, width: float, speed: float, force: float) -> bool:
        return self._gripper("grasp", (float(width), float(speed), float(force), 0.08, 0.08))

    # --- teardown -----------------------------------------------------------------------
    def close(self) -> None:
        if self._proc is not None:
            if self._proc.is_alive():
                self.stop()
                self._cmd.write(shutdown=1.0)
                self._proc.join(timeout=5.0)
                if self._proc.is_alive():
                    self._proc.terminate()
                    self._proc.join(timeout=2.0)
            self._proc = None
        if self._gproc is not None:
            self._greq.put(None)
            self._gproc.join(timeout=3.0)
            if self._gproc.is_alive():
                self._gproc.terminate()
                self._gproc.join(timeout=2.0)
            self._gproc = None
