"""The two trajectory generators between a policy and the arm fit together, as configured.

The safety filter's output (fractions ``limits.*_scale`` of the one FR3 table) must be
followable by the driver's own Ruckig (``relative_dynamics_factor`` of the same table): a driver
slower than the filter lags it (and its arm trips the filter's lag hold), a driver faster than
the FR3 table is impossible by construction (factor <= 1). Checked on the parameters each node
really gets, real arm and simulation.
"""

from __future__ import annotations

import pytest
import yaml
from cdp_bringup.graph import load_graph, resolve
from cdp_core.robot.limits import FR3Limits

from franka_driver.backend import DriverConfig


def node_params(spec) -> dict:
    params: dict = {}
    for f in spec.params_files:
        data = yaml.safe_load(open(f)) or {}
        params.update((data.get(spec.name) or {}).get("ros__parameters") or {})
    params.update(spec.typed_overrides())
    return params


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
