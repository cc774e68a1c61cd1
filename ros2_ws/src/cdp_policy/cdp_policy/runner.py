"""The policy at the control rate: observation history, ONNX sampler, chunk timing, dispersion monitor.

No rclpy here: :class:`PolicyRunner` is what the node calls from its control timer and what
the tests and the benchmark construct directly.

Semantics are the fast path's (``cdp_core.sim.evaluate.rollout``): one observation frame per
control tick (1 / rate_hz apart), the first frame repeated while the history is short; every
``n_action_steps`` ticks a new chunk is sampled and ``actions[action_start_index :
action_start_index + n_action_steps]`` are executed, action k due at ``t_obs + k * dt``.
As in the fast path, each action is a joint target *held for one control period*, so an
action counts as late (and is dropped) once its period ``[t_obs + k dt, t_obs + (k+1) dt)``
has ended before inference finished; with inference faster than a tick nothing is dropped.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np
from cdp_core.runtime import PROVIDER_ORDER
from cdp_ros_common.names import AGENTVIEW_IMAGE, camera_image_topic

from .camera_frames import CameraFrameError, CameraFrames, parse_camera_topics
from .observations import ObservationBuffer, node_capabilities

#: Sentinel for ``expected_obs_keys``: accept whatever the model observes (if the node can build it).
ANY_OBS_KEYS = "*"


class PolicyStartError(RuntimeError):
    """The policy cannot start: missing / corrupt model, contract mismatch, bad configuration."""


@dataclass
class PolicyConfig:
    """Settings of the policy node (one ROS parameter per field; see cdp_ros_common.params)."""

    #: Exported ONNX policy (``cdp export``); its JSON sidecar is checked too when present.
    model_path: str = ""
    #: Control ticks per second; 0 = the model's ``rate_hz`` (what it was trained at).
    control_rate_hz: float = 0.0
    #: Actions executed per chunk before replanning; 0 = the model's ``n_action_steps``.
    n_action_steps: int = 0
    #: ACT-style temporal ensembling of overlapping chunks (most useful with n_action_steps = 1).
    temporal_ensembling: bool = False
    #: ACT's m: weight exp(-m * i) of the i-th oldest prediction for a time step (i = 0 oldest).
    ensemble_decay: float = 0.01
    #: K noise draws per inference, in one batch; draw 0 is executed, the spread is monitored. 1 = no monitor.
    dispersion_samples: int = 4
    #: Dispersion (rad; cdp_core.evaluate.action_dispersion's chunk_std) above which the speed is scaled down.
    dispersion_warn_rad: float = 0.05
    #: Dispersion above which the arm is asked to hold (speed scale 0).
    dispersion_hold_rad: float = 0.15
    #: Speed scale requested while dispersion is between warn and hold.
    slow_scale: float = 0.3
    #: An input older than this (s) at a control tick refuses the tick: no chunk from stale state.
    max_obs_age_s: float = 0.2
    #: The same for the object pose. Ground truth arrives like the arm's state; a camera pose is
    #: older by construction (RealSense colour lags ~66 ms, plus detection and the camera period),
    #: and the tracked objects are static fixtures: 0.5 s.
    max_object_age_s: float = 0.5
    #: ONNX Runtime intra-op threads (0 = ORT's default: all cores).
    intra_op_threads: int = 1
    #: Execution providers in order of preference; those this ONNX Runtime lacks are skipped.
    providers: tuple[str, ...] = PROVIDER_ORDER
    #: Observation keys the deployment provides (any order); ``("*",)`` = accept the model's.
    expected_obs_keys: tuple[str, ...] = (ANY_OBS_KEYS,)
    #: The camera topics of an image policy, ``camera=/topic`` (sensor_msgs/Image, rgb8 or bgr8, at
    #: the model's frame size); a model seeing a camera not named here is refused at start-up.
    camera_topics: tuple[str, ...] = (f"agentview={AGENTVIEW_IMAGE}", f"wrist={camera_image_topic('wrist')}")
    #: A camera frame older than this (s) at a control tick refuses the tick (the arm holds).
    max_image_age_s: float = 0.3
    #: Seed of the sampler noise; negative = from the OS.
    seed: int = -1
    #: Number of recent inferences the latency percentiles are computed over.
    latency_window: int = 200


@dataclass
class ChunkDecision:
    """A freshly sampled chunk, stamped with its observation time, plus what the monitor saw."""

    t_obs: float
    dt: float
    #: All executed actions of the chunk [n_action_steps, 7]; action k due at t_obs + k * dt.
    chunk: np.ndarray
    #: Index of the first action still on time (the ones before it were late and are dropped).
    first_index: int
    speed_scale: float
    dispersion: float  # mean std across draws (cdp_core definition), rad; nan with one draw
    dispersion_max_joint: float  # mean over steps of the largest per-joint std, rad; nan with one draw
    latency_s: float
    obs_age_s: float
    missed_deadline: bool
    reason: str = ""  # non-empty when the chunk was refused (then it holds no actions)
    #: Every draw's executed actions [K, n_action_steps, 7] (the dispersion's source; None when refused).
    draws: np.ndarray | None = None

    @property
    def positions(self) -> np.ndarray:
        """The actions to execute (the late ones dropped)."""
        return self.chunk[self.first_index :]

    @property
    def due_times(self) -> np.ndarray:
        return self.t_obs + self.dt * np.arange(self.first_index, len(self.chunk))

    @property
    def dropped(self) -> int:
        return self.first_index


@dataclass
class RunnerStats:
    ticks: int = 0
    chunks: int = 0
    refused_ticks: int = 0
    missed_deadlines: int = 0
    dropped_actions: int = 0
    last_obs_age_s: float = float("nan")
    last_dispersion: float = float("nan")
    last_speed_scale: float = 1.0
    last_reason: str = ""
    #: Per camera of an image policy: the last tick's frame age (now - capture stamp, s).
    image_ages: dict = field(default_factory=dict)
    latencies: deque = field(default_factory=lambda: deque(maxlen=200))

    def latency_percentiles_ms(self) -> tuple[float, float]:
        if not self.latencies:
            return float("nan"), float("nan")
        p50, p99 = np.percentile(np.fromiter(self.latencies, float), [50, 99])
        return 1000 * float(p50), 1000 * float(p99)


class PolicyRunner:
    """Loads and checks the model once, then turns control ticks into time-stamped action chunks."""

    def __init__(self, cfg: PolicyConfig):
        from cdp_core.deploy import check_deployable
        from cdp_core.runtime import ModelContractError, OnnxPolicy, preferred_providers
        import onnxruntime as ort

        self.cfg = cfg
        self.warnings: list[str] = []
        if not cfg.model_path:
            raise PolicyStartError("model_path is not set: give the exported .onnx policy to run")
        try:
            # The one deployability check (cdp_core.deploy): the node's observation table, its action
            # spaces (TCP poses become joint targets here: the safety filter takes joint targets only).
            self.model = OnnxPolicy(
                cfg.model_path,
                providers=preferred_providers(ort.get_available_providers(), cfg.providers),
                intra_op_threads=cfg.intra_op_threads,
                seed=cfg.seed if cfg.seed >= 0 else None,
            )
            self.camera_topics = parse_camera_topics(cfg.camera_topics)
            size = tuple(self.model.metadata.get("image_size") or (0, 0))
            served = {c: size for c in self.camera_topics}  # the size is checked per frame on arrival
            check_deployable(self.model.metadata, node_capabilities(served), source=str(cfg.model_path))
        except (ModelContractError, CameraFrameError) as exc:
            raise PolicyStartError(str(exc)) from exc
        m = self.metadata = self.model.metadata
        self.provider = self.model.providers[0]
        #: The model's action space. TCP-pose chunks become joint targets here, with the fast path's
        #: executor (cdp_core.sim.actions: the same IK, warm-started along the executed actions),
        #: so the filter and the driver only ever see joint targets.
        self.action_space = str(m.get("action_space", "joint_position"))
        self._executor = None
        if self.action_space != "joint_position":
            from cdp_core.sim.actions import ActionExecutor

            if cfg.temporal_ensembling:
                raise PolicyStartError(
                    f"temporal_ensembling works on joint targets; {cfg.model_path} predicts TCP poses"
                )
            self._executor = ActionExecutor(self.action_space)
            self._ik_started = False
        self._check_expected_keys(m["obs_keys"])
        gate = m.get("convergence_gate")
        if gate and not gate.get("passed", True):
            # Served (the operator decides), but never silently: this model failed its open-loop check.
            self.warnings.append(
                f"{cfg.model_path} FAILED its convergence gate at export (action error "
                f"{gate.get('action_error_mm', float('nan')):.1f} mm, scatter "
                f"{gate.get('scatter_mm', float('nan')):.1f} mm at the TCP): likely under-trained"
            )

        model_rate = m.get("rate_hz")
        if cfg.control_rate_hz > 0:
            self.rate_hz = float(cfg.control_rate_hz)
            if model_rate and abs(self.rate_hz - float(model_rate)) > 1e-6:
                self.warnings.append(
                    f"control_rate_hz {self.rate_hz:g} differs from the model's rate_hz "
                    f"{model_rate:g}: observation spacing and action timing differ from training"
                )
        elif model_rate:
            self.rate_hz = float(model_rate)
        else:
            raise PolicyStartError(f"{cfg.model_path}: model metadata has no rate_hz; set control_rate_hz")
        self.dt = 1.0 / self.rate_hz
        self.start = int(m["action_start_index"])
        self.horizon = int(m["horizon"])
        self.n_exec = int(cfg.n_action_steps or m["n_action_steps"])
        if not 1 <= self.n_exec <= self.horizon - self.start:
            raise PolicyStartError(
                f"n_action_steps {self.n_exec} does not fit the model's chunk "
                f"(horizon {self.horizon}, action_start_index {self.start})"
            )
        if cfg.dispersion_samples < 1:
            raise PolicyStartError(f"dispersion_samples must be >= 1, got {cfg.dispersion_samples}")
        if not 0.0 <= cfg.slow_scale <= 1.0:
            raise PolicyStartError(f"slow_scale must be in [0, 1], got {cfg.slow_scale}")
        if cfg.dispersion_hold_rad < cfg.dispersion_warn_rad:
            raise PolicyStartError(
                f"dispersion_hold_rad {cfg.dispersion_hold_rad} < dispersion_warn_rad {cfg.dispersion_warn_rad}"
            )
        #: The cameras this model sees (empty: a low-dim policy) and the topic of each.
        self.cameras: list[str] = list(m.get("cameras") or [])
        try:
            frames = None
            if self.cameras:
                frames = CameraFrames(
                    self.cameras,
                    tuple(m["image_size"]),
                    cfg.max_image_age_s,
                    {c: self.camera_topics[c] for c in self.cameras},
                )
            self.obs = ObservationBuffer(
                m["obs_keys"],
                int(m["n_obs_steps"]),
                cfg.max_obs_age_s,
                m["obs_dims"],
                max_object_age_s=cfg.max_object_age_s,
                cameras=frames,
            )
        except ValueError as exc:
            raise PolicyStartError(str(exc)) from exc

        # Buffers allocated once: the control loop only fills them.
        k = cfg.dispersion_samples
        self._obs_batch = np.empty((k, *self.model.obs_shape), dtype=np.float32)
        self._noise = np.empty((k, *self.model.noise_shape), dtype=np.float32)
        shape = self.model.images_shape
        self._images = np.zeros((k, *shape), dtype=np.uint8) if shape is not None else None
        self._rng = np.random.default_rng(cfg.seed if cfg.seed >= 0 else None)
        self.stats = RunnerStats(latencies=deque(maxlen=max(1, cfg.latency_window)))
        self._ticks_to_plan = 0
        self._tick_index = 0
        self._ensemble: deque[tuple[int, np.ndarray]] = deque()
        #: The last inference's raw output [K, horizon, 7] (for tests and tools; not copied).
        self.last_actions: np.ndarray | None = None
        # Warm-up: ORT allocates on the first run; doing it now keeps that off the first control tick
        # and proves the graph actually executes before the node reports itself ready.
        try:
            # zero noise: the seeded noise stream stays the fast path's (draw 0 == seeded_policy's draw)
            self.model(np.zeros_like(self._obs_batch), np.zeros_like(self._noise), self._images)
        except Exception as exc:
            raise PolicyStartError(f"{cfg.model_path}: the model does not run ({type(exc).__name__}: {exc})") from exc

    def _check_expected_keys(self, model_keys: list[str]) -> None:
        expected = [k for k in self.cfg.expected_obs_keys if k]
        if not expected or expected == [ANY_OBS_KEYS]:
            return
        missing = sorted(set(expected) - set(model_keys))
        extra = sorted(set(model_keys) - set(expected))
        if missing or extra:
            parts = []
            if extra:
                parts.append(f"model observes {extra}, not in expected_obs_keys")
            if missing:
                parts.append(f"expected_obs_keys {missing} are not observed by the model")
            raise PolicyStartError(
                f"{self.cfg.model_path} does not match expected_obs_keys {expected} "
                f"(model obs_keys {model_keys}): " + "; ".join(parts)
            )

    # --- control loop -------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget the history, the chunk schedule and the ensemble (policy (re-)enabled, new episode)."""
        self.obs.clear_history()
        self._ticks_to_plan = 0
        self._ensemble.clear()
        if self._executor is not None:
            self._ik_started = False  # the next plan starts the IK from the arm's measured joints

    def tick(self, t_now: float) -> ChunkDecision | None:
        """One control tick at time ``t_now`` (s, the clock the input stamps use).

        Samples this tick's observation frame; every ``n_action_steps`` ticks samples a new
        chunk and returns it. Returns None on the other ticks and when the observation is
        refused (the reason is in ``stats.last_reason``); a refusal restarts the schedule, so
        the next good tick plans at once from a fresh history.
        """
        s = self.stats
        s.ticks += 1
        res = self.obs.sample(t_now)
        s.last_obs_age_s = res.age_s
        if res.image_ages:  # a tick refused before the frames were looked at keeps the last ages
            s.image_ages = dict(res.image_ages)
        if res.history is None:
            s.refused_ticks += 1
            s.last_reason = res.reason
            self._ticks_to_plan = 0
            self._ensemble.clear()
            return None
        s.last_reason = ""
        tick_index = self._tick_index
        self._tick_index += 1
        if self._ticks_to_plan > 0:
            self._ticks_to_plan -= 1
            return None
        self._ticks_to_plan = self.n_exec - 1
        return self._plan(t_now, tick_index, res.history, res.age_s, res.images)

    def _plan(
        self, t_obs: float, tick_index: int, history: np.ndarray, obs_age: float, images: np.ndarray | None = None
    ) -> ChunkDecision:
        s = self.stats
        t0 = time.perf_counter()
        self._obs_batch[:] = history
        if self._images is not None and images is not None:
            self._images[:] = images  # every draw sees the same frames
        self._rng.standard_normal(dtype=np.float32, out=self._noise)
        actions = self.model(self._obs_batch, self._noise, self._images)  # [K, H, A], K draws in one batch
        self.last_actions = actions
        executed = actions[:, self.start : self.start + self.n_exec]
        if self._executor is not None and np.isfinite(executed).all():
            executed = self._to_joint_targets(executed)
        latency = time.perf_counter() - t0
        s.latencies.append(latency)
        missed = latency > self.dt
        s.missed_deadlines += int(missed)
        dt = self.dt
        if not np.isfinite(actions).all() or not np.isfinite(executed).all():
            s.last_speed_scale = 0.0
            s.last_reason = (
                "model returned non-finite actions: holding"
                if not np.isfinite(actions).all()
                else "a TCP-pose action has no valid orientation (no joint targets): holding"
            )
            return ChunkDecision(
                t_obs,
                dt,
                np.empty((0, actions.shape[-1])),
                0,
                0.0,
                float("nan"),
                float("nan"),
                latency,
                obs_age,
                missed,
                s.last_reason,
            )
        if len(executed) > 1:
            std = executed.std(axis=0)  # [n, A], across draws (ddof 0, as cdp_core.evaluate.action_dispersion)
            disp, disp_max = float(std.mean()), float(std.max(axis=1).mean())
        else:
            disp = disp_max = float("nan")
        scale = self.speed_scale_for(disp)
        # Draw 0, not the mean of the draws: a mean of samples from a multi-modal policy can be an
        # action no demonstration took (between two ways around an obstacle), and draw 0 is exactly
        # what the fast path executes (one draw), so simulated results carry over.
        chunk = executed[0].astype(np.float64)
        if self.cfg.temporal_ensembling:
            chunk = self._ensembled(tick_index, actions[0].astype(np.float64))
        t_done = t_obs + latency
        # action k is in force during [t_obs + k dt, t_obs + (k + 1) dt): late once that has ended
        first = int(np.sum(t_obs + dt * np.arange(1, len(chunk) + 1) <= t_done))
        s.chunks += 1
        s.dropped_actions += first
        s.last_dispersion, s.last_speed_scale = disp, scale
        return ChunkDecision(
            t_obs, dt, chunk, first, scale, disp, disp_max, latency, obs_age, missed, draws=executed.astype(np.float64)
        )

    def _to_joint_targets(self, executed: np.ndarray) -> np.ndarray:
        """TCP-pose draws ``[K, n, 7]`` -> joint targets ``[K, n, 7]``: every draw's IK chain starts
        where the executed one (draw 0) left off, and draw 0's chain carries on to the next chunk,
        exactly as the fast path executes a rollout."""
        from cdp_core.sim.actions import ActionSpaceError

        ex = self._executor
        assert ex is not None
        if not self._ik_started:
            q = self.obs.latest_joints()
            ex.reset(q if q is not None else np.zeros(7))
            self._ik_started = True
        start = ex.ik_state
        out = np.empty(executed.shape, dtype=np.float64)
        try:
            for k in range(executed.shape[0] - 1, -1, -1):  # draw 0 last: its chain is the one kept
                ex.reset(start)
                out[k] = [ex.joint_targets(a) for a in executed[k]]
        except ActionSpaceError:
            out[:] = np.nan  # refused below as non-finite: the arm holds
        return out

    def speed_scale_for(self, dispersion: float) -> float:
        """1 below the warn threshold, slow_scale above it, 0 (hold) above the hold threshold."""
        if math.isnan(dispersion):
            return 1.0  # one draw: no spread to judge
        if dispersion > self.cfg.dispersion_hold_rad:
            return 0.0
        if dispersion > self.cfg.dispersion_warn_rad:
            return self.cfg.slow_scale
        return 1.0

    def _ensembled(self, tick_index: int, full_chunk: np.ndarray) -> np.ndarray:
        """ACT temporal ensembling: each executed step averages every stored chunk's prediction for it.

        Chunks are aligned by control tick (not wall time, which jitters): the chunk planned at
        tick p predicts tick j with ``full_chunk[action_start_index + j - p]``. Weights
        exp(-m * i), i = 0 for the oldest prediction, as in ACT.
        """
        self._ensemble.append((tick_index, full_chunk))
        while self._ensemble and self.start + tick_index - self._ensemble[0][0] >= self.horizon:
            self._ensemble.popleft()  # predicts nothing from this tick on
        out = np.empty((self.n_exec, full_chunk.shape[-1]))
        for k in range(self.n_exec):
            j = tick_index + k
            preds = [c[self.start + j - p] for p, c in self._ensemble if self.start + j - p < self.horizon]
            w = np.exp(-self.cfg.ensemble_decay * np.arange(len(preds)))
            out[k] = np.tensordot(w / w.sum(), np.stack(preds), axes=1)
        return out

    # --- reporting ----------------------------------------------------------------------------
    def diagnostics(self) -> dict[str, float | int | str]:
        s = self.stats
        p50, p99 = s.latency_percentiles_ms()
        return {
            "provider": self.provider,
            "latency_p50_ms": p50,
            "latency_p99_ms": p99,
            "obs_age_s": s.last_obs_age_s,
            "missed_deadlines": s.missed_deadlines,
            "dropped_actions": s.dropped_actions,
            "dispersion_rad": s.last_dispersion,
            "speed_scale": s.last_speed_scale,
            "chunks": s.chunks,
            "ticks": s.ticks,
            "refused_ticks": s.refused_ticks,
            "dispersion_samples": self.cfg.dispersion_samples,
            "rate_hz": self.rate_hz,
            "n_action_steps": self.n_exec,
            "model": self.cfg.model_path,
            **{f"image_age_s.{c}": s.image_ages.get(c, float("nan")) for c in self.cameras},
        }
