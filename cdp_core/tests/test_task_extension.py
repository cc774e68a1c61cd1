"""The task definition is the one extension point: every registered task offers the same hooks,
and the third task (``place_precise``, its own module) runs on the fast path like the others."""

from __future__ import annotations

import numpy as np
import pytest

from cdp_core.sim.tasks import TASKS, get_task

pytest.importorskip("franky_sim")


@pytest.mark.parametrize("name", sorted(TASKS))
def test_object_pose_and_its_inverse_round_trip(name):
    task = get_task(name)
    rng = np.random.default_rng(3)
    for _ in range(20):
        params = task.sample(rng)
        position, quat = task.object_pose(params)
        back = task.params_from_object_pose(position, quat)
        for k, v in params.items():
            np.testing.assert_allclose(back[k], v, atol=1e-12, err_msg=f"{name}.{k}")
        assert task.object_dim() == task.spec.task_obs[task.object_key] in (3, 7)
        # the flipped quaternion is the same pose
        np.testing.assert_allclose(
            task.params_from_object_pose(position, -quat).get("yaw", 0.0), params.get("yaw", 0.0), atol=1e-12
        )


@pytest.mark.parametrize("name", sorted(TASKS))
def test_episode_start_is_what_the_fast_path_resets_to(name):
    from cdp_core.sim.env import FR3TaskEnv

    env = FR3TaskEnv(name)
    env.reset(123)
    params, q0 = env.task.episode_start(123, env.home_jitter)
    np.testing.assert_allclose(env.q, q0, atol=1e-9)
    for k, v in params.items():
        np.testing.assert_array_equal(env.params[k], v)


@pytest.mark.parametrize("name", sorted(TASKS))
def test_every_task_has_a_marker_layout_with_unique_ids(name):
    layout = get_task(name).markers
    assert layout is not None
    ids = [m.marker_id for m in layout.markers]
    assert len(set(ids)) == len(ids) >= 3 and min(ids) >= 20  # the board uses ids below 20
    others = {m.marker_id for t in TASKS if t != name for m in get_task(t).markers.markers}
    assert not others & set(ids), "marker ids must not clash between tasks"


def test_place_precise_demonstrations_succeed_and_a_model_trained_on_them_fits(tmp_path):
    from cdp_core.runtime import OnnxPolicy
    from cdp_core.sim.demos import generate_demos
    from cdp_core.sim.evaluate import check_model_fits_task
    from cdp_core.testing import train_small_policy

    info = generate_demos("place_precise", tmp_path / "demos", episodes=3, seed=0, progress=False)
    assert info["success_rate"] == 1.0
    model = OnnxPolicy(train_small_policy(tmp_path / "demos", tmp_path))
    assert "pad_pose" in model.metadata["obs_keys"]
    check_model_fits_task(model.metadata, get_task("place_precise"))
