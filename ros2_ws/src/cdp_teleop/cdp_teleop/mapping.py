"""Teleoperation logic without ROS: input mappings, the Cartesian target and its IK.

Devices give a normalised twist (each axis in [-1, 1], base frame ``fr3_link0``), a deadman
flag and discrete events. :class:`TeleopCore` scales the twist by the speed settings,
integrates the TCP target, keeps it inside the workspace box and close to the measured TCP,
and turns it into a joint target with the FR3 model's damped-least-squares IK
(:mod:`cdp_core.robot.kinematics`, the same FK the filter's workspace box uses). The joint target goes out as a
one-point JointTrajectory chunk on ``/teleop/command``, so every teleop motion passes the safety
filter exactly like a policy's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from cdp_core.robot.kinematics import IKConfig, solve_ik, tcp_pose
from cdp_core.robot.rotations import matrix_to_rotvec, rotvec_to_matrix

from .events import DISCARD, FAILURE, START, STOP, SUCCESS

#: Non-episode control events a device can emit. ``record_toggle`` starts an episode when none
#: records and stops (keeps) the one that does; ``gripper_toggle`` opens a closed hand and closes an
#: open one: the node knows both states, a two-button device does not.
SPEED_UP, SPEED_DOWN, HALT, QUIT = "speed_up", "speed_down", "halt", "quit"
RECORD_TOGGLE, GRIPPER_TOGGLE = "record_toggle", "gripper_toggle"


@dataclass
class TeleopConfig:
    """Settings of the teleop core (ROS parameters of ``teleop_node``)."""

    #: Rate of the command stream (Hz); the filter stops on 0.2 s without a fresh command, so >= 10.
    rate_hz: float = 30.0
    #: Full-stick / key speed at speed scale 1 (m/s, rad/s).
    max_linear_mps: float = 0.15
    max_angular_rps: float = 0.6
    speed_scale: float = 0.5
    speed_scale_min: float = 0.05
    speed_scale_max: float = 1.0
    #: The target never runs further ahead of the measured TCP than this (m, rad): releasing the
    #: input stops the arm within that distance even when the filter limits its speed.
    max_lead_m: float = 0.03
    max_lead_rad: float = 0.2
    #: Box the target is clamped into (the safety filter's default box shrunk by 2 cm).
    box_min: tuple[float, float, float] = (0.17, -0.53, 0.05)
    box_max: tuple[float, float, float] = (0.83, 0.53, 0.88)
    #: Damped-least-squares IK.
    ik_damping: float = 1e-3
    ik_iterations: int = 20

    def __post_init__(self) -> None:
        if not self.rate_hz >= 10.0:
            raise ValueError(f"rate_hz={self.rate_hz}: the safety filter needs commands at >= 10 Hz")
        if not (0 < self.speed_scale_min <= self.speed_scale <= self.speed_scale_max <= 1.0):
            raise ValueError("need 0 < speed_scale_min <= speed_scale <= speed_scale_max <= 1")
        if not (self.max_linear_mps > 0 and self.max_angular_rps > 0 and self.max_lead_m > 0 and self.max_lead_rad > 0):
            raise ValueError("speeds and lead limits must be positive")
        if np.any(np.asarray(self.box_min) >= np.asarray(self.box_max)):
            raise ValueError(f"box_min {self.box_min} must be below box_max {self.box_max}")


@dataclass
class DeviceInput:
    """One poll of an input device."""

    linear: np.ndarray = field(default_factory=lambda: np.zeros(3))
    angular: np.ndarray = field(default_factory=lambda: np.zeros(3))
    deadman: bool = False
    events: list[str] = field(default_factory=list)


class TeleopCore:
    """TCP target integration + IK. Call :meth:`measured` with every joint state, :meth:`step` each tick."""

    def __init__(self, config: TeleopConfig | None = None):
        self.config = config or TeleopConfig()
        self.speed_scale = self.config.speed_scale
        self.ik = IKConfig(damping=self.config.ik_damping, iterations=self.config.ik_iterations)
        self.q_measured: np.ndarray | None = None
        self.q_target: np.ndarray | None = None
        self.target_pos: np.ndarray | None = None
        self.target_rot: np.ndarray | None = None
        self.ik_refusals = 0
        self._engaged = False

    @property
    def synced(self) -> bool:
        return self.q_target is not None

    def measured(self, q: np.ndarray) -> None:
        q = np.asarray(q, dtype=np.float64).reshape(7)
        if not np.isfinite(q).all():
            raise ValueError("measured joint positions are not finite")
        self.q_measured = q
        if self.q_target is None:
            self.resync()

    def resync(self) -> None:
        """Target := the measured pose (the arm holds where it is)."""
        if self.q_measured is None:
            return
        self.q_target = self.q_measured.copy()
        self.target_pos, self.target_rot = tcp_pose(self.q_target)

    def set_target_joints(self, q: np.ndarray) -> None:
        """Jump the target to joint positions ``q`` (homing, replay); the filter limits the motion."""
        self.q_target = np.asarray(q, dtype=np.float64).reshape(7).copy()
        self.target_pos, self.target_rot = tcp_pose(self.q_target)

    def scale_speed(self, factor: float) -> float:
        c = self.config
        self.speed_scale = float(np.clip(self.speed_scale * factor, c.speed_scale_min, c.speed_scale_max))
        return self.speed_scale

    def step(self, inp: DeviceInput, dt: float) -> np.ndarray | None:
        """Advance the target by the device's twist for ``dt`` seconds; returns the joint target (None before sync)."""
        if self.q_measured is None:
            return None
        if not inp.deadman:
            self._engaged = False
            return self.q_target
        if not self._engaged:
            # Pressing the deadman again starts from where the arm is, not from a stale target.
            self._engaged = True
            self.resync()
        c = self.config
        v = np.clip(np.asarray(inp.linear, dtype=np.float64), -1, 1) * c.max_linear_mps * self.speed_scale
        w = np.clip(np.asarray(inp.angular, dtype=np.float64), -1, 1) * c.max_angular_rps * self.speed_scale
        return self.move_target(self.target_pos + v * dt, rotvec_to_matrix(w * dt) @ self.target_rot)

    def move_target(self, pos: np.ndarray, rot: np.ndarray) -> np.ndarray:
        """Set the TCP target (clamped into the box, lead-limited, IK-solved); returns the joint target."""
        assert self.q_measured is not None and self.target_pos is not None and self.target_rot is not None
        c = self.config
        pos = np.clip(np.asarray(pos, dtype=np.float64), c.box_min, c.box_max)
        p_meas, r_meas = tcp_pose(self.q_measured)
        lead = np.linalg.norm(pos - p_meas)
        if lead > c.max_lead_m and lead > np.linalg.norm(self.target_pos - p_meas):
            pos = p_meas + (pos - p_meas) * (max(c.max_lead_m, np.linalg.norm(self.target_pos - p_meas)) / lead)
        rot_lead = np.linalg.norm(matrix_to_rotvec(rot @ r_meas.T))
        if rot_lead > c.max_lead_rad and rot_lead > np.linalg.norm(matrix_to_rotvec(self.target_rot @ r_meas.T)):
            rot = self.target_rot
        res = solve_ik(self.q_target, pos, rot, self.ik)
        if not res.converged:
            # Unreachable (joint limit, singularity): hold the last reachable target.
            self.ik_refusals += 1
            return self.q_target
        self.q_target, self.target_pos, self.target_rot = res.q, pos, rot
        return self.q_target


