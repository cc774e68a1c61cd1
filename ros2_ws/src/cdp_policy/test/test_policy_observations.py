"""The observation the node builds from messages equals the fast path's for the same robot state."""

from __future__ import annotations


import numpy as np
import pytest

from cdp_policy.observations import ObservationBuffer, ObservationError, check_obs_keys
from cdp_ros_common.names import FINGER_NAMES, JOINT_NAMES


def feed(buf: ObservationBuffer, env, obs: dict, stamp: float, flip_quat: bool = False) -> None:
    """Give the buffer what the driver / perception would publish for the env's current state."""
    fingers = env.data.qpos[env._finger_adr]
    # names in a driver's own order (fingers first): the buffer must pick joints by name
    names = list(FINGER_NAMES) + list(JOINT_NAMES)
    buf.update_joint_state(stamp, names, [*fingers, *obs["joint_pos"]])
    q = -obs["ee_quat"] if flip_quat else obs["ee_quat"]  # same rotation, other hemisphere
    buf.update_ee_pose(stamp, obs["ee_pos"], q)
    if "target_pos" in obs:
        buf.update_object_pose(stamp, obs["target_pos"], [0.0, 0.0, 0.0, 1.0])
    else:
        hole = obs["hole_pose"]
        buf.update_object_pose(stamp, hole[:3], -hole[3:] if flip_quat else hole[3:])


@pytest.mark.parametrize("task", ["reach_precise", "peg_insert"])
@pytest.mark.parametrize("order", ["sorted", "spec", "offset"])
def test_history_equals_fast_path_rollout(task, order):
    """Drive cdp_core's own rollout; at every control step feed the buffer and compare the histories.
    ``offset``: the model also sees the derived object-minus-TCP part, built on each side."""
    from cdp_core.observation import offset_key, with_derived_dims
    from cdp_core.sim.env import FR3TaskEnv
    from cdp_core.sim.evaluate import rollout

    env = FR3TaskEnv(task)
    keys = sorted(env.spec.obs_dims) if order == "sorted" else list(env.spec.obs_dims)
    if order == "offset":
        keys.insert(1, offset_key(env.task.object_key))
        if env.task.object_dim() == 7:
            keys.append(env.task.object_key + "_quat")
    n_obs, n_exec = 3, 2
    buf = ObservationBuffer(keys, n_obs, max_obs_age_s=0.05, obs_dims=with_derived_dims(env.spec.obs_dims))
    ours, seen = [], []
    rng = np.random.default_rng(0)

    def on_step(e):
        t = 100.0 + e.time
        feed(buf, e, e.observe(), t, flip_quat=len(ours) % 2 == 1)
        ours.append(buf.sample(t))

    def policy(obs):
        seen.append(obs[0].copy())
        if len(seen) >= 5:  # end the episode after this chunk: enough steps compared
            env.time = env.spec.time_limit_s
        return np.tile(env.q + rng.normal(0, 0.02, 7), (1, 8, 1))  # move a little: frames must differ

    rollout(env, policy, keys, n_obs, n_exec, 1, seed=3, on_step=on_step)
    assert len(seen) >= 3
    for i, obs in enumerate(seen):
        res = ours[i * n_exec]
        assert res.reason == "" and res.history.dtype == np.float32
        np.testing.assert_array_equal(res.history, obs)  # bit-exact, first frame repeated at the start
    assert np.array_equal(ours[0].history[0], ours[0].history[-1])
    assert not np.array_equal(seen[1][-1], seen[2][-1])  # the state moved: the comparison means something


def test_unknown_and_mis_sized_keys_are_named():
    with pytest.raises(ObservationError, match=r"\['agent_pos'\].*cannot build; it builds"):
        check_obs_keys(["joint_pos", "agent_pos"])
    with pytest.raises(ObservationError, match=r"ee_pos \(model 2, the policy node 3\)"):
        ObservationBuffer(["ee_pos"], 2, 0.1, obs_dims={"ee_pos": 2})


