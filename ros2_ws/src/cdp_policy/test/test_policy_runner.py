"""PolicyRunner: start-up refusals, receding-horizon timing, dispersion monitor, stale inputs, fast-path equality."""

from __future__ import annotations


import numpy as np
import pytest

from cdp_policy.runner import PolicyConfig, PolicyRunner, PolicyStartError
from cdp_ros_common.names import FINGER_NAMES, JOINT_NAMES

from model_factory import TOY_MODEL

HOME = [0.0, -0.3, 0.0, -2.2, 0.0, 1.9, 0.785]


def make(model, **kw) -> PolicyRunner:
    return PolicyRunner(PolicyConfig(model_path=str(model), seed=kw.pop("seed", 0), **kw))


def feed(r: PolicyRunner, t: float, q=HOME) -> None:
    r.obs.update_joint_state(t, JOINT_NAMES + FINGER_NAMES, [*q, 0.04, 0.04])
    r.obs.update_ee_pose(t, [0.31, 0.0, 0.49], [1.0, 0.0, 0.0, 0.0])
    r.obs.update_object_pose(t, [0.5, 0.1, 0.3], [0.0, 0.0, 0.0, 1.0])


# --- start-up refusals -------------------------------------------------------------------------
def test_refuses_missing_corrupt_and_unset_model(tmp_path):
    with pytest.raises(PolicyStartError, match="model file not found"):
        make(tmp_path / "nope.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07this is not a protobuf" * 10)
    with pytest.raises(PolicyStartError, match="corrupt or not an ONNX model"):
        make(bad)
    with pytest.raises(PolicyStartError, match="model_path is not set"):
        PolicyRunner(PolicyConfig())


def test_refuses_model_that_does_not_fit(fr3_model, tmp_path):
    # the 2-D toy model: 2 actions, observes agent_pos
    with pytest.raises(PolicyStartError, match=r"cannot build.*model has action_dim 2, the policy node sends 7"):
        make(TOY_MODEL)
    with pytest.raises(
        PolicyStartError,
        match=r"model observes \['target_pos'\], not in expected_obs_keys.*"
        r"\['hole_pose'\] are not observed",
    ):
        make(fr3_model, expected_obs_keys=("joint_pos", "ee_pos", "ee_quat", "hole_pose", "gripper_width"))
    # the right keys in another order are fine: the model's order is used
    r = make(fr3_model, expected_obs_keys=("joint_pos", "ee_pos", "ee_quat", "target_pos", "gripper_width"))
    assert r.metadata["obs_keys"] == ["ee_pos", "ee_quat", "gripper_width", "joint_pos", "target_pos"]
    with pytest.raises(PolicyStartError, match="n_action_steps 8 does not fit"):
        make(fr3_model, n_action_steps=8)
    with pytest.raises(PolicyStartError, match="FooExecutionProvider"):
        make(fr3_model, providers=("FooExecutionProvider",))
    # a sidecar from another export: the model and its metadata disagree
    side = tmp_path / "m.json"
    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(fr3_model.read_bytes())
    side.write_text(fr3_model.with_suffix(".json").read_text().replace('"horizon": 8', '"horizon": 16'))
    with pytest.raises(PolicyStartError, match=r"sidecar metadata disagrees.*horizon"):
        make(onnx)


@pytest.fixture(scope="module")
def ee_model(tmp_path_factory):
    from model_factory import make_fr3_model

    return make_fr3_model(tmp_path_factory.mktemp("ee"), episodes=1, steps=4, action_space="ee_pose")


