"""Observation quaternions stay continuous around the tool-down orientation (where w = 0)."""

import numpy as np
import pytest

from cdp_core.orientation import QuaternionError, canonical_tool_quat


def _about_x(angle):
    return np.array([np.sin(angle / 2), 0.0, 0.0, np.cos(angle / 2)])


def test_tool_down_is_continuous_across_w_zero():
    # Rotations about x through 180 degrees: w changes sign, the observation must not jump.
    angles = np.linspace(np.pi - 0.05, np.pi + 0.05, 101)
    qs = np.array([canonical_tool_quat(_about_x(a)) for a in angles])
    assert np.max(np.abs(np.diff(qs, axis=0))) < 1e-2
    assert (qs[:, 0] > 0.99).all()


def test_sign_is_a_choice_not_a_rotation_change():
    rng = np.random.default_rng(0)
    for q in rng.normal(size=(50, 4)):
        a, b = canonical_tool_quat(q), canonical_tool_quat(-q)
        np.testing.assert_allclose(a, b)
        assert abs(np.linalg.norm(a) - 1) < 1e-12


@pytest.mark.parametrize("bad", [[0, 0, 0, 0], [np.nan, 0, 0, 1]])
def test_non_rotations_are_refused(bad):
    with pytest.raises(QuaternionError, match="not a rotation"):
        canonical_tool_quat(np.array(bad, dtype=float))
