"""pylibfranka backend: the official bindings, their 1 kHz loop in a dedicated process.

The parent (the rclpy process) and the control child share two blocks of doubles:

* command block, written by the parent only: the latest joint target (+ optional velocity),
  a target counter and request counters (stop, recover, shutdown);
* state block, written by the child only: q, dq, tau, O_T_EE, robot mode, loop counters, acks.

Each block is guarded by a seqlock (the writer makes the sequence odd, writes, makes it even;
a reader retries until it saw the same even sequence before and after copying), so the 1 kHz
loop never waits on a lock the parent holds. Error text travels in a separate char array.

The child runs ``start_joint_position_control(ControllerMode.JointImpedance)`` and every cycle
advances a Ruckig trajectory (1 ms step, FR3 velocity / acceleration / jerk limits scaled by
``relative_dynamics_factor``) from the last *commanded* state towards the latest target, so the
commanded positions are continuous to the third derivative whatever the parent streams. Once
the target is reached at rest and nothing new comes for ``HOLD_BEFORE_FINISH_S`` the motion is
finished (the arm holds itself); the next target starts a new one.

A libfranka exception, a robot error or the child's death is reported as the state's error and
the backend refuses targets until ``recover()``; targets sent before the recovery are dropped,
so recovering never resumes motion. The gripper has its own small process: its blocking
commands must not run in the control loop's process, and this (parent) process may already
hold franky, whose pybind types clash with pylibfranka's.
"""

from __future__ import annotations

import dataclasses
import math
import multiprocessing as mp
import os
import queue
import signal
import time
from typing import Any, Callable

import numpy as np

from .backend import (
    FR3,
    ArmState,
    Backend,
    BackendError,
    DriverConfig,
    clip_velocity,
    tcp_pose,
    validate_joint_target,
)

#: The robot is held by the running controller this long after reaching a target at rest,
#: so a target stream with short gaps does not start and stop motions all the time.
HOLD_BEFORE_FINISH_S = 0.5

# Command block layout (doubles)
C_SEQ, C_ID, C_HAS_DQ, C_Q, C_DQ = 0, 1, 2, 3, 10
C_STOP, C_RECOVER, C_SHUTDOWN = 17, 18, 19
C_SIZE = 20
# State block layout (doubles)
S_SEQ, S_TIME, S_Q, S_DQ, S_TAU, S_T = 0, 1, 2, 9, 16, 23
S_MODE, S_IN_CONTROL, S_CYCLES, S_CONNECTED, S_ERROR = 39, 40, 41, 42, 43
S_STOP_ACK, S_RECOVER_ACK, S_RECOVER_OK, S_MOTIONS, S_LATE, S_F_T_EE = 44, 45, 46, 47, 48, 49
S_SIZE = 65
ERROR_CHARS = 1024

#: libfranka RobotMode values (franka/robot_state.h).
ROBOT_MODES = {0: "Other", 1: "Idle", 2: "Move", 3: "Guiding", 4: "Reflex", 5: "UserStopped", 6: "AutomaticErrorRecovery"}


class SeqlockBlock:
    """A block of doubles with one writer and any number of readers (see module docstring)."""

    def __init__(self, raw: Any, writer_alive: Callable[[], bool] | None = None):
        self.raw = raw
        self.a = np.frombuffer(raw, dtype=np.float64)
        self._writer_alive = writer_alive
        self._last: np.ndarray | None = None

    def write(self, updates: dict[int, Any]) -> None:
        a = self.a
        a[0] += 1.0
        for i, v in updates.items():
            if np.ndim(v):
                a[i:i + len(v)] = v
            else:
                a[i] = v
        a[0] += 1.0

    def read(self) -> np.ndarray:
        a = self.a
        # A deadline, not a retry count: on a loaded machine the writer can be descheduled
        # mid-update for milliseconds; only a writer that stays stuck is an error.
        deadline = time.monotonic() + 0.5
        spins = 0
        while True:
            s1 = a[0]
            if s1 % 2.0 == 0.0:
                out = a.copy()
                if a[0] == s1:
                    self._last = out
                    return out
            spins += 1
            # A writer killed mid-update leaves the sequence odd forever. Its last consistent
            # snapshot is what the reader gets; the caller learns from the dead process that
            # the data is final (the pylibfranka backend then reports "control process died").
            if spins % 64 == 0 and self._writer_alive is not None and not self._writer_alive():
                return (self._last if self._last is not None else a).copy()
            if time.monotonic() > deadline:
                raise BackendError("shared state never became consistent (writer stuck mid-update for 0.5 s)")
            time.sleep(0)  # the writer is mid-update (a few microseconds): yield and retry


