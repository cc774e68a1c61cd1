"""Meta-World (``metaworld`` 3.1.1, V3 tasks) as an external benchmark: scripted experts -> DP / CDP -> evaluation.

Nobody here wrote these tasks or their experts, which is the point: the same trainer, export
and sampler as for the FR3 tasks, judged on a benchmark the field uses. State-based: the
policy observes Meta-World's 39-dimensional goal-observable state and outputs its 4-dim
action (end-effector displacement and gripper), at the environment's own step rate.

Meta-World needs MuJoCo 3.3.0, which clashes with franky-sim's MuJoCo 4, so this module runs
in its own environment: ``scripts/setup_metaworld.sh`` makes ``.venv-metaworld`` (cdp_core
without the FR3 simulator), and ``.venv-metaworld/bin/cdp metaworld ...`` runs it.

Episodes are seeded: seed ``s`` builds the goal-observable environment with ``seed=s``,
which fixes the object and goal placement (Meta-World freezes its random vector at
construction), so DP and CDP are evaluated on identical placements. An episode succeeds when
Meta-World's ``info["success"]`` is set at any step within the task's 500-step limit, the
protocol of the 3D Diffusion Policy paper's Meta-World tables.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..data.episodes import write_json_atomic

#: The tasks the benchmark report covers (the issue's selection; any V3 task name works).
DEFAULT_TASKS = ["peg-insert-side-v3", "coffee-pull-v3", "box-close-v3", "push-v3", "lever-pull-v3", "disassemble-v3"]
#: Image-based DP with 10 demos on Meta-World V2 (3D Diffusion Policy, arXiv 2403.03954, Table XVIII):
#: an anchor for the state-based V3 numbers here, not a target.
DP3_IMAGE_DP_ANCHOR = {
    "peg-insert-side-v3": 0.34,
    "coffee-pull-v3": 0.34,
    "box-close-v3": 0.30,
    "push-v3": 0.30,
    "lever-pull-v3": 0.49,
    "disassemble-v3": 0.43,
}
ACTION_SPACE = "metaworld_xyz_gripper"
OBS_KEY = "state"


class MetaWorldUnavailable(RuntimeError):
    """Meta-World is not installed in this Python environment."""


def _metaworld():
    try:
        from metaworld.env_dict import ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE
        from metaworld.policies import ENV_POLICY_MAP
    except ImportError as exc:
        raise MetaWorldUnavailable(
            "Meta-World is not installed in this environment (it needs MuJoCo 3.3.0, which clashes with "
            "franky-sim): run scripts/setup_metaworld.sh, then .venv-metaworld/bin/cdp metaworld ..."
        ) from exc
    return ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE, ENV_POLICY_MAP


def check_task(task: str) -> None:
    """Raise ValueError naming the known tasks when ``task`` is not a Meta-World V3 task with an expert."""
    envs, policies = _metaworld()
    if f"{task}-goal-observable" not in envs or task not in policies:
        known = sorted(t for t in policies if f"{t}-goal-observable" in envs)
        raise ValueError(f"unknown Meta-World task {task!r}; known: {', '.join(known)}")


def make_env(task: str, seed: int) -> Any:
    """The goal-observable environment of ``task`` with the placement of episode ``seed``."""
    envs, _ = _metaworld()
    return envs[f"{task}-goal-observable"](seed=seed)


def record_demos(task: str, out: str | Path, episodes: int, seed: int = 0) -> dict[str, Any]:
    """Run Meta-World's scripted expert from seed ``seed`` on; keep the first ``episodes`` successful ones.

    Each kept episode runs until the expert first succeeds. Written as the project's episode
    dataset (observation key ``state``, 4-dim actions).
    """
    from ..data.episodes import Episode, write_dataset_meta, write_episode

    check_task(task)
    _, policies = _metaworld()
    root = Path(out)
    kept = attempts = 0
    rate_hz = None
    while kept < episodes:
        if attempts >= 3 * episodes + 10:
            raise RuntimeError(f"Meta-World expert failed too often on {task}: {kept}/{attempts} succeeded")
        env = make_env(task, seed + attempts)
        expert = policies[task]()
        rate_hz = rate_hz or 1.0 / float(env.dt)
        obs, _ = env.reset()
        states, actions = [], []
        success = False
        for _ in range(env.max_path_length):
            action = np.clip(expert.get_action(obs), -1.0, 1.0)
            states.append(obs.astype(np.float32))
            actions.append(action.astype(np.float32))
            obs, _, _, truncated, info = env.step(action)
            if info["success"]:
                success = True
                break
            if truncated:
                break
        attempts += 1
        if success:
            write_episode(
                root,
                kept,
                Episode(obs={OBS_KEY: np.stack(states)}, action=np.stack(actions), name=f"seed_{seed + attempts - 1}"),
            )
            kept += 1
    write_dataset_meta(
        root,
        {OBS_KEY: 39},
        4,
        action_names=["dx", "dy", "dz", "gripper"],
        action_space=ACTION_SPACE,
        rate_hz=rate_hz,
        task=f"metaworld/{task}",
        generator="metaworld-expert",
        generator_seed=seed,
    )
    return {"task": task, "episodes": kept, "attempts": attempts, "expert_success_rate": kept / attempts}


def rollout(model: Any, task: str, seed: int) -> dict[str, Any]:
    """One seeded episode of an exported policy (receding horizon, as in training)."""
    from collections import deque

    m = model.metadata
    env = make_env(task, seed)
    rng = np.random.default_rng(seed + 1)
    obs, _ = env.reset()
    history: deque[np.ndarray] = deque([obs.astype(np.float32)] * m["n_obs_steps"], maxlen=m["n_obs_steps"])
    start, n_exec = m["action_start_index"], m["n_action_steps"]
    steps = 0
    while steps < env.max_path_length:
        chunk = model(np.stack(history)[None], rng.standard_normal((1, *model.noise_shape), dtype=np.float32))[0]
        for action in chunk[start : start + n_exec]:
            obs, _, _, truncated, info = env.step(np.clip(action, -1.0, 1.0))
            steps += 1
            history.append(obs.astype(np.float32))
            if info["success"]:
                return {"seed": seed, "success": True, "steps": steps}
            if truncated or steps >= env.max_path_length:
                break
    return {"seed": seed, "success": False, "steps": steps}


_WORKER: dict[str, Any] = {}


def _init_worker(model_path: str, task: str) -> None:
    from ..runtime import OnnxPolicy

    _WORKER["model"], _WORKER["task"] = OnnxPolicy(model_path, intra_op_threads=1), task


def _run_seed(seed: int) -> dict[str, Any]:
    return rollout(_WORKER["model"], _WORKER["task"], seed)


def evaluate(model_path: str | Path, task: str, seeds: list[int], workers: int = 0) -> dict[str, Any]:
    """Seeded episodes in parallel processes: success rate with a 95 % Wilson interval, per-episode outcomes,
    and the action dispersion across noise seeds at the first observations."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    from ..evaluate import action_dispersion
    from ..runtime import OnnxPolicy
    from ..sim.evaluate import wilson_interval

    check_task(task)
    model = OnnxPolicy(model_path, intra_op_threads=1)
    if model.metadata.get("action_dim") != 4 or model.metadata.get("obs_dim") != 39:
        raise ValueError(f"{model_path} is not a Meta-World state policy (obs_dim 39, action_dim 4)")
    workers = workers or max(1, min(len(seeds), os.cpu_count() or 1))
    if workers == 1:
        _init_worker(str(model_path), task)
        rows = [_run_seed(s) for s in seeds]
    else:
        with ProcessPoolExecutor(
            workers, mp_context=mp.get_context("spawn"), initializer=_init_worker, initargs=(str(model_path), task)
        ) as pool:
            rows = list(pool.map(_run_seed, seeds))
    m = model.metadata
    first = np.stack(
        [np.stack([make_env(task, s).reset()[0].astype(np.float32)] * m["n_obs_steps"]) for s in seeds[:4]]
    )
    start, n_exec = m["action_start_index"], m["n_action_steps"]
    disp = action_dispersion(lambda o, z: model(o, z)[:, start : start + n_exec], first, model.noise_shape, seeds=16)
    wins = sum(r["success"] for r in rows)
    lo, hi = wilson_interval(wins, len(rows))
    return {
        "model": str(model_path),
        "task": task,
        "episodes": len(rows),
        "success_rate": wins / len(rows),
        "ci95": [lo, hi],
        "successes": [bool(r["success"]) for r in rows],
        "dispersion": disp["chunk_std"],
    }


