"""The evaluation protocol: what is compared, on which placements, in which order (no ROS here).

A protocol YAML::

    name: reach_precise_cdp_vs_dp
    task: reach_precise
    policies:                      # name -> exported .onnx (with its .json sidecar); order = A, B, ...
      cdp: models/reach_precise/cdp_reach.onnx
      dp: models/reach_precise/dp_reach.onnx
    trials: 20                     # per policy
    interleaving: ABAB             # ABAB (A B A B ...) or ABBA (A B, B A, A B, ...)
    seeds: {first: 100000}         # or an explicit list, one per trial: [100000, 100007, ...]
    time_limit_s: 8.0              # per trial; default: the task's own limit
    output: outputs/eval/reach_cdp_vs_dp
    use_sim: true
    calibration: ""                # camera calibration YAML; required when use_sim is false
    calibration_max_age_h: 168
    record: false                  # start the MCAP recorder and record every trial
    launch: {}                     # extra cdp-graph launch arguments (robot_ip, backend, ...)

Trial ``i`` of every policy uses seed ``seeds[i]``: the same object placement and jittered home
configuration, so the trials pair up and drift over the session hits every policy alike.
Relative model and calibration paths are resolved against the protocol file's folder first, then the
working directory; ``output`` against the working directory.
"""

from __future__ import annotations

import hashlib
import json
import math
import platform
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

INTERLEAVINGS = ("ABAB", "ABBA")


class ProtocolError(ValueError):
    """A protocol that cannot run: malformed file, a model that does not fit, a stale calibration."""


@dataclass
class Protocol:
    name: str
    task: str
    #: name -> .onnx path, in comparison order (the first is "A").
    policies: dict[str, str]
    trials: int
    output: str
    interleaving: str = "ABAB"
    #: One seed per trial (trial i of every policy uses seeds[i]).
    seeds: list[int] = field(default_factory=list)
    #: Per-trial limit (s); 0 = the task's own limit.
    time_limit_s: float = 0.0
    use_sim: bool = True
    calibration: str = ""
    #: A calibration older than this (hours) stops the protocol when it is required.
    calibration_max_age_h: float = 168.0
    #: Require the calibration even in simulation (always required on the robot).
    calibration_required: bool = False
    record: bool = False
    #: Extra launch arguments for the node graph (robot_ip, backend, ...), name -> value.
    launch: dict[str, str] = field(default_factory=dict)
    #: Jitter of the home configuration (rad), as in the fast-path evaluation.
    home_jitter: float = 0.05

    @property
    def needs_calibration(self) -> bool:
        return self.calibration_required or not self.use_sim

    def schedule(self) -> list[tuple[int, str]]:
        """(trial index, policy name) in execution order."""
        names = list(self.policies)
        out = []
        for i in range(self.trials):
            order = names if self.interleaving == "ABAB" or i % 2 == 0 else names[::-1]
            out += [(i, p) for p in order]
        return out

    def identity(self) -> dict[str, Any]:
        """What defines the experiment (not where it is written): the protocol hash covers this."""
        d = asdict(self)
        d.pop("output")
        return d


def _resolve_path(value: str, base: Path) -> str:
    if not value:
        return value
    p = Path(value).expanduser()
    if p.is_absolute():
        return str(p)
    near = base / p
    return str((near if near.exists() else Path.cwd() / p).resolve())