def _write_error(err_raw: Any, text: str) -> None:
    data = text.encode("utf-8", "replace")[:ERROR_CHARS - 1]
    err_raw[:len(data)] = data
    err_raw[len(data)] = 0


def _read_error(err_raw: Any) -> str:
    return bytes(err_raw[:]).split(b"\0", 1)[0].decode("utf-8", "replace")


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".strip()


# ----------------------------------------------------------------------------------------
# Child: the 1 kHz loop
# ----------------------------------------------------------------------------------------

class _Exit:
    """Why the control process should wind down: SIGTERM, or the parent died (we were orphaned)."""

    def __init__(self) -> None:
        self.term = False
        self.parent = os.getppid()
        # Ctrl-C reaches the whole process group: the parent decides when the arm stops, not the key.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, lambda *_: setattr(self, "term", True))

    def __call__(self) -> bool:
        return self.term or os.getppid() != self.parent


def _control_main(cfg: dict, cmd_raw: Any, state_raw: Any, err_raw: Any) -> None:
    """Entry point of the control process (spawn context: nothing inherited but the arguments)."""
    should_exit = _Exit()
    import pylibfranka as plf
    import ruckig

    # A parent killed mid-write must not stall the 1 kHz loop for the reader's 0.5 s deadline:
    # the loop keeps the last whole command and winds down on the orphan check.
    cmd = SeqlockBlock(cmd_raw, writer_alive=lambda: os.getppid() == should_exit.parent)
    st = SeqlockBlock(state_raw)
    counters = {"cycles": 0.0, "motions": 0.0, "late": 0.0}
    robot_errors_text = ""

    def publish(s, in_control: bool, extra: dict[int, Any] | None = None) -> None:
        nonlocal robot_errors_text
        errs = str(s.current_errors)
        if errs != "[]" and not st.a[S_ERROR]:
            robot_errors_text = f"robot errors: {errs}"
            _write_error(err_raw, robot_errors_text)
            extra = {**(extra or {}), S_ERROR: 1.0}
        upd = {S_TIME: s.time.to_sec(), S_Q: s.q, S_DQ: s.dq, S_TAU: s.tau_J, S_T: s.O_T_EE, S_F_T_EE: s.F_T_EE,
               S_MODE: float(int(s.robot_mode.value)), S_IN_CONTROL: 1.0 if in_control else 0.0,
               S_CYCLES: counters["cycles"], S_MOTIONS: counters["motions"], S_LATE: counters["late"]}
        if extra:
            upd.update(extra)
        st.write(upd)

    def fail(text: str) -> None:
        _write_error(err_raw, text)
        st.write({S_ERROR: 1.0, S_IN_CONTROL: 0.0})

    rt = plf.RealtimeConfig.kEnforce if cfg["realtime"] == "enforce" else plf.RealtimeConfig.kIgnore
    try:
        robot = plf.Robot(cfg["robot_ip"], rt)
        tt, ft = cfg["collision_torque_threshold"], cfg["collision_force_threshold"]
        robot.set_collision_behavior([tt] * 7, [tt] * 7, [ft] * 6, [ft] * 6)
        publish(robot.read_once(), False, {S_CONNECTED: 1.0})
    except Exception as exc:
        fail(f"cannot connect to the arm at {cfg['robot_ip']}: {_describe(exc)}")
        return

    rdf = cfg["relative_dynamics_factor"]
    vmax, amax, jmax = FR3.generator_limits(rdf)
    use_velocity = bool(cfg["use_command_velocity"])
    applied_id = cmd.read()[C_ID]  # targets written before the loop started are not motion requests
    stop_ack = recover_ack = 0.0

    def run_motion(c: np.ndarray) -> None:
        """One libfranka motion: from the current commanded state to rest at the latest target."""
        nonlocal applied_id, stop_ack
        otg = ruckig.Ruckig(7, 0.001)
        inp, out = ruckig.InputParameter(7), ruckig.OutputParameter(7)
        inp.max_velocity, inp.max_acceleration, inp.max_jerk = list(vmax), list(amax), list(jmax)
        ctrl = robot.start_joint_position_control(plf.ControllerMode.JointImpedance)
        counters["motions"] += 1
        s, _ = ctrl.readOnce()
        inp.current_position = list(s.q_d)
        inp.current_velocity = [0.0] * 7
        inp.current_acceleration = [0.0] * 7

        def set_target(c: np.ndarray) -> None:
            inp.control_interface = ruckig.ControlInterface.Position
            inp.target_position = list(c[C_Q:C_Q + 7])
            dq = np.array(c[C_DQ:C_DQ + 7]) if (use_velocity and c[C_HAS_DQ]) else np.zeros(7)
            dq[np.abs(dq) < 1e-6] = 0.0  # denormal-small velocities trip Ruckig's step 2 at the target
            inp.target_velocity = list(np.clip(dq, -vmax, vmax))
            inp.target_acceleration = [0.0] * 7

        set_target(c)
        applied_id = c[C_ID]
        stopping = False
        rest_since = None
        period = 0.001
        n = 0
        while True:
            c = cmd.read()
            n += 1
            if c[C_SHUTDOWN] or c[C_STOP] != stop_ack or (n % 100 == 0 and should_exit()):
                if not stopping:  # brake to rest without turning back (velocity interface)
                    stopping = True
                    inp.control_interface = ruckig.ControlInterface.Velocity
                    inp.target_velocity = [0.0] * 7
                    inp.target_acceleration = [0.0] * 7
            elif c[C_ID] != applied_id and not stopping:
                applied_id = c[C_ID]
                set_target(c)
                rest_since = None
            # Advance the trajectory by the time the robot actually advanced (a late cycle
            # must not slow the motion down, it is the robot's clock that counts).
            steps = max(1, min(int(round(period / 0.001)), 20))
            if steps > 1:
                counters["late"] += 1
            res = None
            for _ in range(steps):
                try:
                    res = otg.update(inp, out)
                except Exception:  # noqa: BLE001  (RuckigError is not a RuntimeError in every build)
                    # A numerical corner case inside Ruckig (seen: "error in step 2" at rest on the
                    # target, and with the current acceleration exactly at its limit): brake on the
                    # velocity interface instead of ending control.
                    inp.control_interface = ruckig.ControlInterface.Velocity
                    inp.target_velocity = [0.0] * 7
                    inp.target_acceleration = [0.0] * 7
                    stopping = True
                    res = otg.update(inp, out)
                out.pass_to_input(inp)
                # Ruckig's own output sits exactly on the acceleration limit while it saturates; fed
                # back unchanged, that boundary state trips its step 2 (seen in CI). A hair inside.
                inp.current_acceleration = list(np.clip(inp.current_acceleration, -amax * 0.9999, amax * 0.9999))
            if res is not None and int(res) < 0:  # Ruckig refused the input: hold where we are
                inp.control_interface = ruckig.ControlInterface.Velocity
                inp.target_velocity = [0.0] * 7
                stopping = True
            finished = False
            at_rest = res == ruckig.Result.Finished and max(abs(v) for v in out.new_velocity) < 1e-9
            if res == ruckig.Result.Finished and not at_rest and not stopping:
                # Reached a moving target and no newer one came: come to rest at it.
                inp.target_velocity = [0.0] * 7
            if at_rest:
                now = time.monotonic()
                rest_since = rest_since if rest_since is not None else now
                finished = stopping or now - rest_since >= HOLD_BEFORE_FINISH_S
            jp = plf.JointPositions(list(out.new_position))
            if finished:
                jp.motion_finished = True
            ctrl.writeOnce(jp)
            counters["cycles"] += 1
            if finished:
                if stopping:
                    stop_ack = c[C_STOP]
                publish(robot.read_once(), False, {S_STOP_ACK: stop_ack})
                return
            s, d = ctrl.readOnce()
            period = d.to_sec()
            publish(s, True)

    while True:
        c = cmd.read()
        if c[C_SHUTDOWN] or should_exit():
            break
        try:
            if c[C_RECOVER] != recover_ack:
                recover_ack = c[C_RECOVER]
                ok = False
                try:
                    robot.automatic_error_recovery()
                    s = robot.read_once()
                    ok = str(s.current_errors) == "[]"
                except Exception as exc:
                    _write_error(err_raw, f"recovery failed: {_describe(exc)}")
                if ok:
                    _write_error(err_raw, "")
                # Whatever was streamed before the recovery is stale: never resume it.
                applied_id = cmd.read()[C_ID]
                st.write({S_ERROR: 0.0 if ok else 1.0, S_RECOVER_ACK: recover_ack, S_RECOVER_OK: 1.0 if ok else 0.0})
                continue
            if c[C_STOP] != stop_ack:
                stop_ack = c[C_STOP]
                st.write({S_STOP_ACK: stop_ack})
            if not st.a[S_ERROR] and c[C_ID] != applied_id:
                run_motion(c)
                continue
            publish(robot.read_once(), False)  # idle: keep the state fresh (blocks ~1 ms)
            time.sleep(0.002)
        except Exception as exc:  # libfranka ControlException / NetworkException / ...
            fail(_describe(exc))
            time.sleep(0.01)
            if "NetworkException" in type(exc).__name__:
                break  # the connection is gone; the parent reports it, nothing left to do here


