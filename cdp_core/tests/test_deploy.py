"""The one deployability check (cdp_core.deploy): every problem named, the task's and the consumer's."""

from __future__ import annotations

import pytest

from cdp_core.deploy import StackCapabilities, check_deployable, deployment_problems
from cdp_core.runtime import ModelContractError, PROVIDER_ORDER, preferred_providers
from cdp_core.sim.tasks import get_task

NODE = StackCapabilities(obs_dims={"joint_pos": 7, "hole_pose": 7, "target_pos": 3}, name="the node")


def meta(**kw):
    m = {
        "obs_keys": ["joint_pos", "target_pos"],
        "obs_dims": {"joint_pos": 7, "target_pos": 3},
        "action_dim": 7,
        "action_space": "joint_position",
        "rate_hz": 10.0,
    }
    m.update(kw)
    return m


def test_a_fitting_model_has_no_problems():
    assert deployment_problems(meta(), NODE) == []
    check_deployable(meta(), NODE, get_task("reach_precise"))


def test_every_problem_is_named_at_once():
    bad = meta(
        obs_keys=["joint_pos", "agent_pos", "hole_pose"],
        obs_dims={"joint_pos": 6, "agent_pos": 2, "hole_pose": 7},
        action_dim=2,
        action_space="ee_pose",
        rate_hz=20.0,
    )
    problems = deployment_problems(bad, NODE, get_task("reach_precise"))
    text = "; ".join(problems)
    assert "['agent_pos'], which the node cannot build" in text
    assert "joint_pos (model 6, the node 7)" in text
    assert "action_dim 2" in text and "'ee_pose'" in text
    assert "['hole_pose'], which task reach_precise does not provide" in text
    assert "trained at 20.0 Hz" in text
    with pytest.raises(ModelContractError, match="MODEL does not fit task reach_precise on the node: "):
        check_deployable(bad, NODE, get_task("reach_precise"), source="MODEL")


def test_a_problem_is_reported_once_when_consumer_and_task_agree():
    caps = StackCapabilities(obs_dims=dict(get_task("reach_precise").spec.obs_dims), name="this path")
    problems = deployment_problems(
        meta(obs_keys=["agent_pos"], obs_dims={"agent_pos": 2}), caps, get_task("reach_precise")
    )
    assert len(problems) == 1, problems


def test_one_provider_order():
    assert preferred_providers(["CPUExecutionProvider", "CUDAExecutionProvider"]) == [
        "CUDAExecutionProvider",
        "CPUExecutionProvider",
    ]
    assert PROVIDER_ORDER[-1] == "CPUExecutionProvider"
    with pytest.raises(ModelContractError, match="none of the providers"):
        preferred_providers(["CPUExecutionProvider"], ("CUDAExecutionProvider",))
