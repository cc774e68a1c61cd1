"""Perception in the loop on the fast path: the policy sees the object where the camera says it is.

:class:`PerceivedTaskEnv` wraps cdp_core's ``FR3TaskEnv``. After every reset and control step it
renders the simulated camera (the arm and the object where the simulation has them), runs the
same :class:`ObjectTracker` as ``perception_node`` with a calibration file's intrinsics and
hand-eye transform, and replaces the task's ground-truth observation (``hole_pose`` /
``target_pos``) with the perceived one. Success is still judged on the ground truth, so a policy
that inserts the peg where perception put the hole fails if perception was wrong.

:func:`evaluate` runs the same seeded episodes twice, once on ground truth and once on
perception, for an exported ONNX policy or the scripted demonstrator (which plans from the pose
it is given: a direct measure of whether perception is accurate enough for the task).
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .calibration.result import Calibration, load
from .detector import EstimatorConfig, ObjectPoseEstimator, ObjectTracker
from .geometry import transform_to_pose
from .sim_camera import CameraScene, CameraSpec, SceneRenderer, use_offscreen_gl

SCRIPTED = "scripted"


class ObjectNotSeen(RuntimeError):
    """The camera never saw the object at the start of an episode: the policy has nothing to act on."""


@dataclass
class PerceptionStats:
    frames: int = 0
    detections: int = 0
    #: Position error (mm) of every perceived pose against the ground truth.
    errors_mm: list[float] = field(default_factory=list)


class PerceivedTaskEnv:
    """An FR3TaskEnv whose task observation comes from the simulated camera and the object tracker."""

    def __init__(
        self, env: Any, calibration: Calibration, plane_z: float | None = None, camera: CameraSpec | None = None
    ):
        he = calibration.hand_eye
        if he is None:
            raise ValueError("perception in the loop needs a calibration with a hand-eye transform")
        self.env = env
        self.calibration = calibration
        self.eye_in_hand = he.mode == "eye_in_hand"
        if camera is None:
            camera = CameraSpec(calibration.intrinsics.width, calibration.intrinsics.height)
            if self.eye_in_hand:
                from .sim_camera import DEFAULT_EYE_IN_HAND

                camera = CameraSpec(camera.width, camera.height, mount="hand", mount_T_cam=DEFAULT_EYE_IN_HAND.copy())
        self.scene = CameraScene(env.task.spec.name, camera)
        assert self.scene.object is not None
        self.renderer = SceneRenderer(self.scene.model, width=camera.width, height=camera.height)
        self.plane_z = plane_z
        self.key = env.task.object_key
        self.tracker: ObjectTracker | None = None
        self.perceived: np.ndarray | None = None
        self.stats = PerceptionStats()

    def __getattr__(self, name: str) -> Any:  # task, params, time, tip_position, spec, q ... of the real env
        return getattr(self.env, name)

    def _new_tracker(self) -> ObjectTracker:
        intr, he = self.calibration.intrinsics, self.calibration.hand_eye
        assert he is not None and self.scene.object is not None
        est = ObjectPoseEstimator(self.scene.object, intr.camera_matrix, intr.dist_coeffs, EstimatorConfig())
        return ObjectTracker(est, he.transform, self.eye_in_hand, plane_z=self.plane_z)

    def perceive(self) -> dict[str, Any] | None:
        """Render the current state and track the object; returns the perceived task parameters or None."""
        env, scene = self.env, self.scene
        truth = env.task.task_observation(env.params)[self.key]
        scene.set_joints(env.q)
        scene.set_fingers(float(env.robot.hand_width) / 2)
        scene.set_object_pose(truth[:3], truth[3:7] if truth.shape[0] >= 7 else np.array([0.0, 0.0, 0.0, 1.0]))
        scene.forward()
        img = self.renderer.render(scene.data)
        assert self.tracker is not None
        tracked = self.tracker.update(img, env.time, scene.base_T_tcp() if self.eye_in_hand else None)
        self.stats.frames += 1
        if tracked is None:
            return None
        self.stats.detections += 1
        p, q = transform_to_pose(tracked.base_T_object)
        params = env.task.params_from_object_pose(p, q)
        self.perceived = env.task.task_observation(params)[self.key]
        self.stats.errors_mm.append(1000 * float(np.linalg.norm(self.perceived[:3] - truth[:3])))
        return params

    def _replace(self, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.perceive()
        if self.perceived is None:
            raise ObjectNotSeen(f"the camera has not seen the {self.env.task.spec.name} object")
        # the last good pose stays while the arm hides the markers (what perception_node's topic does)
        return {**obs, self.key: self.perceived.astype(obs[self.key].dtype)}

    def reset(self, seed: int) -> dict[str, np.ndarray]:
        obs = self.env.reset(seed)
        self.tracker, self.perceived = self._new_tracker(), None
        return self._replace(obs)

    def step(self, joint_targets: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        obs, info = self.env.step(joint_targets)
        return self._replace(obs), info

    def close(self) -> None:
        self.renderer.close()


# --- evaluation ----------------------------------------------------------------------------


@dataclass
class LoopConfig:
    task: str = "peg_insert"
    #: An exported .onnx policy, or "scripted" for the scripted demonstrator.
    policy: str = SCRIPTED
    calibration_file: str = "calibration/sim_eye_to_hand.yaml"
    #: Planar fit height; None = the object layout's resting height (free 6-DOF when it has none);
    #: NaN = always free 6-DOF.
    plane_z: float | None = None


def _scripted_episode(env: Any, seed: int) -> dict[str, Any]:
    """The scripted demonstrator, planning from the object pose ``env`` reports (perceived or true)."""
    from cdp_core.sim.scripted import plan_demo

    obs = env.reset(seed)
    truth = env.params
    key = env.task.object_key
    given = obs[key].astype(np.float64)
    planned = env.task.params_from_object_pose(
        given[:3], given[3:7] if given.shape[0] >= 7 else np.array([0.0, 0.0, 0.0, 1.0])
    )
    inner = getattr(env, "env", env)
    inner.params = {**truth, **planned}  # the plan sees only what it was told ...
    try:
        plan = plan_demo(inner, np.random.default_rng(seed + 1_000_000))
    finally:
        inner.params = truth  # ... success is judged on the truth
    info: dict[str, Any] = {"success": False}
    for target in plan:
        _, info = env.step(target)
        if info["done"]:
            break
    err_mm = 1000 * env.task.tip_error(env.tip_position(), env.params)
    return {
        "seed": seed,
        "success": bool(info["success"]),
        "final_error_mm": err_mm,
        "time_to_success_s": env.time if info["success"] else None,
    }


_W: dict[str, Any] = {}


def _init(cfg: LoopConfig, perception: bool) -> None:
    use_offscreen_gl()
    from cdp_core.sim.env import FR3TaskEnv

    model = None
    if cfg.policy != SCRIPTED:
        from cdp_core.runtime import OnnxPolicy

        model = OnnxPolicy(cfg.policy, intra_op_threads=1)
    env = FR3TaskEnv(cfg.task, action_space=model.metadata["action_space"] if model else "joint_position")
    if perception:
        import atexit

        env = PerceivedTaskEnv(env, load(cfg.calibration_file), resolve_plane_z(cfg))
        atexit.register(env.close)  # free the GL context before the interpreter tears OpenGL down
    _W.update(env=env, cfg=cfg, model=model)


def resolve_plane_z(cfg: LoopConfig) -> float | None:
    from .markers import object_model

    if cfg.plane_z is None:
        return object_model(cfg.task).resting_z
    return None if np.isnan(cfg.plane_z) else float(cfg.plane_z)


def _episode(seed: int) -> dict[str, Any]:
    env, model = _W["env"], _W["model"]
    stats = getattr(env, "stats", None)
    n_err = len(stats.errors_mm) if stats else 0
    try:
        if model is None:
            row = _scripted_episode(env, seed)
        else:
            from cdp_core.sim.evaluate import rollout, seeded_policy

            m = model.metadata
            row = rollout(
                env,
                seeded_policy(model, seed),
                m["obs_keys"],
                m["n_obs_steps"],
                m["n_action_steps"],
                m["action_start_index"],
                seed,
            )
    except ObjectNotSeen as exc:
        row = {
            "seed": seed,
            "success": False,
            "final_error_mm": float("nan"),
            "time_to_success_s": None,
            "failure": str(exc),
        }
    if stats:
        errs = stats.errors_mm[n_err:]
        row["perception_error_mm_mean"] = float(np.mean(errs)) if errs else float("nan")
        row["perception_error_mm_max"] = float(np.max(errs)) if errs else float("nan")
        row["detection_rate"] = stats.detections / max(stats.frames, 1)
    return row


def run_condition(
    cfg: LoopConfig, perception: bool, seeds: list[int], workers: int = 0, progress: bool = True
) -> list[dict[str, Any]]:
    """Seeded episodes on ground truth (``perception`` False) or with perception in the loop."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    from tqdm.auto import tqdm

    workers = workers or max(1, min(len(seeds), os.cpu_count() or 1))
    desc = f"{cfg.task} {'perception' if perception else 'ground truth'}"
    if workers == 1:
        _init(cfg, perception)
        return [_episode(s) for s in tqdm(seeds, desc=desc, disable=not progress)]
    with ProcessPoolExecutor(
        workers, mp_context=mp.get_context("spawn"), initializer=_init, initargs=(cfg, perception)
    ) as pool:
        return list(tqdm(pool.map(_episode, seeds), total=len(seeds), desc=desc, disable=not progress))


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    from cdp_core.sim.evaluate import wilson_interval

    wins = sum(r["success"] for r in rows)
    lo, hi = wilson_interval(wins, len(rows))
    out: dict[str, Any] = {
        "episodes": len(rows),
        "success_rate": wins / len(rows),
        "ci95": [lo, hi],
        "final_error_mm_median": float(np.nanmedian([r["final_error_mm"] for r in rows])),
        "not_seen": sum("failure" in r for r in rows),
    }
    if rows and "perception_error_mm_mean" in rows[0]:
        out["perception_error_mm_mean"] = float(np.nanmean([r["perception_error_mm_mean"] for r in rows]))
        out["perception_error_mm_max"] = float(np.nanmax([r["perception_error_mm_max"] for r in rows]))
        out["detection_rate"] = float(np.mean([r["detection_rate"] for r in rows]))
    return out