@dataclass
class MetaWorldBenchmark:
    """What one Meta-World comparison covers (DP = gamma 0 against CDP, same seeds, same episodes)."""

    tasks: list[str] = field(default_factory=lambda: list(DEFAULT_TASKS))
    demos: int = 10
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    gammas: list[float] = field(default_factory=lambda: [0.0, 0.1])
    episodes: int = 50
    sampler: str = "ddim"
    steps: int = 8
    train_config: str | None = None
    train_overrides: list[str] = field(default_factory=list)
    demo_seed: int = 0
    eval_seed: int = 100_000
    workers: int = 0


def run_benchmark(cfg: MetaWorldBenchmark, work: str | Path, report_dir: str | Path, log=print) -> Path:
    """Run (or continue: every finished demo set, run, model and cell is kept) the benchmark; returns report.md."""
    from ..checkpoint import read_checkpoint
    from ..config import load_config
    from ..export import export_onnx
    from ..trainer import train

    for task in cfg.tasks:
        check_task(task)
    load_config(cfg.train_config, cfg.train_overrides)  # a bad config fails before anything runs
    work, report_dir = Path(work), Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    results_path = report_dir / "results.json"
    results: dict[str, Any] = json.loads(results_path.read_text()) if results_path.exists() else {}
    results["benchmark"] = asdict(cfg)
    cells: dict[str, Any] = results.setdefault("cells", {})
    seeds = list(range(cfg.eval_seed, cfg.eval_seed + cfg.episodes))
    for task in cfg.tasks:
        data = work / task / "demos"
        if not (data / "meta.json").exists():
            log(f"{task}: recording {cfg.demos} expert demonstrations")
            results.setdefault("experts", {})[task] = record_demos(task, data, cfg.demos, cfg.demo_seed)
        for gamma in cfg.gammas:
            for seed in cfg.seeds:
                key = f"{task}/gamma={gamma:g}/seed={seed}"
                if key in cells:
                    continue
                run_dir = work / task / "runs" / f"gamma{gamma:g}_seed{seed}"
                train_cfg = load_config(
                    cfg.train_config,
                    [
                        f"data.path={data}",
                        f"data.max_episodes={cfg.demos}",
                        f"contraction.gamma={gamma}",
                        f"train.seed={seed}",
                        *cfg.train_overrides,
                    ],
                )
                latest = run_dir / "checkpoints" / "latest.pt"
                if not latest.exists() or read_checkpoint(latest)["step"] < train_cfg.train.steps:
                    log(f"{key}: training {train_cfg.train.steps} steps")
                    train(train_cfg, run_dir, resume=latest.exists())
                model = work / task / "models" / f"gamma{gamma:g}_seed{seed}_{cfg.sampler}{cfg.steps}.onnx"
                if not model.exists():
                    export_onnx(latest, model, cfg.sampler, cfg.steps)
                summary = evaluate(model, task, seeds, cfg.workers)
                cells[key] = {"task": task, "gamma": gamma, "seed": seed, "demos": cfg.demos, **summary}
                log(f"{key}: success {summary['success_rate']:.2f}")
                write_json_atomic(results_path, results)
    write_json_atomic(results_path, results)
    write_plot(cells, cfg, report_dir)
    return write_report(cells, cfg, report_dir)


