"""The policy's observation, built from the latest robot / perception messages (no rclpy here).

The layout is the fast path's (``cdp_core.sim.env.FR3TaskEnv.observe`` concatenated in the
model's ``obs_keys`` order, see ``cdp_core.sim.evaluate.rollout``): a model trained on
simulated or recorded episodes must see exactly the same numbers from ROS messages.

How each observation key is built from the inputs lives in one table, :data:`OBS_SOURCES`;
a model that asks for anything else is refused at start-up with the key named.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
from cdp_core.sim.tasks import TASKS
from cdp_core.deploy import StackCapabilities, deployment_problems
from cdp_core.observation import OFFSET_SUFFIX, ROBOT_PARTS, derive, observation_vector, with_derived_dims
from cdp_core.robot.rotations import TOOL_DOWN, W_NON_NEGATIVE, QuaternionError
from cdp_core.robot.rotations import canonical_quat as _canonical_quat

from .camera_frames import CameraFrameError, CameraFrames

#: Inputs the buffer keeps (each with its own stamp).
JOINTS, FINGERS, EE_POSE, OBJECT_POSE = "joints", "fingers", "ee_pose", "object_pose"

#: Which ROS topic feeds each input (for messages that name what is missing).
INPUT_TOPICS = {
    JOINTS: "/joint_states (arm joints)",
    FINGERS: "/joint_states (finger joints)",
    EE_POSE: "/franka/ee_pose",
    OBJECT_POSE: "/perception/object_pose",
}


class ObservationError(ValueError):
    """The model asks for observations this node cannot build, or an input message is unusable."""


#: Sign references of observed quaternions (:mod:`cdp_core.robot.rotations`): the tool points down;
#: objects stand upright and turn about z by less than pi, so w >= 0 is continuous for them.
OBJECT_UPRIGHT_XYZW = W_NON_NEGATIVE


def canonical_quat(q_xyzw: np.ndarray, reference: np.ndarray = TOOL_DOWN) -> np.ndarray:
    """The fast path's quaternion sign convention (``cdp_core.robot.rotations``): q and -q are the same
    rotation, the model was trained on one hemisphere only, so whatever sign a publisher uses
    must not flip the observation."""
    try:
        return _canonical_quat(q_xyzw, reference)
    except QuaternionError as exc:
        raise ObservationError(str(exc)) from exc


@dataclass(frozen=True)
class ObsSource:
    """How one observation key is made: its size, the inputs it reads, and the function that reads them."""

    dim: int
    inputs: tuple[str, ...]
    build: Callable[[Mapping[str, np.ndarray]], np.ndarray]


#: obs key -> how to build it from the stored inputs. ``ee_pos``/``ee_quat`` are the TCP pose
#: (franky's end effector, what ``FR3TaskEnv.tip_pose`` reports); each task's object key
#: (``target_pos``, ``hole_pose``, ...) is the object pose from perception (or the simulator's
#: ground truth) in the base frame;
#: ``gripper_width`` is the sum of the two finger joints (franky-sim's ``hand_width``).
OBS_SOURCES: dict[str, ObsSource] = {
    "joint_pos": ObsSource(7, (JOINTS,), lambda s: s[JOINTS]),
    "ee_pos": ObsSource(3, (EE_POSE,), lambda s: s[EE_POSE][:3]),
    "ee_quat": ObsSource(4, (EE_POSE,), lambda s: s[EE_POSE][3:7]),
    "gripper_width": ObsSource(1, (FINGERS,), lambda s: np.array([s[FINGERS].sum()])),
}


def _object_source(dim: int) -> ObsSource:
    return ObsSource(dim, (OBJECT_POSE,), lambda s: s[OBJECT_POSE][:dim])


def _derived_source(key: str, dim: int) -> ObsSource:
    inputs = (OBJECT_POSE, EE_POSE) if key.endswith(OFFSET_SUFFIX) else (OBJECT_POSE,)
    return ObsSource(dim, inputs, lambda s: derive(key, s[OBJECT_POSE], s[EE_POSE][:3] if EE_POSE in s else None))


# Every registered task's object key (``Task.object_key``: a position, 3, or a pose, 7) comes from
# /perception/object_pose, and so do its derived parts (``<key>_offset`` from the TCP, ``<key>_quat``;
# cdp_core.observation): a new task needs no edit here.
OBS_SOURCES.update({t.object_key: _object_source(t.object_dim()) for t in TASKS.values()})
for _t in TASKS.values():
    _dims = with_derived_dims({**ROBOT_PARTS, _t.object_key: _t.object_dim()})
    OBS_SOURCES.update({k: _derived_source(k, d) for k, d in _dims.items() if k not in OBS_SOURCES})


def node_capabilities(cameras: Mapping[str, tuple[int, int]] | None = None) -> StackCapabilities:
    """What the policy node serves (for :func:`cdp_core.deploy.check_deployable`): the observation
    keys of :data:`OBS_SOURCES`, joint-position actions and TCP-pose actions (which the runner turns
    into joint targets with the fast path's IK: the joint safety filter only ever sees joint
    targets) and the camera frames of ``cameras`` (name -> (H, W): those its ``camera_topics`` name)."""
    return StackCapabilities(
        obs_dims={k: s.dim for k, s in OBS_SOURCES.items()},
        action_spaces=("joint_position", "ee_pose"),
        action_dim=7,
        cameras=dict(cameras or {}),
        name="the policy node",
    )


def check_obs_keys(obs_keys: Sequence[str], obs_dims: Mapping[str, int] | None = None) -> None:
    """Raise :class:`ObservationError` naming every key that cannot be built or has the wrong size
    (the observation part of :func:`cdp_core.deploy.deployment_problems`)."""
    caps = node_capabilities()
    dims: dict[str, Any] = dict(obs_dims) if obs_dims is not None else {k: caps.obs_dims.get(k) for k in obs_keys}
    problems = deployment_problems({"obs_keys": list(obs_keys), "obs_dims": dims, "action_dim": caps.action_dim}, caps)
    if problems:
        raise ObservationError("; ".join(problems))


@dataclass
class ObsResult:
    """One control tick's observation: the history ``[n_obs_steps, obs_dim]`` or None and why."""

    history: np.ndarray | None
    age_s: float  # now - oldest input stamp used (inf when an input was never received)
    reason: str = ""
    #: An image policy's frames ``[n_obs_steps, cameras, H, W, 3]`` uint8, one set per history frame.
    images: np.ndarray | None = None
    #: Per camera, now - capture stamp of this tick's frame (s); empty without cameras.
    image_ages: Mapping[str, float] = field(default_factory=dict)


