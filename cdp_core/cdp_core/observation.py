"""The one observation builder: named observation parts -> the model's float32 vector.

The fast path (from the simulator's observation dict), the policy node (from ROS messages, via
its input table) and the recorder's converter (from MCAP messages) all end here, so the vector a
model sees has one layout by construction: the model's ``obs_keys`` in order, each part
flattened. torch-free and ROS-free.

**Derived parts.** ``<object>_offset`` (e.g. ``hole_pose_offset``) is the object's position minus
the TCP's (``ee_pos``), in the base frame, for any object part whose first three numbers are a
position. It is never stored: datasets, the simulator and the policy node provide the object and
the TCP, and :func:`observation_part` derives the offset the same way for all of them. A policy
that sees the offset can learn "move by minus the offset", which carries over to object poses
the demonstrations did not cover (an absolute pose has to be interpolated between demonstrations).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


class ObservationLayoutError(ValueError):
    """An observation part is missing or has the wrong size."""


#: Suffix of a derived offset part (see the module docstring).
OFFSET_SUFFIX = "_offset"
#: The TCP position part the offsets are taken from.
TCP_KEY = "ee_pos"
#: The robot's own observation parts (name -> size); everything else a task observes is about
#: objects, and only object parts have offsets.
ROBOT_PARTS = {"joint_pos": 7, "ee_pos": 3, "ee_quat": 4, "gripper_width": 1}


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


def derived_base(key: str, available: Mapping[str, int] | Sequence[str]) -> str | None:
    """The object part that ``key`` is the offset of, when ``key`` can be derived from ``available``."""
    if not key.endswith(OFFSET_SUFFIX):
        return None
    base = key[: -len(OFFSET_SUFFIX)]
    have = set(available)
    if base in have and base not in ROBOT_PARTS and TCP_KEY in have and key not in have:
        if isinstance(available, Mapping) and int(available[base]) < 3:
            return None
        return base
    return None


def with_derived_dims(dims: Mapping[str, int]) -> dict[str, int]:
    """``dims`` plus every offset part derivable from them (what a source of ``dims`` can serve)."""
    out = dict(dims)
    for k, d in dims.items():
        if k not in ROBOT_PARTS and int(d) >= 3 and TCP_KEY in dims and not k.endswith(OFFSET_SUFFIX):
            out.setdefault(offset_key(k), 3)
    return out


def observation_part(parts: Mapping[str, np.ndarray], key: str) -> np.ndarray:
    """``parts[key]``, or the derived offset named ``key``; ObservationLayoutError when neither."""
    if key in parts:
        return np.asarray(parts[key])
    base = derived_base(key, list(parts))
    if base is None:
        raise ObservationLayoutError(f"observation part {key!r} missing (have {sorted(parts)})")
    try:
        return object_offset(parts[base], parts[TCP_KEY])
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