def _pooled(cells: dict[str, Any], task: str, gamma: float) -> tuple[int, int, list[float]]:
    group = [c for c in cells.values() if c["task"] == task and c["gamma"] == gamma]
    return (
        sum(sum(c["successes"]) for c in group),
        sum(c["episodes"] for c in group),
        [c["success_rate"] for c in group],
    )


def write_report(cells: dict[str, Any], cfg: MetaWorldBenchmark, out: Path) -> Path:
    """Markdown: per task and policy, pooled success with Wilson CI, per-seed rates, paired McNemar vs DP."""
    from scipy.stats import binomtest

    from ..sim.evaluate import wilson_interval

    lines = [
        "# DP vs CDP on Meta-World (state-based, V3)",
        "",
        f"{cfg.demos} expert demonstrations per task (seeds from {cfg.demo_seed}), training seeds {cfg.seeds}, "
        f"{cfg.episodes} evaluation episodes per policy and seed (episode seeds {cfg.eval_seed}..), "
        f"{cfg.sampler} x {cfg.steps}. Training config: {cfg.train_config or 'defaults'}, overrides: "
        f"{cfg.train_overrides or 'none'}. Anchor: image-based DP, 10 demos, Meta-World V2 (3D Diffusion "
        "Policy paper, Table XVIII).",
        "",
        "| task | policy | success (pooled) | 95 % CI | per seed | dispersion | paired vs DP (b/c, p) | anchor |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for task in cfg.tasks:
        for gamma in cfg.gammas:
            wins, n, per_seed = _pooled(cells, task, gamma)
            if not n:
                continue
            lo, hi = wilson_interval(wins, n)
            disp = np.mean([c["dispersion"] for c in cells.values() if c["task"] == task and c["gamma"] == gamma])
            paired = ""
            if gamma != 0:
                b = c_ = 0
                for cell in cells.values():
                    if cell["task"] != task or cell["gamma"] != gamma:
                        continue
                    dp = cells.get(f"{task}/gamma=0/seed={cell['seed']}")
                    if dp:
                        b += sum(x and not y for x, y in zip(cell["successes"], dp["successes"]))
                        c_ += sum(y and not x for x, y in zip(cell["successes"], dp["successes"]))
                p = binomtest(min(b, c_), b + c_, 0.5).pvalue if b + c_ else 1.0
                paired = f"{b}/{c_}, p={p:.3f}"
            name = "DP" if gamma == 0 else f"CDP {gamma:g}"
            anchor = DP3_IMAGE_DP_ANCHOR.get(task)
            lines.append(
                f"| {task} | {name} | {wins}/{n} ({wins / n:.2f}) | {lo:.2f}-{hi:.2f} | "
                f"{', '.join(f'{s:.2f}' for s in per_seed)} | {disp:.4f} | {paired} | "
                f"{'' if anchor is None or gamma != 0 else f'{anchor:.2f}'} |"
            )
    lines += ["", "![success](metaworld.png)", ""]
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def write_plot(cells: dict[str, Any], cfg: MetaWorldBenchmark, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..sim.evaluate import wilson_interval

    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(cfg.tasks)), 4))
    width = 0.8 / max(1, len(cfg.gammas))
    for i, gamma in enumerate(cfg.gammas):
        xs, ys, err = [], [], [[], []]
        for j, task in enumerate(cfg.tasks):
            wins, n, _ = _pooled(cells, task, gamma)
            if n:
                lo, hi = wilson_interval(wins, n)
                xs.append(j + i * width)
                ys.append(wins / n)
                err[0].append(wins / n - lo)
                err[1].append(hi - wins / n)
        ax.bar(xs, ys, width, yerr=err, capsize=3, label="DP" if gamma == 0 else f"CDP (gamma={gamma:g})")
    anchors = [DP3_IMAGE_DP_ANCHOR.get(t) for t in cfg.tasks]
    ax.scatter(
        [j for j, a in enumerate(anchors) if a is not None],
        [a for a in anchors if a is not None],
        marker="_",
        s=400,
        color="k",
        label="image DP, V2 (anchor)",
    )
    ax.set_xticks(
        [j + width * (len(cfg.gammas) - 1) / 2 for j in range(len(cfg.tasks))], cfg.tasks, rotation=20, fontsize=8
    )
    ax.set(
        ylabel="success rate (pooled over seeds, 95 % CI)",
        ylim=(0, 1.05),
        title=f"Meta-World V3, state-based, {cfg.demos} demos",
    )
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    fig.savefig(out / "metaworld.png", dpi=110)
    plt.close(fig)
