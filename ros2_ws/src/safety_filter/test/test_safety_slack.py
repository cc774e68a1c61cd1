"""Constraint slack: set at sync, only ever shrinks, and every constraint is named."""

import numpy as np
import pytest

from safety_filter.slack import Slack


def test_slack_starts_at_the_violation_and_only_shrinks():
    s = Slack({"box": 2, "tilt": 1})
    s.reset({"box": np.array([0.02, -0.1]), "tilt": 0.0})
    assert not s.exceeded({"box": np.array([0.02, 0.0]), "tilt": 0.0}, "box")  # as far out as at sync: allowed
    assert s.exceeded({"box": np.array([0.021, 0.0]), "tilt": 0.0}, "box")  # further out: refused
    s.tighten({"box": np.array([0.005, -0.2]), "tilt": -1.0})  # moved back in
    assert s.exceeded({"box": np.array([0.01, 0.0]), "tilt": 0.0}, "box")  # no way back out
    s.tighten({"box": np.array([0.03, 0.0]), "tilt": 0.0})  # tightening never loosens
    np.testing.assert_allclose(s.value("box"), [0.005, 0.0])
    assert s.exceeded({"box": np.zeros(2), "tilt": 1e-6}, "tilt")


def test_every_constraint_must_be_given():
    s = Slack({"box": 6, "tilt": 1})
    with pytest.raises(KeyError, match="constraints are"):
        s.reset({"box": np.zeros(6)})
