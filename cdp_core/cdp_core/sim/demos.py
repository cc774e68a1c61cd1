"""``cdp demos``: write a task's scripted demonstrations as the project's episode dataset."""

from __future__ import annotations

from pathlib import Path

from tqdm.auto import tqdm

from ..data.episodes import write_dataset_meta, write_episode
from .env import FR3TaskEnv
from .scripted import run_demonstration


def generate_demos(task: str, out: str | Path, episodes: int, seed: int = 0, progress: bool = True) -> dict:
    """Record ``episodes`` successful demonstrations (failed attempts are discarded and counted)."""
    env = FR3TaskEnv(task)
    spec = env.spec
    root = Path(out)
    write_dataset_meta(root, spec.obs_dims, 7, action_names=spec.action_names, rate_hz=spec.control_hz, task=spec.name,
                       generator="scripted", generator_seed=seed)
    kept, attempts = 0, 0
    bar = tqdm(total=episodes, desc=f"demos {task}", unit="ep", disable=not progress, mininterval=2.0)
    while kept < episodes:
        if attempts >= 2 * episodes + 10:
            raise RuntimeError(f"scripted demonstrator failed too often on {task}: {kept}/{attempts} succeeded")
        episode, success = run_demonstration(env, seed + attempts)
        attempts += 1
        if success:
            write_episode(root, kept, episode)
            kept += 1
            bar.update(1)
    bar.close()
    return {"task": task, "episodes": kept, "attempts": attempts, "success_rate": kept / attempts, "path": str(root)}
