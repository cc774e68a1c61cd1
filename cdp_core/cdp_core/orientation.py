"""The sign convention of orientation quaternions in observations (torch-free; deployment uses it).

q and -q are the same rotation, so an observation must pick one. "w >= 0" is discontinuous at
180-degree rotations, and a Franka tool pointing down *is* a 180-degree rotation about x: w
sits near 0 and a millimetre of motion flips every component's sign. Observations instead take
the hemisphere around the tool-down orientation, whose boundary (a 90-degree tilt away from
pointing down) tabletop tasks never reach.
"""

from __future__ import annotations

import numpy as np

#: Tool pointing down (TCP z axis = -z of the base), x y z w: 180 degrees about the base x axis.
TOOL_DOWN_XYZW = np.array([1.0, 0.0, 0.0, 0.0])


class QuaternionError(ValueError):
    """A quaternion that is not a rotation (non-finite or zero length)."""


def canonical_tool_quat(q_xyzw: np.ndarray, reference: np.ndarray = TOOL_DOWN_XYZW) -> np.ndarray:
    """Unit quaternion (x, y, z, w), sign chosen so that its dot product with ``reference`` is >= 0."""
    q = np.asarray(q_xyzw, dtype=np.float64).reshape(4)
    n = float(np.linalg.norm(q))
    if not np.isfinite(q).all() or n < 1e-9:
        raise QuaternionError(f"quaternion {q.tolist()} is not a rotation")
    if abs(n - 1.0) > 1e-9:  # leave unit quaternions bit-exact
        q = q / n
    return -q if float(q @ reference) < 0 else q


def matrix_to_quat(r: np.ndarray) -> np.ndarray:
    """Rotation matrix -> canonical observation quaternion (x, y, z, w)."""
    import mujoco

    wxyz = np.empty(4)
    mujoco.mju_mat2Quat(wxyz, np.ascontiguousarray(r, dtype=np.float64).reshape(-1))
    return canonical_tool_quat(np.array([wxyz[1], wxyz[2], wxyz[3], wxyz[0]]))


def quat_to_matrix(q_xyzw: np.ndarray) -> np.ndarray:
    """Quaternion (x, y, z, w; any length > 0, either sign) -> rotation matrix (3, 3)."""
    import mujoco

    x, y, z, w = canonical_tool_quat(q_xyzw)
    mat = np.empty(9)
    mujoco.mju_quat2Mat(mat, np.array([w, x, y, z]))
    return mat.reshape(3, 3)
