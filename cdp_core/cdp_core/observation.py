"""The one observation builder: named observation parts -> the model's float32 vector.

The fast path (from the simulator's observation dict), the policy node (from ROS messages, via
its input table) and the recorder's converter (from MCAP messages) all end here, so the vector a
model sees has one layout by construction: the model's ``obs_keys`` in order, each part
flattened. torch-free and ROS-free.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


class ObservationLayoutError(ValueError):
    """An observation part is missing or has the wrong size."""


def observation_vector(
    parts: Mapping[str, np.ndarray], keys: Sequence[str], dims: Mapping[str, int] | None = None
) -> np.ndarray:
    """``parts[k]`` for ``k`` in ``keys`` concatenated as float32; ``dims`` (optional) checks each size."""
    try:
        flat = [np.asarray(parts[k], dtype=np.float64).reshape(-1) for k in keys]
    except KeyError as exc:
        raise ObservationLayoutError(f"observation part {exc.args[0]!r} missing (have {sorted(parts)})") from None
    if dims is not None:
        wrong = [
            f"{k} ({v.shape[0]}, expected {dims[k]})" for k, v in zip(keys, flat) if k in dims and v.shape[0] != dims[k]
        ]
        if wrong:
            raise ObservationLayoutError(f"observation parts of the wrong size: {', '.join(wrong)}")
    return np.concatenate(flat).astype(np.float32)