def _gripper_main(ip: str, requests: Any, responses: Any, width: Any) -> None:
    """Gripper process: executes blocking commands, otherwise polls the width (~20 Hz)."""
    should_exit = _Exit()
    import pylibfranka as plf

    try:
        gripper = plf.Gripper(ip)
    except Exception as exc:
        responses.put(("connect", False, _describe(exc)))
        return
    responses.put(("connect", True, ""))
    while not should_exit():
        try:
            req = requests.get(timeout=0.05)
        except queue.Empty:
            try:
                width.value = float(gripper.read_once().width)
            except Exception:
                width.value = math.nan
            continue
        if req is None:
            return
        kind, args = req
        try:
            ok = bool(gripper.move(*args) if kind == "move" else gripper.grasp(*args))
            responses.put((kind, ok, ""))
        except Exception as exc:
            responses.put((kind, False, _describe(exc)))


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
        self._cmd = SeqlockBlock(ctx.RawArray("d", C_SIZE))
        self._state = SeqlockBlock(ctx.RawArray("d", S_SIZE), writer_alive=self._control_alive)
        self._err = ctx.RawArray("c", ERROR_CHARS)
        cfg = dataclasses.asdict(self.config)
        self._proc = ctx.Process(target=_control_main, args=(cfg, self._cmd.raw, self._state.raw, self._err),
                                 name="franka-control", daemon=True)
        self._proc.start()
        deadline = time.monotonic() + self.CONNECT_TIMEOUT_S
        while True:
            s = self._state.read()
            if s[S_CONNECTED]:
                break
            if s[S_ERROR] or not self._proc.is_alive():
                msg = _read_error(self._err) or f"control process exited with code {self._proc.exitcode}"
                self.close()
                raise BackendError(msg)
            if time.monotonic() > deadline:
                self.close()
                raise BackendError(f"no connection to {self.config.robot_ip} within {self.CONNECT_TIMEOUT_S} s")
            time.sleep(0.01)
        if self.config.gripper_enabled:
            self._greq, self._gresp = ctx.Queue(), ctx.Queue()
            self._gwidth = ctx.Value("d", math.nan, lock=False)
            self._gproc = ctx.Process(target=_gripper_main, args=(self.config.robot_ip, self._greq, self._gresp,
                                                                   self._gwidth), name="franka-gripper", daemon=True)
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

    def _error_text(self, s: np.ndarray) -> str:
        if self._proc is None:
            return "not connected"
        if not self._proc.is_alive():
            base = _read_error(self._err) if s[S_ERROR] else ""
            died = f"control process died (exit code {self._proc.exitcode})"
            return f"{died}; {base}" if base else died
        return (_read_error(self._err) or "error") if s[S_ERROR] else ""

    def read_state(self) -> ArmState:
        if self._proc is None:
            raise BackendError("backend not connected (call connect() first)")
        s = self._state.read()
        error = self._error_text(s)
        q = s[S_Q:S_Q + 7].copy()
        f_t_ee = s[S_F_T_EE:S_F_T_EE + 16].reshape(4, 4, order="F")
        position, quat = tcp_pose(q, f_t_ee)
        return ArmState(
            time=float(s[S_TIME]), q=q, dq=s[S_DQ:S_DQ + 7].copy(), tau=s[S_TAU:S_TAU + 7].copy(),
            position=position, quat_xyzw=quat,
            gripper_width=float(self._gwidth.value) if self._gproc is not None else math.nan,
            mode=ROBOT_MODES.get(int(s[S_MODE]), "Other") if self._proc.is_alive() else "Other",
            error=error,
            f_t_ee=np.array(f_t_ee),
        )

    @property
    def loop_stats(self) -> dict[str, float]:
        """Control-loop counters: cycles written, motions started, late cycles (> 1 ms apart)."""
        s = self._state.read()
        return {"cycles": float(s[S_CYCLES]), "motions": float(s[S_MOTIONS]), "late_cycles": float(s[S_LATE]),
                "in_control": float(s[S_IN_CONTROL])}

    @property
    def control_pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    # --- motion -------------------------------------------------------------------------
    def command_joint(self, q_target: np.ndarray, dq_target: np.ndarray | None = None) -> bool:
        q, dq = validate_joint_target(q_target, dq_target)
        dq = clip_velocity(dq, self.config.relative_dynamics_factor)
        if self._proc is None or self._error_text(self._state.read()):
            return False
        c = self._cmd.a
        self._cmd.write({C_Q: q, C_DQ: dq if dq is not None else np.zeros(7), C_HAS_DQ: 0.0 if dq is None else 1.0,
                         C_ID: c[C_ID] + 1.0})
        return True

    def command_cartesian(self, position: np.ndarray, quat_xyzw: np.ndarray) -> bool:
        raise BackendError("the pylibfranka backend takes joint targets only (use backend 'franky' for Cartesian)")

    def _request(self, slot: int, ack_slot: int, timeout_s: float) -> np.ndarray | None:
        want = self._cmd.a[slot] + 1.0
        self._cmd.write({slot: want})
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self._proc is not None and self._proc.is_alive():
            s = self._state.read()
            if s[ack_slot] == want:
                return s
            time.sleep(0.005)
        return None

    def stop(self) -> None:
        if self._proc is None or not self._proc.is_alive():
            return
        self._request(C_STOP, S_STOP_ACK, 3.0)

    def brake(self) -> None:
        if self._proc is None or not self._proc.is_alive():
            return
        self._cmd.write({C_STOP: self._cmd.a[C_STOP] + 1.0})

    def recover(self) -> bool:
        if self._proc is None or not self._proc.is_alive():
            return False  # a dead control process is not a reflex: restart the driver
        s = self._request(C_RECOVER, S_RECOVER_ACK, 10.0)
        return bool(s is not None and s[S_RECOVER_OK])

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
                self._cmd.write({C_SHUTDOWN: 1.0})
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