def evaluate(cfg: LoopConfig, seeds: list[int], workers: int = 0, progress: bool = True) -> dict[str, Any]:
    """Ground truth vs perception on the same seeds; per-condition summaries, rows and paired counts."""
    if cfg.policy != SCRIPTED:
        from cdp_core.runtime import OnnxPolicy
        from cdp_core.sim.evaluate import check_model_fits_task
        from cdp_core.sim.tasks import get_task

        check_model_fits_task(OnnxPolicy(cfg.policy, intra_op_threads=1).metadata, get_task(cfg.task))
    load(cfg.calibration_file)  # a bad calibration fails here, before any process starts
    t0 = time.perf_counter()
    truth = run_condition(cfg, False, seeds, workers, progress)
    perceived = run_condition(cfg, True, seeds, workers, progress)
    both = sum(a["success"] and b["success"] for a, b in zip(truth, perceived))
    return {
        "config": asdict(cfg),
        "plane_z": resolve_plane_z(cfg),
        "seeds": seeds,
        "ground_truth": summarize(truth),
        "perception": summarize(perceived),
        "paired": {
            "both": both,
            "truth_only": sum(a["success"] for a in truth) - both,
            "perception_only": sum(b["success"] for b in perceived) - both,
        },
        "wall_s": time.perf_counter() - t0,
        "rows": {"ground_truth": truth, "perception": perceived},
    }