def test_tcp_pose_model_is_executed_as_the_fast_path_executes_it(ee_model):
    """A TCP-pose model's chunks leave the runner as joint targets, computed by the fast path's own
    executor along the executed actions: the same joint targets the fast path tracks."""
    from cdp_core.runtime import OnnxPolicy
    from cdp_core.sim.env import FR3TaskEnv
    from cdp_core.sim.evaluate import rollout, seeded_policy

    seed, steps = 5, 14
    env = FR3TaskEnv("reach_precise", action_space="ee_pose")
    model = OnnxPolicy(ee_model)
    m = model.metadata
    assert m["action_space"] == "ee_pose"
    targets: list[np.ndarray] = []
    inner = env.executor.joint_targets

    def recording_targets(a):
        q = inner(a)
        targets.append(q.copy())
        if len(targets) >= steps:
            env.time = env.spec.time_limit_s
        return q

    env.executor.joint_targets = recording_targets  # type: ignore[method-assign]
    rollout(env, seeded_policy(model, seed), m["obs_keys"], m["n_obs_steps"], m["n_action_steps"], 1, seed)

    r = make(ee_model, dispersion_samples=1, seed=seed + 1)  # the same noise stream as seeded_policy
    joint_env = FR3TaskEnv("reach_precise")  # the runner's output is joint targets: track them directly
    obs = joint_env.reset(seed)
    queue: list[np.ndarray] = []
    ours = []
    for k in range(steps):
        t = 1000.0 + k * r.dt
        fingers = joint_env.data.qpos[joint_env._finger_adr]
        r.obs.update_joint_state(t, JOINT_NAMES + FINGER_NAMES, [*obs["joint_pos"], *fingers])
        r.obs.update_ee_pose(t, obs["ee_pos"], obs["ee_quat"])
        r.obs.update_object_pose(t, obs["target_pos"], [0.0, 0.0, 0.0, 1.0])
        d = r.tick(t)
        if d is not None:
            queue = list(d.positions)
        action = queue.pop(0)
        ours.append(action)
        obs, _ = joint_env.step(action)
    np.testing.assert_allclose(np.array(ours), np.array(targets[:steps]), atol=1e-6)
    # with the dispersion monitor: every draw becomes joint targets, the spread is in radians
    r2 = make(ee_model, dispersion_samples=4)
    obs = joint_env.reset(seed)
    r2.obs.update_joint_state(1.0, JOINT_NAMES + FINGER_NAMES, [*obs["joint_pos"], 0.04, 0.04])
    r2.obs.update_ee_pose(1.0, obs["ee_pos"], obs["ee_quat"])
    r2.obs.update_object_pose(1.0, obs["target_pos"], [0.0, 0.0, 0.0, 1.0])
    d = r2.tick(1.0)
    assert d.draws.shape == (4, r2.n_exec, 7) and 0 < d.dispersion < 0.5
    np.testing.assert_allclose(d.positions[0], d.draws[0, 0], atol=1e-12)
    with pytest.raises(PolicyStartError, match="temporal_ensembling works on joint targets"):
        make(ee_model, temporal_ensembling=True)


def test_warns_on_a_model_that_failed_its_convergence_gate(fr3_model, tmp_path):
    """Served (the operator decides) but never silently: the warning names the failed gate."""
    import json

    import onnx

    from cdp_core.model_format import METADATA_KEY, sidecar_path

    assert not any("convergence gate" in w for w in make(fr3_model).warnings)
    model = onnx.load(str(fr3_model))
    meta = json.loads(next(p.value for p in model.metadata_props if p.key == METADATA_KEY))
    meta["convergence_gate"] = {"passed": False, "action_error_mm": 9.9, "scatter_mm": 8.6}
    onnx.helper.set_model_props(model, {METADATA_KEY: json.dumps(meta)})
    bad = tmp_path / "bad.onnx"
    onnx.save(model, str(bad))
    sidecar_path(bad).write_text(json.dumps(meta))
    warnings = make(bad).warnings
    assert any("FAILED its convergence gate" in w and "8.6 mm" in w for w in warnings)


# --- timing -------------------------------------------------------------------------------------
def test_receding_horizon_chunks_every_n_ticks_with_due_times(fr3_model):
    r = make(fr3_model)
    assert (r.rate_hz, r.n_exec, r.start) == (10.0, 4, 1)
    t0, planned = 50.0, []
    for k in range(10):
        t = t0 + k * r.dt
        feed(r, t)
        d = r.tick(t)
        if d is not None:
            planned.append(k)
            assert d.t_obs == t and d.first_index == 0 and not d.missed_deadline
            np.testing.assert_allclose(d.due_times, t + r.dt * np.arange(4))
            np.testing.assert_array_equal(d.positions, r.last_actions[0, 1:5])  # draw 0, from action_start_index
    assert planned == [0, 4, 8]
    assert r.stats.chunks == 3 and r.stats.missed_deadlines == 0


def test_late_actions_are_dropped_and_deadlines_counted(fr3_model):
    # a 1 MHz control rate: any real inference outlasts several ticks
    r = make(fr3_model, control_rate_hz=1e6)
    assert "differs from the model's rate_hz" in r.warnings[0]
    feed(r, 7.0)
    d = r.tick(7.0)
    assert d.missed_deadline and r.stats.missed_deadlines == 1
    periods_over = int(np.sum(7.0 + d.dt * np.arange(1, 5) <= 7.0 + d.latency_s))
    assert d.first_index == periods_over >= 1
    assert len(d.positions) == 4 - periods_over and r.stats.dropped_actions == periods_over
    assert np.all(d.due_times + d.dt > 7.0 + d.latency_s)


def test_stale_observation_gives_no_chunk_and_restarts_schedule(fr3_model):
    r = make(fr3_model, max_obs_age_s=0.15)
    assert r.tick(1.0) is None and "no message yet" in r.stats.last_reason
    feed(r, 1.0)
    assert r.tick(1.0) is not None
    assert r.tick(1.1) is None and r.stats.last_reason == ""  # fresh enough, not a planning tick
    assert r.tick(1.2) is None and "stale" in r.stats.last_reason and "/joint_states" in r.stats.last_reason
    assert r.stats.refused_ticks == 2 and r.obs.history_len == 0
    feed(r, 1.3)
    d = r.tick(1.3)  # plans at once from a fresh history, not at the old schedule's tick 4
    assert d is not None and r.obs.history_len == 2
    np.testing.assert_array_equal(r._obs_batch[0, 0], r._obs_batch[0, 1])


