"""Franka Research 3 motion limits: the one table every layer of the stack keeps inside.

Every slower profile is *derived* from this table, by name, never typed again:

* ``filter``: the safety filter's conservative fractions (``velocity_scale`` etc.; the
  ``FR3Limits.velocity`` / ``acceleration`` / ``jerk`` properties);
* ``generator``: the Franka driver's own trajectory generator at ``relative_dynamics_factor``
  (:meth:`FR3Limits.generator_limits`);
* ``hardware``: the table itself, which offline checks of command sequences use
  (``cdp_core.sim.replay.check_targets``).

Part of :mod:`cdp_core.robot` (numpy only: no ROS, no torch, no MuJoCo).

Sources
-------
* Joint position limits ``q_min`` / ``q_max``: FR3 datasheet (Franka "Robot and interface
  specifications", limits for Franka Research 3).
* Joint velocity, acceleration, jerk and the Cartesian limits: libfranka
  ``include/franka/rate_limiting.h`` (``kMaxJointAcceleration`` 10, ``kMaxJointJerk`` 5000,
  ``kMaxTranslational*`` 3 / 9 / 4500, ``kMaxRotational*`` 2.5 / 17 / 8500).
* Position-dependent joint velocity limit: libfranka ``computeUpperLimitsJointVelocity`` /
  ``computeLowerLimitsJointVelocity`` (same header), which implement the FR3 table of the
  control-parameters page::

      v_upper(q) = min(v_max,  max(0, -offset + sqrt(max(0, 2 * decel * (q_pd_max - q))))) - tol
      v_lower(q) = max(-v_max, min(0,  offset - sqrt(max(0, 2 * decel * (q - q_pd_min))))) + tol

  i.e. ``v_max(q) = min(v_max, sqrt(2 * decel * distance_to_limit) - offset)``: the speed
  from which the joint can still stop with deceleration ``decel`` before its limit, minus a
  constant offset. ``q_pd_min`` / ``q_pd_max`` are the (slightly wider) limits libfranka's
  formula uses, ``tol`` is ``kJointVelocityLimitsTolerance`` = ``kLimitEps`` = 1e-3 rad/s on
  FR3 (``kTolNumberPacketsLost`` = 0). The numbers are copied into the fields below so a
  firmware/libfranka update is a parameter change.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Vec7 = tuple[float, float, float, float, float, float, float]

#: The FR3 hardware table with the filter's default scales; the one instance code reads when it
#: has no configured table of its own.
FR3: "FR3Limits"

#: The stack's default TCP workspace box in fr3_link0 (m): the safety filter keeps the TCP inside
#: it (shrunk by its margin), the driver refuses commands outside it. A cell fact, overridden per
#: robot in launch/config; the default lives here so both layers start from one value.
WORKSPACE_BOX_MIN = (0.15, -0.55, 0.03)
WORKSPACE_BOX_MAX = (0.85, 0.55, 0.9)


@dataclass
class FR3Limits:
    """FR3 hardware limits plus the fractions of them the safety filter allows.

    Conservative defaults for learned policies: ``velocity_scale`` 0.5, ``acceleration_scale``
    0.3 and ``jerk_scale`` 0.1 of the hardware limits (so at most 1.31 rad/s on joints 1-4,
    3 rad/s^2, 500 rad/s^3). The same scales apply to the Cartesian limits (1.5 m/s, 2.7 m/s^2,
    450 m/s^3; 1.25 rad/s, 5.1 rad/s^2, 850 rad/s^3).
    """

    # Joint position limits (rad), FR3 datasheet.
    q_min: Vec7 = (-2.7437, -1.7837, -2.9007, -3.0421, -2.8065, 0.5445, -3.0159)
    q_max: Vec7 = (2.7437, 1.7837, 2.9007, -0.1518, 2.8065, 4.5169, 3.0159)
    #: Distance (rad) kept from q_min / q_max by every output of the filter.
    position_margin: float = 0.05

    # Joint velocity / acceleration / jerk hardware limits.
    v_max: Vec7 = (2.62, 2.62, 2.62, 2.62, 5.26, 4.18, 5.26)
    a_max: Vec7 = (10.0, 10.0, 10.0, 10.0, 10.0, 10.0, 10.0)
    j_max: Vec7 = (5000.0, 5000.0, 5000.0, 5000.0, 5000.0, 5000.0, 5000.0)

    # Position-dependent velocity limit (libfranka rate_limiting.h, see module docstring).
    pdv_q_min: Vec7 = (-2.7501, -1.7918, -2.9065, -3.0481, -2.8101, 0.54092, -3.0196)
    pdv_q_max: Vec7 = (2.7501, 1.7918, 2.9065, -0.1458, 2.8101, 4.5205, 3.0196)
    pdv_decel: Vec7 = (6.0, 2.585, 3.5, 4.0, 17.0, 5.5, 17.0)
    pdv_offset: Vec7 = (0.30, 0.20, 0.20, 0.30, 0.35, 0.35, 0.35)
    pdv_tolerance: float = 1e-3

    # Conservative fractions of the hardware limits enforced by the filter.
    velocity_scale: float = 0.5
    acceleration_scale: float = 0.3
    jerk_scale: float = 0.1

    # Cartesian (TCP) limits, libfranka rate_limiting.h; the scales above apply too.
    cart_v_trans: float = 3.0
    cart_a_trans: float = 9.0
    cart_j_trans: float = 4500.0
    cart_v_rot: float = 2.5
    cart_a_rot: float = 17.0
    cart_j_rot: float = 8500.0

    def __post_init__(self) -> None:
        for name in ("q_min", "q_max", "v_max", "a_max", "j_max", "pdv_q_min", "pdv_q_max", "pdv_decel", "pdv_offset"):
            value = np.asarray(getattr(self, name), dtype=np.float64)
            if value.shape != (7,) or not np.isfinite(value).all():
                raise ValueError(f"FR3Limits.{name} must be 7 finite numbers, got {getattr(self, name)!r}")
            setattr(self, name, tuple(float(v) for v in value))
        if np.any(np.asarray(self.q_max) - np.asarray(self.q_min) <= 2 * self.position_margin):
            raise ValueError("FR3Limits: position_margin leaves no room between q_min and q_max")
        for name in ("velocity_scale", "acceleration_scale", "jerk_scale"):
            if not 0.0 < getattr(self, name) <= 1.0:
                raise ValueError(f"FR3Limits.{name} must be in (0, 1], got {getattr(self, name)}")
        if min(self.v_max + self.a_max + self.j_max) <= 0 or self.position_margin < 0:
            raise ValueError("FR3Limits: limits must be positive and the margin non-negative")

    # Effective limits the filter enforces ------------------------------------------------
    @property
    def lower(self) -> np.ndarray:
        """Lowest joint position any output may have (datasheet limit + margin)."""
        return np.asarray(self.q_min) + self.position_margin

    @property
    def upper(self) -> np.ndarray:
        return np.asarray(self.q_max) - self.position_margin

    @property
    def velocity(self) -> np.ndarray:
        return np.asarray(self.v_max) * self.velocity_scale

    @property
    def acceleration(self) -> np.ndarray:
        return np.asarray(self.a_max) * self.acceleration_scale

    @property
    def jerk(self) -> np.ndarray:
        return np.asarray(self.j_max) * self.jerk_scale

    def velocity_bounds(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(lower, upper) joint velocity allowed at position(s) ``q`` (..., 7).

        The libfranka position-dependent hardware bound, intersected with the scaled
        constant limit ``velocity``. At positions beyond libfranka's limits both are 0.
        """
        q = np.asarray(q, dtype=np.float64)
        decel2 = 2.0 * np.asarray(self.pdv_decel)
        off = np.asarray(self.pdv_offset)
        vmax = np.asarray(self.v_max)
        up = np.minimum(
            vmax, np.maximum(0.0, -off + np.sqrt(np.maximum(0.0, decel2 * (np.asarray(self.pdv_q_max) - q))))
        )
        lo = np.maximum(
            -vmax, np.minimum(0.0, off - np.sqrt(np.maximum(0.0, decel2 * (q - np.asarray(self.pdv_q_min)))))
        )
        up = np.maximum(up - self.pdv_tolerance, 0.0)
        lo = np.minimum(lo + self.pdv_tolerance, 0.0)
        v = self.velocity
        return np.maximum(lo, -v), np.minimum(up, v)

    def generator_limits(self, factor: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(velocity, acceleration, jerk) per joint for a trajectory generator at ``factor`` (0, 1]
        of the hardware limits (the driver's Ruckig): never above the FR3's own table."""
        if not 0.0 < factor <= 1.0:
            raise ValueError(f"dynamics factor must be in (0, 1], got {factor}")
        return (np.asarray(self.v_max) * factor, np.asarray(self.a_max) * factor, np.asarray(self.j_max) * factor)

    @property
    def hardware(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(velocity, acceleration, jerk) per joint of the table itself: what the arm rejects beyond."""
        return self.generator_limits(1.0)

    def outside_hard_limits(self, q: np.ndarray) -> np.ndarray:
        """Indices of joints of ``q`` (7,) outside the datasheet position limits (no margin)."""
        q = np.asarray(q, dtype=np.float64)
        return np.flatnonzero((q < np.asarray(self.q_min)) | (q > np.asarray(self.q_max)))

    # Cartesian effective limits (per norm) ---------------------------------------------
    @property
    def cartesian_translation(self) -> tuple[float, float, float]:
        """(velocity, acceleration, jerk) bounds on the TCP translation, after the scales."""
        return (
            self.cart_v_trans * self.velocity_scale,
            self.cart_a_trans * self.acceleration_scale,
            self.cart_j_trans * self.jerk_scale,
        )

    @property
    def cartesian_rotation(self) -> tuple[float, float, float]:
        return (
            self.cart_v_rot * self.velocity_scale,
            self.cart_a_rot * self.acceleration_scale,
            self.cart_j_rot * self.jerk_scale,
        )


FR3 = FR3Limits()
