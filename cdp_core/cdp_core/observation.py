"""The one observation builder: named observation parts -> the model's float32 vector.

The fast path (from the simulator's observation dict), the policy node (from ROS messages, via
its input table) and the recorder's converter (from MCAP messages) all end here, so the vector a
model sees has one layout by construction: the model's ``obs_keys`` in order, each part
flattened. torch-free and ROS-free.

**Derived parts.** ``<object>_offset`` (e.g. ``hole_pose_offset``) is the object's position minus
the TCP's (``ee_pos``), in the base frame, for any object part whose first three numbers are a
position; ``<object>_quat`` is a 7-D pose's orientation alone. They are never stored: datasets, the simulator and the policy node provide the object and
the TCP, and :func:`observation_part` derives them the same way for all of them. A policy
that sees the offset can learn "move by minus the offset", which carries over to object poses
the demonstrations did not cover (an absolute pose has to be interpolated between demonstrations);
without the absolute positions (offset and orientation only) the policy cannot tell placements apart.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


class ObservationLayoutError(ValueError):
    """An observation part is missing or has the wrong size."""


#: Suffix of a derived offset part (see the module docstring).
OFFSET_SUFFIX = "_offset"
#: Suffix of a derived orientation part: a pose's quaternion alone (x y z w), without its position.
QUAT_SUFFIX = "_quat"
#: The TCP position part the offsets are taken from.
TCP_KEY = "ee_pos"
#: The robot's own observation parts (name -> size); everything else a task observes is about
#: objects, and only object parts have derived parts.
ROBOT_PARTS = {"joint_pos": 7, "ee_pos": 3, "ee_quat": 4, "gripper_width": 1}
#: suffix -> (smallest object size it applies to, its size). An offset needs the TCP too.
DERIVED = {OFFSET_SUFFIX: (3, 3), QUAT_SUFFIX: (7, 4)}


def offset_key(object_key: str) -> str:
    """The derived part holding ``object_key``'s position relative to the TCP."""
    return object_key + OFFSET_SUFFIX


def object_offset(object_part: np.ndarray, tcp_position: np.ndarray) -> np.ndarray:
    """Object position minus TCP position (``[..., 3]``; leading axes, e.g. time, are kept)."""
    obj, tcp = np.asarray(object_part, dtype=np.float64), np.asarray(tcp_position, dtype=np.float64)
    if obj.shape[-1] < 3 or tcp.shape[-1] != 3:
        raise ObservationLayoutError(
            f"an offset needs an object position and a TCP position, got {obj.shape} {tcp.shape}"
        )
    return obj[..., :3] - tcp


def _split(key: str) -> tuple[str, str] | None:
    for suffix in DERIVED:
        if key.endswith(suffix) and len(key) > len(suffix):
            return key[: -len(suffix)], suffix
    return None


def derived_base(key: str, available: Mapping[str, int] | Sequence[str]) -> str | None:
    """The object part that derived part ``key`` comes from, when ``available`` can serve it."""
    split = _split(key)
    if split is None:
        return None
    base, suffix = split
    have = set(available)
    if base not in have or base in ROBOT_PARTS or key in have or (suffix == OFFSET_SUFFIX and TCP_KEY not in have):
        return None
    if isinstance(available, Mapping) and int(available[base]) < DERIVED[suffix][0]:
        return None
    return base


def with_derived_dims(dims: Mapping[str, int]) -> dict[str, int]:
    """``dims`` plus every derived part they can serve (what a source of ``dims`` provides)."""
    out = dict(dims)
    for k in dims:
        for suffix, (_, size) in DERIVED.items():
            if derived_base(k + suffix, dims) == k:
                out.setdefault(k + suffix, size)
    return out


def derive(key: str, object_part: np.ndarray, tcp_position: np.ndarray | None = None) -> np.ndarray:
    """The derived part ``key`` from its object part (and, for an offset, the TCP position)."""
    split = _split(key)
    if split is None:
        raise ObservationLayoutError(f"{key!r} is not a derived observation part ({', '.join(DERIVED)})")
    obj = np.asarray(object_part, dtype=np.float64)
    if split[1] == OFFSET_SUFFIX:
        if tcp_position is None:
            raise ObservationLayoutError(f"observation part {key!r} needs the TCP position ({TCP_KEY})")
        return object_offset(obj, tcp_position)
    if obj.shape[-1] < 7:
        raise ObservationLayoutError(f"observation part {key!r} needs a 7-D pose, got {obj.shape}")
    return obj[..., 3:7]


def observation_part(parts: Mapping[str, np.ndarray], key: str) -> np.ndarray:
    """``parts[key]``, or the derived part named ``key``; ObservationLayoutError when neither."""
    if key in parts:
        return np.asarray(parts[key])
    base = derived_base(key, list(parts))
    if base is None:
        raise ObservationLayoutError(f"observation part {key!r} missing (have {sorted(parts)})")
    try:
        return derive(key, parts[base], parts.get(TCP_KEY))
    except ObservationLayoutError as exc:
        raise ObservationLayoutError(f"observation part {key!r}: {exc}") from None


def observation_vector(
    parts: Mapping[str, np.ndarray], keys: Sequence[str], dims: Mapping[str, int] | None = None
) -> np.ndarray:
    """``parts[k]`` (or the derived part ``k``) for ``k`` in ``keys`` concatenated as float32; ``dims``
    (optional) checks each size."""
    flat = [np.asarray(observation_part(parts, k), dtype=np.float64).reshape(-1) for k in keys]
    if dims is not None:
        wrong = [
            f"{k} ({v.shape[0]}, expected {dims[k]})" for k, v in zip(keys, flat) if k in dims and v.shape[0] != dims[k]
        ]
        if wrong:
            raise ObservationLayoutError(f"observation parts of the wrong size: {', '.join(wrong)}")
    return np.concatenate(flat).astype(np.float32)


def episode_observations(obs: Mapping[str, np.ndarray], keys: Sequence[str]) -> np.ndarray:
    """An episode's observation rows ``[T, obs_dim]`` float32 from its parts ``{key: [T, d]}``
    (derived parts included): the training-side twin of :func:`observation_vector`."""
    cols = []
    for k in keys:
        v = np.asarray(observation_part(obs, k))
        cols.append(v.reshape(v.shape[0], -1))
    return np.concatenate(cols, axis=1).astype(np.float32)