def test_missing_stale_and_future_inputs_refuse_with_reason():
    buf = ObservationBuffer(["joint_pos", "ee_pos", "target_pos"], 2, max_obs_age_s=0.1)
    q = np.linspace(0, 0.6, 7)
    buf.update_joint_state(10.0, JOINT_NAMES, q)
    buf.update_ee_pose(10.0, [0.3, 0.0, 0.5], [1.0, 0.0, 0.0, 0.0])
    res = buf.sample(10.0)
    assert res.history is None and "/perception/object_pose" in res.reason and res.age_s == float("inf")
    buf.update_object_pose(9.95, [0.5, 0.0, 0.3], [0.0, 0.0, 0.0, 1.0])
    res = buf.sample(10.0)
    assert res.history is not None and res.age_s == pytest.approx(0.05)
    np.testing.assert_allclose(res.history[0, :7], q, atol=1e-7)
    # the object pose goes stale: refused, history cleared
    res = buf.sample(10.08)
    assert res.history is None and "stale" in res.reason and "/perception/object_pose" in res.reason
    assert buf.history_len == 0
    buf.update_object_pose(10.5, [0.5, 0.0, 0.3], [0.0, 0.0, 0.0, 1.0])
    buf.update_joint_state(10.0, JOINT_NAMES, q)
    buf.update_ee_pose(10.0, [0.3, 0.0, 0.5], [1.0, 0.0, 0.0, 0.0])
    res = buf.sample(10.0)
    assert res.history is None and "future" in res.reason


def test_object_pose_has_its_own_age_limit():
    """A camera pose may be older than the arm's state (frame lag + detection), but not without bound."""
    buf = ObservationBuffer(["joint_pos", "target_pos"], 1, max_obs_age_s=0.1, max_object_age_s=0.4)
    q = np.zeros(7)
    buf.update_object_pose(9.8, [0.5, 0.0, 0.3], [0.0, 0.0, 0.0, 1.0])
    buf.update_joint_state(10.0, JOINT_NAMES, q)
    assert buf.sample(10.0).history is not None  # object 0.2 s old: accepted
    res = buf.sample(10.15)
    assert res.history is None and "/joint_states" in res.reason and "/perception/object_pose" not in res.reason
    buf.update_joint_state(10.3, JOINT_NAMES, q)
    res = buf.sample(10.3)
    assert res.history is None and "/perception/object_pose (0.500 s > 0.4 s)" in res.reason
    assert "/joint_states" not in res.reason
    with pytest.raises(ValueError, match="max_object_age_s"):
        ObservationBuffer(["joint_pos"], 1, 0.1, max_object_age_s=0.0)


def test_bad_messages_are_rejected_not_stored():
    buf = ObservationBuffer(["joint_pos", "gripper_width"], 1, max_obs_age_s=0.1)
    with pytest.raises(ObservationError, match="non-finite"):
        buf.update_joint_state(1.0, JOINT_NAMES, [0, 0, np.nan, 0, 0, 0, 0])
    with pytest.raises(ObservationError, match="names but"):
        buf.update_joint_state(1.0, JOINT_NAMES, [0.0] * 6)
    with pytest.raises(ObservationError, match="not a rotation"):
        buf.update_ee_pose(1.0, [0, 0, 0], [0, 0, 0, 0])
    # arm and gripper from separate messages both count
    buf.update_joint_state(1.0, JOINT_NAMES, np.arange(7.0))
    assert "finger" in buf.sample(1.0).reason
    buf.update_joint_state(1.0, FINGER_NAMES, [0.01, 0.015])
    res = buf.sample(1.0)
    np.testing.assert_allclose(res.history[0], [*range(7), 0.025], atol=1e-7)


def test_the_node_serves_every_registered_tasks_observations():
    """A model that fits a task (fast path) is also servable by the node: no key the task gives is missing."""
    from cdp_core.sim.tasks import TASKS
    from cdp_policy.observations import node_capabilities

    from cdp_core.observation import with_derived_dims

    caps = node_capabilities()
    for name, task in TASKS.items():
        for key, dim in with_derived_dims(task.spec.obs_dims).items():
            assert caps.obs_dims.get(key) == dim, f"task {name} observes {key} ({dim}); the policy node does not"