# --- keyboard ---------------------------------------------------------------------------------

#: key -> (index into the 6-vector [vx, vy, vz, wx, wy, wz], sign)
KEY_AXES = {
    "w": (0, 1),
    "s": (0, -1),
    "a": (1, 1),
    "d": (1, -1),
    "r": (2, 1),
    "f": (2, -1),
    "u": (3, 1),
    "o": (3, -1),
    "i": (4, 1),
    "k": (4, -1),
    "j": (5, 1),
    "l": (5, -1),
}
KEY_EVENTS = {
    "b": START,
    "e": STOP,
    "x": DISCARD,
    "y": SUCCESS,
    "n": FAILURE,
    "+": SPEED_UP,
    "=": SPEED_UP,
    "-": SPEED_DOWN,
    " ": HALT,
    "q": QUIT,
    "\x03": QUIT,
}

KEYBOARD_HELP = """\
teleop keyboard (base frame fr3_link0; hold or tap a key; motion stops key_timeout_s after the last press)
  w/s  +x/-x    a/d  +y/-y    r/f  +z/-z          u/o  roll +/-   i/k  pitch +/-   j/l  yaw +/-
  +/-  speed up/down        space  stop
  b  start episode   e  stop + keep   x  discard   y  mark success   n  mark failure   q / Ctrl-C  quit
"""


