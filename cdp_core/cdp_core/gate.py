"""Running the convergence gate on a checkpoint or an exported model (``cdp gate``, ``cdp train``, ``cdp eval``).

:mod:`cdp_core.convergence` holds the measurement; this module finds its inputs: the policy's
sampler, the held-out demonstrations (configured, split off the dataset, or recorded by the
simulated task's scripted demonstrator at seeds no training set uses) and the TCP of an
action (the FR3's forward kinematics). Datasets that are not FR3 actions (the 2-D toy task,
arbitrary robomimic data) have no TCP: the gate says so and does not run.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from .config import GateConfig
from .convergence import GateError, GateReport, run_gate
from .data.episodes import Episode, load_episodes

#: First seed of automatically recorded held-out demonstrations (training demos start at 0,
#: evaluation at 10,000 / 100,000 / 200,000).
HELDOUT_SEED = 900_000
GATE_FILE = "gate.json"


def fr3_action_space(meta: dict[str, Any], action_dim: int) -> str | None:
    """The FR3 action space of a dataset / model, or None when its actions are not an FR3's."""
    from .sim.actions import ACTION_SPACES

    space = meta.get("action_space")
    if (
        action_dim != 7
        or (space is None and meta.get("task") is None)
        or (space or "joint_position") not in ACTION_SPACES
    ):
        return None
    return space or "joint_position"


def heldout_episodes(
    cfg: GateConfig,
    data_path: str,
    data_format: str,
    dataset_meta: dict[str, Any],
    workdir: Path | None,
    cameras: list[str] | None = None,
    image_size: tuple[int, int] | None = None,
) -> list[Episode]:
    """Held-out demonstrations for the gate, in the order of preference of :class:`GateConfig`.

    An image policy's (``cameras`` at ``image_size``) recorded demonstrations render those cameras."""
    if cfg.holdout_path:
        return load_episodes(cfg.holdout_path).episodes
    if cfg.holdout_episodes:
        return load_episodes(data_path, data_format).episodes[-cfg.holdout_episodes :]
    task = dataset_meta.get("task")
    if cfg.auto_demos and task:
        from .sim.demos import generate_demos
        from .sim.tasks import TASKS

        if task in TASKS:
            from .sim.cameras import cameras_by_name

            cams = cameras_by_name(list(cameras), tuple(image_size or (96, 96))) if cameras else ()
            name = "gate_demos" + "".join(f"_{c.name}{c.height}x{c.width}" for c in cams)
            out = (workdir or Path(".")) / name
            if not (out / "meta.json").is_file() or len(list((out / "episodes").glob("*.npz"))) < cfg.auto_demos:
                generate_demos(
                    task,
                    out,
                    cfg.auto_demos,
                    seed=HELDOUT_SEED,
                    progress=False,
                    action_space=dataset_meta.get("action_space", "joint_position"),
                    cameras=cams,
                )
            return load_episodes(out).episodes[: cfg.auto_demos]
    raise GateError(
        "no held-out demonstrations: set gate.holdout_path or gate.holdout_episodes "
        "(or train on a simulated task's demos, for which they are recorded automatically)"
    )


def gate_checkpoint(
    checkpoint: str | Path,
    cfg: GateConfig | None = None,
    workdir: str | Path | None = None,
    sampler: str | None = None,
    steps: int | None = None,
) -> GateReport:
    """The gate on a checkpoint's EMA weights, sampled as export would (config's ``export`` sampler unless given)."""
    import torch

    from .checkpoint import load_policy
    from .samplers import FixedStepSampler

    policy, ckpt = load_policy(checkpoint)
    pcfg = policy.cfg
    cfg = cfg or pcfg.gate
    meta = ckpt.get("dataset_meta", {})
    s = policy.shape
    space = fr3_action_space(meta, s.action_dim)
    if space is None:
        raise GateError("the gate measures millimetres at an FR3's TCP; this policy's actions are not FR3 actions")
    cams = list(s.cameras)
    episodes = heldout_episodes(
        cfg,
        pcfg.data.path,
        pcfg.data.format,
        meta,
        Path(workdir) if workdir else Path(checkpoint).parent.parent,
        cams,
        tuple(s.image_size) if cams else None,
    )
    module = FixedStepSampler(policy, sampler or pcfg.export.sampler, steps or pcfg.export.steps).eval()

    def sample(obs: np.ndarray, noise: np.ndarray, images: np.ndarray | None = None) -> np.ndarray:
        out = []
        with torch.no_grad():  # in batches: an image encoder on hundreds of windows at once is large
            for i in range(0, len(obs), 256):
                img = torch.from_numpy(images[i : i + 256]) if images is not None else None
                out.append(
                    module(torch.from_numpy(obs[i : i + 256]), torch.from_numpy(noise[i : i + 256]), img).numpy()
                )
        return np.concatenate(out)

    return _run(
        sample,
        episodes,
        list(ckpt["obs_keys"]),
        s.n_obs_steps,
        s.horizon,
        s.action_dim,
        s.n_obs_steps - 1,
        s.n_action_steps,
        space,
        cfg,
        cams,
    )