# --- dispersion monitor -------------------------------------------------------------------------
@pytest.mark.parametrize("warn,hold,scale", [(1e9, 1e9, 1.0), (1e-9, 1e9, 0.3), (1e-9, 1e-9, 0.0)])
def test_dispersion_monitor_requests_slow_and_hold(fr3_model, warn, hold, scale):
    r = make(fr3_model, dispersion_warn_rad=warn, dispersion_hold_rad=hold, slow_scale=0.3)
    feed(r, 3.0)
    d = r.tick(3.0)
    assert d.speed_scale == scale and r.stats.last_speed_scale == scale
    assert d.dispersion > 0


def test_dispersion_matches_cdp_core_definition(fr3_model):
    """Same numbers as cdp_core.evaluate.action_dispersion's chunk_std over the executed steps."""
    from cdp_core.evaluate import action_dispersion

    r = make(fr3_model, dispersion_samples=4, seed=11)
    feed(r, 3.0)
    d = r.tick(3.0)
    obs = r._obs_batch[:1].copy()
    noise = np.random.default_rng(11).standard_normal((4, 8, 7), dtype=np.float32)
    executed = r.model(np.repeat(obs, 4, 0), noise)[:, 1:5]
    np.testing.assert_allclose(executed[0], d.chunk, atol=1e-6)  # draw 0 is what runs

    def sample(o, _noise):
        return executed

    ref = action_dispersion(sample, obs, (8, 7), seeds=4)
    assert d.dispersion == pytest.approx(ref["chunk_std"], rel=1e-5)
    assert d.dispersion_max_joint >= d.dispersion


def test_single_draw_disables_monitor(fr3_model):
    r = make(fr3_model, dispersion_samples=1, dispersion_warn_rad=0.0, dispersion_hold_rad=0.0)
    feed(r, 3.0)
    d = r.tick(3.0)
    assert np.isnan(d.dispersion) and d.speed_scale == 1.0


def test_temporal_ensembling_averages_overlapping_chunks(fr3_model):
    m = 0.5
    r = make(fr3_model, n_action_steps=1, temporal_ensembling=True, ensemble_decay=m)
    raw = []
    for k in range(3):
        feed(r, 2.0 + 0.1 * k, q=np.add(HOME, 0.05 * k))
        d = r.tick(2.0 + 0.1 * k)
        raw.append(r.last_actions[0].copy())
        preds = [raw[p][1 + k - p] for p in range(k + 1)]  # oldest first
        w = np.exp(-m * np.arange(k + 1))
        np.testing.assert_allclose(d.chunk[0], np.tensordot(w / w.sum(), np.stack(preds), 1), atol=1e-6)
    assert not np.allclose(raw[0][3], raw[2][1])  # different chunks: averaging is not a no-op


# --- same behaviour as the fast path ----------------------------------------------------------
def test_runner_reproduces_fast_path_rollout(fr3_model):
    """With one draw and the same noise seed, ticking the runner on the env's state executes exactly
    the actions cdp_core's rollout executes."""
    from cdp_core.runtime import OnnxPolicy
    from cdp_core.sim.env import FR3TaskEnv
    from cdp_core.sim.evaluate import rollout, seeded_policy

    seed, steps = 5, 14
    env = FR3TaskEnv("reach_precise")
    model = OnnxPolicy(fr3_model)
    m = model.metadata
    fast: list[np.ndarray] = []
    policy = seeded_policy(model, seed)
    start, n = m["action_start_index"], m["n_action_steps"]

    def recording_policy(o):
        chunk = policy(o)
        fast.extend(chunk[0, start : start + n])  # what rollout executes of this chunk
        if len(fast) >= steps:
            env.time = env.spec.time_limit_s  # end the episode: enough steps compared
        return chunk

    rollout(env, recording_policy, m["obs_keys"], m["n_obs_steps"], n, start, seed)

    r = make(fr3_model, dispersion_samples=1, seed=seed + 1)
    obs = env.reset(seed)
    queue: list[np.ndarray] = []
    ours = []
    for k in range(steps):
        t = 1000.0 + k * r.dt
        fingers = env.data.qpos[env._finger_adr]
        r.obs.update_joint_state(t, JOINT_NAMES + FINGER_NAMES, [*obs["joint_pos"], *fingers])
        r.obs.update_ee_pose(t, obs["ee_pos"], obs["ee_quat"])
        r.obs.update_object_pose(t, obs["target_pos"], [0.0, 0.0, 0.0, 1.0])
        d = r.tick(t)
        if d is not None:
            assert d.first_index == 0
            queue = list(d.positions)
        action = queue.pop(0)
        ours.append(action)
        obs, _ = env.step(action)
    np.testing.assert_allclose(np.array(ours), np.array(fast[:steps]), atol=1e-6)