class KeyboardMapper:
    """Terminal keys -> device input. A terminal reports presses only (autorepeat while held), so
    a motion key counts as held for ``key_timeout_s`` after its last press: that is the deadman."""

    def __init__(self, key_timeout_s: float = 0.25):
        if not key_timeout_s > 0:
            raise ValueError("key_timeout_s must be positive")
        self.key_timeout_s = key_timeout_s
        self._last: dict[int, tuple[int, float]] = {}  # axis -> (sign, time of last press)
        self._events: list[str] = []
        self._escape = 0

    def feed(self, text: str, now: float) -> None:
        for ch in text:
            if self._escape:  # swallow terminal escape sequences (arrow keys: ESC [ A)
                self._escape = self._escape + 1 if ch == "[" and self._escape == 1 else 0
                continue
            if ch == "\x1b":
                self._escape = 1
                continue
            key = ch.lower() if ch.isalpha() else ch
            if key in KEY_AXES:
                axis, sign = KEY_AXES[key]
                self._last[axis] = (sign, now)
            elif key in KEY_EVENTS:
                ev = KEY_EVENTS[key]
                if ev == HALT:
                    self._last.clear()
                self._events.append(ev)

    def poll(self, now: float) -> DeviceInput:
        twist = np.zeros(6)
        for axis, (sign, t) in list(self._last.items()):
            if now - t <= self.key_timeout_s:
                twist[axis] = sign
            else:
                del self._last[axis]
        events, self._events = self._events, []
        return DeviceInput(twist[:3], twist[3:], bool(np.any(twist)), events)


# --- gamepad ----------------------------------------------------------------------------------


@dataclass
class GamepadLayout:
    """Axis / button indices as pygame reports them (defaults: an Xbox pad on Linux's xpad driver)."""

    axis_lx: int = 0
    axis_ly: int = 1
    axis_lt: int = 2
    axis_rx: int = 3
    axis_ry: int = 4
    axis_rt: int = 5
    deadman_button: int = 4  # LB: motion only while held
    roll_button: int = 5  # RB held: the right stick rolls/pitches instead of yaw/pitch
    start_button: int = 3  # Y
    stop_button: int = 0  # A: stop and keep
    discard_button: int = 1  # B
    speed_down_button: int = 6  # Back
    speed_up_button: int = 7  # Start
    #: D-pad (hat 0): up = mark success, down = mark failure
    hat: int = 0
    deadzone: float = 0.12


class GamepadMapper:
    """Raw gamepad state -> device input (pure function of the state plus button edges)."""

    def __init__(self, layout: GamepadLayout | None = None):
        self.layout = layout or GamepadLayout()
        self._prev_buttons: list[int] = []
        self._prev_hat = (0, 0)

    def _axis(self, axes: list[float], i: int) -> float:
        v = float(axes[i]) if i < len(axes) else 0.0
        dz = self.layout.deadzone
        if abs(v) < dz:
            return 0.0
        return float(np.sign(v) * (abs(v) - dz) / (1.0 - dz))

    def _trigger(self, axes: list[float], i: int) -> float:
        # Triggers rest at -1 and go to +1 when pulled.
        v = (float(axes[i]) + 1.0) / 2.0 if i < len(axes) else 0.0
        return 0.0 if v < self.layout.deadzone else (v - self.layout.deadzone) / (1.0 - self.layout.deadzone)

    def update(self, axes: list[float], buttons: list[int], hats: list[tuple[int, int]] | None = None) -> DeviceInput:
        lay = self.layout

        def pressed(i: int) -> bool:
            return i < len(buttons) and bool(buttons[i])

        def edge(i: int) -> bool:
            was = i < len(self._prev_buttons) and bool(self._prev_buttons[i])
            return pressed(i) and not was

        events = [
            ev
            for b, ev in (
                (lay.start_button, START),
                (lay.stop_button, STOP),
                (lay.discard_button, DISCARD),
                (lay.speed_up_button, SPEED_UP),
                (lay.speed_down_button, SPEED_DOWN),
            )
            if edge(b)
        ]
        hat = tuple(hats[lay.hat]) if hats and lay.hat < len(hats) else (0, 0)
        if hat != self._prev_hat:
            if hat[1] > 0:
                events.append(SUCCESS)
            elif hat[1] < 0:
                events.append(FAILURE)
        self._prev_buttons, self._prev_hat = list(buttons), hat
        # Stick forward (negative y axis) = +x away from the base; stick left (negative x) = +y.
        lin = np.array(
            [
                -self._axis(axes, lay.axis_ly),
                -self._axis(axes, lay.axis_lx),
                self._trigger(axes, lay.axis_rt) - self._trigger(axes, lay.axis_lt),
            ]
        )
        rx, ry = -self._axis(axes, lay.axis_rx), -self._axis(axes, lay.axis_ry)
        ang = np.array([rx, ry, 0.0]) if pressed(lay.roll_button) else np.array([0.0, ry, rx])
        deadman = pressed(lay.deadman_button)
        if not deadman:
            lin, ang = np.zeros(3), np.zeros(3)
        return DeviceInput(lin, ang, deadman, events)