class ObservationBuffer:
    """Latest time-stamped inputs plus the history of frames sampled at the control ticks.

    Thread-safe: ROS callbacks call the ``update_*`` methods while the control tick calls
    :meth:`sample`. The history holds ``n_obs_steps`` frames one tick apart; when it is
    shorter (start, after :meth:`clear_history` or a refused tick) the first frame is
    repeated, as the fast path does at an episode's start.
    """

    def __init__(
        self,
        obs_keys: Sequence[str],
        n_obs_steps: int,
        max_obs_age_s: float,
        obs_dims: Mapping[str, int] | None = None,
        joint_names: Sequence[str] | None = None,
        finger_names: Sequence[str] | None = None,
        max_object_age_s: float | None = None,
        cameras: CameraFrames | None = None,
    ):
        """``max_object_age_s``: the object pose's own age limit (default ``max_obs_age_s``): a camera
        pose is older by construction (frame lag, detection, camera rate) than the arm's state.
        ``cameras``: an image policy's frames, each tick's taken by the arm state's capture stamp."""
        from cdp_ros_common.names import FINGER_NAMES, JOINT_NAMES

        check_obs_keys(obs_keys, obs_dims)
        if n_obs_steps < 1:
            raise ValueError(f"n_obs_steps must be >= 1, got {n_obs_steps}")
        if not max_obs_age_s > 0:
            raise ValueError(f"max_obs_age_s must be > 0, got {max_obs_age_s}")
        self.obs_keys = list(obs_keys)
        self.n_obs_steps = n_obs_steps
        self.max_obs_age_s = float(max_obs_age_s)
        if max_object_age_s is not None and not max_object_age_s > 0:
            raise ValueError(f"max_object_age_s must be > 0, got {max_object_age_s}")
        self.max_age = {i: float(max_obs_age_s) for i in (JOINTS, FINGERS, EE_POSE)}
        self.max_age[OBJECT_POSE] = float(max_object_age_s if max_object_age_s is not None else max_obs_age_s)
        self.joint_names = list(joint_names or JOINT_NAMES)
        self.finger_names = list(finger_names or FINGER_NAMES)
        self.obs_dim = sum(OBS_SOURCES[k].dim for k in self.obs_keys)
        self.needed = sorted({i for k in self.obs_keys for i in OBS_SOURCES[k].inputs})
        self._values: dict[str, np.ndarray] = {}
        self._stamps: dict[str, float] = {}
        self._history: deque[np.ndarray] = deque(maxlen=n_obs_steps)
        self.cameras = cameras
        self._image_history: deque[np.ndarray] = deque(maxlen=n_obs_steps)
        self._lock = threading.Lock()

    # --- inputs (ROS callbacks) -----------------------------------------------------------
    def update_joint_state(self, stamp: float, names: Sequence[str], positions: Sequence[float]) -> None:
        """A /joint_states message: stores the arm if all its joints are present, the fingers likewise.

        A message with only some of them (e.g. a separate gripper publisher) updates what it has.
        """
        names = list(names)
        if len(positions) != len(names):
            raise ObservationError(f"joint_states has {len(names)} names but {len(positions)} positions")
        index = {n: i for i, n in enumerate(names)}
        updates = {}
        for key, wanted in ((JOINTS, self.joint_names), (FINGERS, self.finger_names)):
            if all(n in index for n in wanted):
                v = np.array([positions[index[n]] for n in wanted], dtype=np.float64)
                if not np.isfinite(v).all():
                    raise ObservationError(f"joint_states holds non-finite positions for {wanted}")
                updates[key] = v
        with self._lock:
            for key, v in updates.items():
                self._values[key], self._stamps[key] = v, float(stamp)

    def update_ee_pose(self, stamp: float, position: Sequence[float], quat_xyzw: Sequence[float]) -> None:
        self._set_pose(EE_POSE, stamp, position, quat_xyzw, TOOL_DOWN)

    def update_object_pose(self, stamp: float, position: Sequence[float], quat_xyzw: Sequence[float]) -> None:
        self._set_pose(OBJECT_POSE, stamp, position, quat_xyzw, OBJECT_UPRIGHT_XYZW)

    def _set_pose(
        self, key: str, stamp: float, position: Sequence[float], quat_xyzw: Sequence[float], reference: np.ndarray
    ) -> None:
        p = np.asarray(position, dtype=np.float64).reshape(3)
        if not np.isfinite(p).all():
            raise ObservationError(f"{INPUT_TOPICS[key]} position {p.tolist()} is not finite")
        v = np.concatenate([p, canonical_quat(np.asarray(quat_xyzw), reference)])
        with self._lock:
            self._values[key], self._stamps[key] = v, float(stamp)

    # --- observation (control tick) -------------------------------------------------------
    def frame(self, t_now: float) -> tuple[np.ndarray | None, float, str]:
        """The current observation vector (float32, the model's key order), its age, and why not if None."""
        with self._lock:
            missing = [INPUT_TOPICS[i] for i in self.needed if i not in self._values]
            if missing:
                return None, float("inf"), f"no message yet on {', '.join(missing)}"
            ages = {i: t_now - self._stamps[i] for i in self.needed}
            values = {i: self._values[i] for i in self.needed}
        age = max(ages.values())
        stale = [
            f"{INPUT_TOPICS[i]} ({a:.3f} s > {self.max_age[i]:g} s)" for i, a in ages.items() if a > self.max_age[i]
        ]
        if stale:
            return None, age, f"stale input (max_obs_age_s / max_object_age_s): {', '.join(stale)}"
        future = [f"{INPUT_TOPICS[i]} ({-a:.3f} s ahead)" for i, a in ages.items() if a < -self.max_obs_age_s]
        if future:  # a clock mismatch between publishers: the stamps cannot be trusted
            return None, age, f"input stamped in the future (clock mismatch?): {', '.join(future)}"
        # float64 concatenation, then float32: bit-identical to the fast path's np.concatenate(...).astype(float32)
        vec = observation_vector({k: OBS_SOURCES[k].build(values) for k in self.obs_keys}, self.obs_keys)
        return vec, age, ""

    def sample(self, t_now: float) -> ObsResult:
        """Take this tick's frame into the history and return the history, or refuse with the reason.

        A refused tick clears the history: the frames must be one control period apart, and
        a gap would hand the model a history it never saw in training.
        """
        vec, age, reason = self.frame(t_now)
        if vec is None:
            self.clear_history()
            return ObsResult(None, age, reason)
        images, ages = None, {}
        if self.cameras is not None:
            with self._lock:
                t_ref = self._stamps[JOINTS] if JOINTS in self._stamps else t_now
            got = self.cameras.at(t_ref, t_now)
            ages = dict(got.ages)
            if got.frames is None:
                self.clear_history()
                return ObsResult(None, max(age, got.age_s), got.reason, image_ages=ages)
            age = max(age, got.age_s)
            if not self._image_history:
                self._image_history.extend([got.frames] * self.n_obs_steps)
            else:
                self._image_history.append(got.frames)
            images = np.stack(self._image_history)
        if not self._history:
            self._history.extend([vec] * self.n_obs_steps)
        else:
            self._history.append(vec)
        return ObsResult(np.stack(self._history), age, images=images, image_ages=ages)

    def update_image(
        self, camera: str, stamp: float, height: int, width: int, encoding: str, step: int, data: bytes | np.ndarray
    ) -> None:
        """A camera frame (sensor_msgs/Image fields); ObservationError if unusable or not an image policy."""
        if self.cameras is None:
            raise ObservationError(f"frame from camera {camera!r}, but this model sees no camera")
        try:
            self.cameras.update(camera, stamp, height, width, encoding, step, data)
        except CameraFrameError as exc:
            raise ObservationError(str(exc)) from exc

    def clear_history(self) -> None:
        self._history.clear()
        self._image_history.clear()

    def latest_joints(self) -> np.ndarray | None:
        """The arm's last measured joint positions (None before the first /joint_states)."""
        with self._lock:
            v = self._values.get(JOINTS)
        return None if v is None else v.copy()

    @property
    def history_len(self) -> int:
        return len(self._history)