def protocol_from_dict(d: Any, source: str = "protocol", base: Path | None = None) -> Protocol:
    """Validate strictly: unknown keys, wrong types and impossible values are errors naming the field."""
    if not isinstance(d, dict):
        raise ProtocolError(f"{source}: not a YAML mapping")
    known = {f.name for f in fields(Protocol)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise ProtocolError(f"{source}: unknown key(s) {unknown}; known: {sorted(known)}")
    missing = [k for k in ("name", "task", "policies", "trials", "output") if k not in d]
    if missing:
        raise ProtocolError(f"{source}: missing required key(s) {missing}")
    base = base or Path.cwd()

    def typed(key: str, kinds: tuple[type, ...], default: Any = None) -> Any:
        v = d.get(key, default)
        if isinstance(v, bool) and bool not in kinds:
            raise ProtocolError(f"{source}: '{key}' must be {'/'.join(k.__name__ for k in kinds)}, got {v!r}")
        if not isinstance(v, kinds):
            raise ProtocolError(f"{source}: '{key}' must be {'/'.join(k.__name__ for k in kinds)}, got {v!r}")
        return v

    name = typed("name", (str,))
    if not name.strip():
        raise ProtocolError(f"{source}: 'name' is empty")
    task = typed("task", (str,))
    from cdp_core.sim.tasks import TASKS

    if task not in TASKS:
        raise ProtocolError(f"{source}: unknown task {task!r}; known: {sorted(TASKS)}")
    policies = typed("policies", (dict,))
    if len(policies) < 1:
        raise ProtocolError(f"{source}: 'policies' is empty")
    for k, v in policies.items():
        if not isinstance(k, str) or not isinstance(v, str) or not v:
            raise ProtocolError(f"{source}: policies must map a name to an .onnx path, got {k!r}: {v!r}")
    trials = typed("trials", (int,))
    if trials < 1:
        raise ProtocolError(f"{source}: 'trials' must be >= 1, got {trials}")
    interleaving = typed("interleaving", (str,), "ABAB")
    if interleaving not in INTERLEAVINGS:
        raise ProtocolError(f"{source}: 'interleaving' must be one of {INTERLEAVINGS}, got {interleaving!r}")
    seeds_in = d.get("seeds", {"first": 100000})
    if isinstance(seeds_in, dict):
        if set(seeds_in) != {"first"} or isinstance(seeds_in["first"], bool) or not isinstance(seeds_in["first"], int):
            raise ProtocolError(f"{source}: 'seeds' must be a list of ints or {{first: <int>}}, got {seeds_in!r}")
        seeds = [seeds_in["first"] + i for i in range(trials)]
    elif isinstance(seeds_in, list):
        if any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds_in):
            raise ProtocolError(f"{source}: 'seeds' must hold non-negative ints, got {seeds_in!r}")
        if len(seeds_in) != trials:
            raise ProtocolError(f"{source}: {len(seeds_in)} seeds for {trials} trials (one per trial)")
        if len(set(seeds_in)) != len(seeds_in):
            raise ProtocolError(f"{source}: 'seeds' repeats a seed")
        seeds = list(seeds_in)
    else:
        raise ProtocolError(f"{source}: 'seeds' must be a list of ints or {{first: <int>}}, got {seeds_in!r}")
    time_limit = float(typed("time_limit_s", (int, float), 0.0))
    if time_limit < 0 or not math.isfinite(time_limit):
        raise ProtocolError(f"{source}: 'time_limit_s' must be >= 0 (0 = the task's limit), got {time_limit}")
    max_age = float(typed("calibration_max_age_h", (int, float), 168.0))
    if max_age <= 0:
        raise ProtocolError(f"{source}: 'calibration_max_age_h' must be > 0, got {max_age}")
    launch = typed("launch", (dict,), {})
    for k, v in launch.items():
        if k in ("model", "use_sim", "task"):
            raise ProtocolError(f"{source}: launch argument {k!r} is set by the protocol itself")
        if not isinstance(v, (str, int, float)):
            raise ProtocolError(f"{source}: launch argument {k} must be a scalar, got {v!r}")
    jitter = float(typed("home_jitter", (int, float), 0.05))
    return Protocol(
        name=name,
        task=task,
        policies={k: _resolve_path(v, base) for k, v in policies.items()},
        trials=trials,
        output=str(Path(typed("output", (str,))).expanduser().resolve()),
        interleaving=interleaving,
        seeds=seeds,
        time_limit_s=time_limit,
        use_sim=typed("use_sim", (bool,), True),
        calibration=_resolve_path(typed("calibration", (str,), ""), base),
        calibration_max_age_h=max_age,
        calibration_required=typed("calibration_required", (bool,), False),
        record=typed("record", (bool,), False),
        launch={k: str(v) for k, v in launch.items()},
        home_jitter=jitter,
    )