# --- SpaceMouse -------------------------------------------------------------------------------


@dataclass
class SpaceMouseLayout:
    """How a 3Dconnexion SpaceMouse maps to the TCP twist (axes in pyspacemouse's ``ROS``
    convention: x away from the operator, y left, z up, rotations about them; each about [-1, 1])."""

    #: Rotation of the device's frame about z into the robot base frame (degrees): 0 when the
    #: operator looks along the robot's +x (behind the robot), 180 when facing it from in front.
    base_yaw_deg: float = 0.0
    #: Below this (per axis, after scaling) the puck counts as centred.
    deadzone: float = 0.08
    #: Full speed at this deflection (the puck rarely reaches 1.0 on every axis).
    full_scale: float = 0.7
    #: A deflection older than this (no HID report since) is not believed: the device streams
    #: reports while displaced, so silence means it was unplugged or the reader stalled.
    stale_s: float = 0.25
    #: Holding the record button this long discards the episode instead of toggling it.
    long_press_s: float = 1.0
    gripper_button: int = 0  # LEFT on the SpaceMouse Wireless / Compact
    record_button: int = 1  # RIGHT

    def __post_init__(self) -> None:
        if not (0.0 <= self.deadzone < self.full_scale <= 1.0):
            raise ValueError("need 0 <= deadzone < full_scale <= 1")
        if not (self.stale_s > 0 and self.long_press_s > 0):
            raise ValueError("stale_s and long_press_s must be positive")


@dataclass
class SpaceMouseSample:
    """One decoded HID state: translation (3,), rotation (3,) [roll, pitch, yaw], buttons, and
    when it arrived (the reader's monotonic clock)."""

    translation: np.ndarray
    rotation: np.ndarray
    buttons: tuple[int, ...]
    t: float


class SpaceMouseMapper:
    """SpaceMouse samples -> device input. The deadman is the puck itself: it springs back to the
    centre when released, so motion needs a fresh deflection beyond the deadzone."""

    def __init__(self, layout: SpaceMouseLayout | None = None):
        self.layout = layout or SpaceMouseLayout()
        yaw = np.radians(self.layout.base_yaw_deg)
        c, s = np.cos(yaw), np.sin(yaw)
        self._rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
        self._prev: tuple[int, ...] = ()
        self._record_down: float | None = None
        self._discarded = False
        self._last: SpaceMouseSample | None = None

    def _shape(self, v: np.ndarray) -> np.ndarray:
        lay = self.layout
        v = np.asarray(v, dtype=np.float64)
        mag = np.clip((np.abs(v) - lay.deadzone) / (lay.full_scale - lay.deadzone), 0.0, 1.0)
        return np.sign(v) * mag

    def update(self, samples: list[SpaceMouseSample], now: float) -> DeviceInput:
        """``samples``: every report since the last call, oldest first (button presses between two
        ticks are not lost); the newest one sets the twist, and no new one keeps the last."""
        lay = self.layout
        events: list[str] = []

        def down(i: int, state: tuple[int, ...]) -> bool:
            return i < len(state) and bool(state[i])

        for sample in samples:
            buttons = tuple(sample.buttons)
            if down(lay.gripper_button, buttons) and not down(lay.gripper_button, self._prev):
                events.append(GRIPPER_TOGGLE)
            rec, was = down(lay.record_button, buttons), down(lay.record_button, self._prev)
            if rec and not was:
                self._record_down, self._discarded = sample.t, False
            if not rec and was:
                if not self._discarded:
                    events.append(RECORD_TOGGLE)
                self._record_down = None
            self._prev = buttons
            self._last = sample
        if self._record_down is not None and not self._discarded and now - self._record_down >= lay.long_press_s:
            events.append(DISCARD)  # fires while still held: the operator feels it happen
            self._discarded = True
        sample = self._last
        if sample is None or now - sample.t > lay.stale_s:
            return DeviceInput(events=events)
        lin = self._rot @ self._shape(sample.translation)
        ang = self._rot @ self._shape(sample.rotation)
        deadman = bool(np.any(lin) or np.any(ang))
        return DeviceInput(lin, ang, deadman, events)