def gate_model(
    model_path: str | Path,
    task: str | None = None,
    cfg: GateConfig | None = None,
    workdir: str | Path | None = None,
    n_action_steps: int | None = None,
) -> GateReport:
    """The gate on an exported ONNX model (the graph the robot runs), thresholds from its training config.

    ``task``: the simulated task whose held-out demonstrations to record when the training
    config names none (default: the task in the model's metadata).
    """
    from .config import config_from_dict
    from .runtime import OnnxPolicy

    model = OnnxPolicy(model_path, intra_op_threads=1)
    m = model.metadata
    cams = list(m.get("cameras") or [])
    train_cfg = config_from_dict(m.get("training_config") or {})
    cfg = cfg or train_cfg.gate
    space = fr3_action_space({"action_space": m.get("action_space"), "task": task or m.get("task")}, m["action_dim"])
    if space is None:
        raise GateError("the gate measures millimetres at an FR3's TCP; this model's actions are not FR3 actions")
    with tempfile.TemporaryDirectory(prefix="cdp_gate_") as tmp:
        episodes = heldout_episodes(
            cfg,
            train_cfg.data.path,
            train_cfg.data.format,
            {"task": task or m.get("task"), "action_space": space},
            Path(workdir or tmp),
            cams,
            tuple(m["image_size"]) if cams else None,
        )

    def sample(obs: np.ndarray, noise: np.ndarray, images: np.ndarray | None = None) -> np.ndarray:
        return np.concatenate(
            [
                model(obs[i : i + 256], noise[i : i + 256], images[i : i + 256] if images is not None else None)
                for i in range(0, len(obs), 256)
            ]
        )

    return _run(
        sample,
        episodes,
        list(m["obs_keys"]),
        m["n_obs_steps"],
        m["horizon"],
        m["action_dim"],
        m["action_start_index"],
        n_action_steps or m["n_action_steps"],
        space,
        cfg,
        cams,
    )


def _run(sample, episodes, obs_keys, n_obs, horizon, action_dim, start, n_exec, space, cfg, cams=None) -> GateReport:
    from .sim.actions import tcp_positions

    return run_gate(
        sample,
        episodes,
        obs_keys,
        n_obs,
        horizon,
        action_dim,
        start,
        n_exec,
        lambda a: tcp_positions(space, a),
        cfg,
        cameras=cams,
    )


def store_report(report: GateReport, path: str | Path, checkpoint: str | Path) -> Path:
    """Write ``report`` as JSON with the SHA-256 of the checkpoint it judged (export reads it back)."""
    import json

    from .checkpoint import file_sha256

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**report.to_dict(), "checkpoint_sha256": file_sha256(checkpoint)}, indent=2))
    return path


def stored_report(checkpoint: str | Path) -> dict[str, Any] | None:
    """The gate result stored for exactly this checkpoint (RUN/gate.json beside RUN/checkpoints/), if any."""
    import json

    from .checkpoint import file_sha256

    path = Path(checkpoint).parent.parent / GATE_FILE
    if not path.is_file():
        return None
    try:
        report = json.loads(path.read_text())
    except json.JSONDecodeError:
        return None
    return report if report.get("checkpoint_sha256") == file_sha256(checkpoint) else None
