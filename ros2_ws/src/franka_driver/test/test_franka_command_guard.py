"""The driver's last line (CommandGuard): source by publisher GID, e-stop, independent motion checks."""

from __future__ import annotations

import numpy as np
import pytest

from franka_driver.backend import FR3
from franka_driver.command_guard import CommandGuard, GuardConfig

Q0 = np.array([0.0, -0.3, 0.0, -2.2, 0.0, 1.9, 0.785])
TCP0 = np.array([0.46, 0.0, 0.40])
FILTER, ROGUE = b"\x01" * 16, b"\x02" * 16


def guard(**kw) -> CommandGuard:
    g = CommandGuard(GuardConfig(**kw))
    assert g.update_publishers([("/safety_filter", FILTER)]) is None
    return g


def test_only_the_filters_publisher_is_accepted():
    g = guard()
    assert g.check(FILTER, Q0, None, Q0, TCP0) is None
    assert "other than /safety_filter" in g.check(ROGUE, Q0, None, Q0, TCP0)
    assert "other than" in g.check(None, Q0, None, Q0, TCP0)  # no message info: refused
    assert not g.holding  # a stray message alone is refused, it does not latch


def test_nothing_is_accepted_before_the_filter_is_on_the_graph():
    g = CommandGuard(GuardConfig())
    assert "not (or not alone)" in g.check(FILTER, Q0, None, Q0, TCP0)


@pytest.mark.parametrize(
    "endpoints, words",
    [
        ([("/safety_filter", FILTER), ("/rogue", ROGUE)], "/rogue"),
        ([("/safety_filter", FILTER), ("/safety_filter", ROGUE)], "second publisher under that name"),
        ([("/ns/safety_filter", ROGUE)], "/ns/safety_filter"),
    ],
)
def test_a_second_publisher_latches_a_hold_until_it_is_gone_and_reset(endpoints, words):
    g = guard()
    fault = g.update_publishers(endpoints)
    assert fault is not None and words in fault and g.holding
    assert g.check(FILTER, Q0, None, Q0, TCP0) is not None  # even the filter is refused now
    ok, why = g.reset()
    assert not ok and "still" in why
    g.update_publishers([("/safety_filter", FILTER)])
    assert g.holding  # gone is not enough: someone must reset
    assert g.reset()[0]
    assert g.check(FILTER, Q0, None, Q0, TCP0) is None


def test_estop_is_latched_in_the_driver():
    g = guard()
    g.estop()
    assert "e-stop" in g.check(FILTER, Q0, None, Q0, TCP0)
    assert g.reset()[0] and g.check(FILTER, Q0, None, Q0, TCP0) is None


def test_step_limit_follows_the_time_between_commands():
    g = guard()
    assert g.check(FILTER, Q0, None, Q0, TCP0, stamp=10.0) is None
    # 3 filter ticks apart (the subscription dropped two under load): 0.058 rad on joint 6 is fine
    q = Q0 + np.r_[np.zeros(5), 0.058, 0.0]
    assert g.check(FILTER, q, None, Q0, TCP0, stamp=10.03) is None
    # but not in one tick
    why = g.check(FILTER, q + np.r_[np.zeros(5), 0.06, 0.0], None, Q0, TCP0, stamp=10.04)
    assert why is not None and "steps" in why and g.holding


@pytest.mark.parametrize(
    "change, words",
    [
        (lambda q, dq: (q, np.r_[np.asarray(FR3.v_max[:1]) + 0.1, np.zeros(6)]), "velocity"),
        (lambda q, dq: (q + np.r_[0.04, np.zeros(6)], None), "steps"),
    ],
)
def test_motion_checks_latch_a_fault(change, words):
    g = guard()
    assert g.check(FILTER, Q0, None, Q0, TCP0) is None
    q, dq = change(Q0.copy(), None)
    why = g.check(FILTER, q, dq, Q0, TCP0)
    assert why is not None and words in why and g.holding


def test_deviation_from_the_measured_arm_and_box_are_checked():
    g = guard()
    far = Q0 + np.r_[0.0, 0.31, np.zeros(5)]
    assert "from the measured arm" in g.check(FILTER, far, None, Q0, TCP0)
    assert not g.holding  # refused, not latched: the filter's resync brings its output back
    assert g.check(FILTER, far, None, far - 0.01, TCP0) is None  # near the arm again: taken
    g = guard()
    assert "workspace box" in g.check(FILTER, Q0, None, Q0, np.array([0.46, 0.0, 0.01]))
    g = guard()
    assert g.check(FILTER, Q0, None, Q0, np.array([0.46, 0.0, 0.027])) is None  # within the tolerance


def test_empty_source_name_accepts_any_publisher_for_bench_tests():
    g = CommandGuard(GuardConfig(command_source_node=""))
    g.update_publishers([("/a", FILTER), ("/b", ROGUE)])
    assert g.check(ROGUE, Q0, None, Q0, TCP0) is None and not g.holding


def test_a_publisher_not_yet_named_by_discovery_is_not_believed_and_only_later_foreign():
    from cdp_ros_common.sole_publisher import SolePublisher

    s = SolePublisher("/franka_driver", unknown_grace_s=3.0)
    pending = [("_NODE_NAMESPACE_UNKNOWN_/_NODE_NAME_UNKNOWN_", ROGUE)]
    assert s.update(pending, now=0.0) == [] and not s.accepts(ROGUE)
    assert s.update(pending + [("/franka_driver", FILTER)], now=1.0) == []  # discovery catching up
    assert s.accepts(FILTER) and not s.accepts(ROGUE)
    assert s.update(pending + [("/franka_driver", FILTER)], now=3.5) != []  # stayed nameless: foreign
