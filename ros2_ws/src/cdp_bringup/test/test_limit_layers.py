"""The two trajectory generators between a policy and the arm fit together, as configured.

The safety filter's output (fractions ``limits.*_scale`` of the one FR3 table) must be
followable by the driver's own Ruckig (``relative_dynamics_factor`` of the same table): a driver
slower than the filter lags it (and its arm trips the filter's lag hold), a driver faster than
the FR3 table is impossible by construction (factor <= 1). Checked on the parameters each node
really gets, real arm and simulation.
"""

from __future__ import annotations

import pytest
from cdp_bringup.graph import load_graph, resolve
from cdp_core.robot.limits import FR3Limits

from franka_driver.backend import DriverConfig


def node_params(spec) -> dict:
    return spec.parameters()


@pytest.mark.parametrize("use_sim", ["true", "false"])
def test_driver_generator_can_follow_the_filter_and_stays_inside_the_fr3_table(use_sim):
    specs = {s.name: s for s in resolve(load_graph(), {"use_sim": use_sim})}
    driver, filt = node_params(specs["franka_driver"]), node_params(specs["safety_filter"])
    factor = float(driver.get("relative_dynamics_factor", DriverConfig.relative_dynamics_factor))
    defaults = FR3Limits()
    assert 0.0 < factor <= 1.0
    for name in ("velocity_scale", "acceleration_scale", "jerk_scale"):
        scale = float(filt.get(f"limits.{name}", getattr(defaults, name)))
        assert scale <= factor, (
            f"safety filter limits.{name} {scale} above the driver's relative_dynamics_factor "
            f"{factor} ({'sim' if use_sim == 'true' else 'real arm'})"
        )


@pytest.mark.parametrize("use_sim", ["true", "false"])
def test_real_robot_defaults_have_one_source(use_sim):
    """stack.yaml holds the driver's defaults; the dataclass fallback and cdp-preflight agree with it."""
    from cdp_preflight.preflight import PreflightConfig

    specs = {s.name: s for s in resolve(load_graph(), {"use_sim": use_sim})}
    driver = node_params(specs["franka_driver"])
    fallback = DriverConfig()
    assert driver["backend"] == fallback.backend
    assert float(driver["relative_dynamics_factor"]) == fallback.relative_dynamics_factor
    assert PreflightConfig(mode="sim" if use_sim == "true" else "robot").backend == driver["backend"]
    # an explicit launch argument still wins
    franky = {s.name: s for s in resolve(load_graph(), {"use_sim": use_sim, "backend": "franky"})}
    assert node_params(franky["franka_driver"])["backend"] == "franky"


def test_driver_and_filter_limits_are_one_table():
    """The driver's generator limits and the filter's limits are the same table, or derived from it by name."""
    import numpy as np
    from cdp_core.robot import limits
    from franka_driver import backend, pylibfranka_backend
    from safety_filter import FR3Limits as FilterLimits
    from safety_filter.filter import SafetyConfig

    assert backend.FR3 is limits.FR3 and pylibfranka_backend.FR3 is limits.FR3
    assert FilterLimits is limits.FR3Limits and isinstance(SafetyConfig().limits, limits.FR3Limits)
    v, a, j = limits.FR3.generator_limits(DriverConfig().relative_dynamics_factor)
    np.testing.assert_allclose(v, np.asarray(limits.FR3.v_max) * DriverConfig().relative_dynamics_factor)
    f = SafetyConfig().limits
    np.testing.assert_allclose(f.velocity, np.asarray(limits.FR3.v_max) * f.velocity_scale)
    np.testing.assert_array_equal(f.q_min, limits.FR3.q_min)