def load_protocol(path: str | Path) -> Protocol:
    p = Path(path)
    try:
        d = yaml.safe_load(p.read_text())
    except OSError as exc:
        raise ProtocolError(f"cannot read protocol {p}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ProtocolError(f"protocol {p} is not valid YAML: {exc}") from exc
    return protocol_from_dict(d, str(p), p.resolve().parent)


# --- checks before anything moves ------------------------------------------------------------------
def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass
class Preflight:
    """What the checks found; goes into every trial's record."""

    models: dict[str, dict[str, Any]]
    calibration: dict[str, Any] | None
    protocol_hash: str


def check_models(protocol: Protocol) -> dict[str, dict[str, Any]]:
    """Load every model with its contract check and the task fit; the first problem stops the protocol."""
    from cdp_core.deploy import check_deployable
    from cdp_core.runtime import ModelContractError, OnnxPolicy
    from cdp_core.sim.tasks import get_task
    from cdp_policy.observations import node_capabilities

    task = get_task(protocol.task)
    out = {}
    for name, path in protocol.policies.items():
        try:
            policy = OnnxPolicy(path, providers=["CPUExecutionProvider"])
            check_deployable(policy.metadata, node_capabilities(), task)  # what the policy node will check
        except ModelContractError as exc:
            raise ProtocolError(f"policy {name!r}: {exc}") from exc
        m = policy.metadata
        out[name] = {
            "path": path,
            "sha256": sha256_file(path),
            "meta": {
                k: m.get(k)
                for k in ("sampler", "steps", "horizon", "n_obs_steps", "n_action_steps", "rate_hz", "obs_keys")
                if k in m
            },
            "training": {
                k: v for k, v in m.items() if k in ("gamma", "train", "config", "task", "seed", "created", "git")
            },
        }
    return out


def check_calibration(protocol: Protocol, now: Any = None) -> dict[str, Any] | None:
    """Required on the robot (or when asked): missing, malformed or stale stops the protocol."""
    if not protocol.calibration:
        if protocol.needs_calibration:
            raise ProtocolError(
                "a calibration file is required (use_sim is false or calibration_required is set) "
                "but 'calibration' is empty"
            )
        return None
    from cdp_perception.calibration.result import CalibrationError, load

    try:
        cal = load(protocol.calibration, require_hand_eye=protocol.needs_calibration)
    except CalibrationError as exc:
        if protocol.needs_calibration:
            raise ProtocolError(str(exc)) from exc
        return {"path": protocol.calibration, "error": str(exc)}
    stale = cal.stale_warning(protocol.calibration_max_age_h * 3600, now)
    if stale and protocol.needs_calibration:
        raise ProtocolError(f"stale calibration {protocol.calibration}: {stale}")
    return {
        "path": protocol.calibration,
        "sha256": sha256_file(protocol.calibration),
        "date": cal.date.isoformat(),
        "serial": cal.serial,
        "stale_warning": stale,
    }


def protocol_hash(protocol: Protocol, models: dict[str, dict[str, Any]], calibration: dict[str, Any] | None) -> str:
    """Protocol settings + model contents + calibration contents: a changed model is a different experiment."""
    ident = protocol.identity()
    ident["policies"] = {k: models[k]["sha256"] for k in protocol.policies}
    ident["calibration"] = calibration.get("sha256") if calibration else None
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]


def preflight(protocol: Protocol) -> Preflight:
    models = check_models(protocol)
    cal = check_calibration(protocol)
    return Preflight(models, cal, protocol_hash(protocol, models, cal))


def software_versions(root: Path | None = None) -> dict[str, str]:
    """Versions of what ran the trial: packages, Python, and the source checkout's commit (read, not run)."""
    from importlib import metadata

    out = {"python": platform.python_version()}
    for dist in (
        "cdp_core",
        "cdp_policy",
        "cdp_bringup",
        "safety_filter",
        "franka_driver",
        "cdp_sim",
        "cdp_eval",
        "onnxruntime",
        "franky-control",
        "pylibfranka",
        "franky-sim",
        "rclpy",
    ):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    here = root or Path(__file__).resolve()
    for parent in [here, *here.parents]:
        head = parent / ".git" / "HEAD"
        if head.is_file():
            ref = head.read_text().strip()
            if ref.startswith("ref: "):
                ref_path = parent / ".git" / ref[5:]
                if ref_path.is_file():
                    ref = ref_path.read_text().strip()
                else:
                    packed = parent / ".git" / "packed-refs"
                    hit = [
                        ln.split()[0]
                        for ln in (packed.read_text().splitlines() if packed.is_file() else [])
                        if ln.endswith(" " + ref[5:])
                    ]
                    ref = hit[0] if hit else ref
            out["git_commit"] = ref
            break
    return out


def placement_text(task_name: str, seed: int) -> str:
    """Where the operator puts the object for ``seed`` (the task's parameters drawn from the seed)."""
    import numpy as np
    from cdp_core.sim.tasks import get_task

    params = get_task(task_name).sample(np.random.default_rng(seed))
    parts = []
    for k, v in params.items():
        arr = np.atleast_1d(np.asarray(v, dtype=float))
        parts.append(f"{k} = [" + ", ".join(f"{x:.4f}" for x in arr) + "]")
    return "; ".join(parts) + " (fr3_link0 frame, m / rad)"
