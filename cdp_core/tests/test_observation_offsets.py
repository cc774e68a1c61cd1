"""The derived object-minus-TCP observation part: one formula for datasets, the simulator and models."""

from __future__ import annotations

import numpy as np
import pytest

from cdp_core.data.episodes import Episode, EpisodeDataset
from cdp_core.data.windows import WindowDataset
from cdp_core.deploy import StackCapabilities, deployment_problems
from cdp_core.observation import (
    ObservationLayoutError,
    observation_part,
    observation_vector,
    offset_key,
    with_derived_dims,
)
from cdp_core.sim.tasks import TASKS


def _dataset(n: int = 12) -> EpisodeDataset:
    rng = np.random.default_rng(0)
    obs = {
        "joint_pos": rng.normal(size=(n, 7)),
        "ee_pos": rng.normal(size=(n, 3)),
        "hole_pose": np.concatenate([rng.normal(size=(n, 3)), np.tile([0, 0, 0, 1.0], (n, 1))], 1),
        "gripper_width": rng.normal(size=(n, 1)),
    }
    ep = Episode(obs=obs, action=rng.normal(size=(n, 7)))
    dims = {k: v.shape[1] for k, v in obs.items()}
    return EpisodeDataset([ep], dims, 7, {"action_space": "joint_position"}, {})


def test_windows_derive_the_offset_from_the_stored_parts():
    ds = _dataset()
    keys = ["ee_pos", "hole_pose_offset", "joint_pos"]
    w = WindowDataset(ds, keys, n_obs_steps=2, horizon=4, n_action_steps=2)
    assert w.obs_dims == {"ee_pos": 3, "hole_pose_offset": 3, "joint_pos": 7}
    ep = ds.episodes[0]
    expected = ep.obs["hole_pose"][:, :3] - ep.obs["ee_pos"]
    np.testing.assert_allclose(w.flat_obs[:, 3:6], expected, rtol=1e-6)
    # the same numbers as the one builder gives the fast path and the node, step by step
    parts = {k: v[5] for k, v in ep.obs.items()}
    np.testing.assert_allclose(w.flat_obs[5], observation_vector(parts, keys), rtol=1e-6)


def test_an_offset_needs_its_object_and_the_tcp():
    parts = {"joint_pos": np.zeros(7), "hole_pose": np.zeros(7)}
    with pytest.raises(ObservationLayoutError, match="hole_pose_offset"):
        observation_part(parts, "hole_pose_offset")  # no ee_pos
    with pytest.raises(ObservationLayoutError, match="gripper_width_offset"):
        observation_part({"ee_pos": np.zeros(3), "gripper_width": np.zeros(1)}, "gripper_width_offset")
    assert "gripper_width_offset" not in with_derived_dims({"ee_pos": 3, "gripper_width": 1})
    robot_only = with_derived_dims({"ee_pos": 3, "joint_pos": 7, "ee_quat": 4})
    assert robot_only == {"ee_pos": 3, "joint_pos": 7, "ee_quat": 4}  # the robot's own parts have none
    no_tcp = _dataset()
    no_tcp.episodes[0].obs.pop("ee_pos")
    no_tcp.obs_dims.pop("ee_pos")
    with pytest.raises(ValueError, match=r"\['hole_pose_offset'\] not in dataset"):
        WindowDataset(no_tcp, ["hole_pose_offset", "joint_pos"], 2, 4, 2)


def test_every_task_and_the_contract_know_the_offset():
    for task in TASKS.values():
        key = offset_key(task.object_key)
        assert with_derived_dims(task.spec.obs_dims)[key] == 3
        meta = {"obs_keys": ["ee_pos", key], "obs_dims": {"ee_pos": 3, key: 3}, "action_dim": 7}
        caps = StackCapabilities(obs_dims=with_derived_dims(task.spec.obs_dims), action_dim=7, name="t")
        assert deployment_problems(meta, caps, task) == []
        wrong = {**meta, "obs_dims": {"ee_pos": 3, key: 2}}
        assert any(key in p for p in deployment_problems(wrong, caps, task))


def test_a_pose_has_a_derived_orientation_and_a_position_none():
    dims = with_derived_dims({"ee_pos": 3, "hole_pose": 7, "target_pos": 3})
    assert dims["hole_pose_quat"] == 4 and "target_pos_quat" not in dims
    parts = {"ee_pos": np.zeros(3), "hole_pose": np.array([0.5, 0.1, 0.06, 0.0, 0.0, 0.38, 0.92])}
    np.testing.assert_array_equal(observation_part(parts, "hole_pose_quat"), parts["hole_pose"][3:])
    with pytest.raises(ObservationLayoutError, match="target_pos_quat"):
        observation_part({"target_pos": np.zeros(3)}, "target_pos_quat")
