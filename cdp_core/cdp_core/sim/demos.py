"""``cdp demos``: write a task's scripted demonstrations as the project's episode dataset."""

from __future__ import annotations

from pathlib import Path

from tqdm.auto import tqdm

from ..data.episodes import write_dataset_meta, write_episode
from .actions import JOINT_POSITION, action_names
from .cameras import CameraConfig, camera_shapes
from .env import FR3TaskEnv
from .scripted import DemoStyle, run_demonstration


def generate_demos(
    task: str,
    out: str | Path,
    episodes: int,
    seed: int = 0,
    progress: bool = True,
    action_space: str = JOINT_POSITION,
    style: DemoStyle = DemoStyle(),
    cameras: tuple[CameraConfig, ...] = (),
) -> dict:
    """Record ``episodes`` successful demonstrations (failed attempts are discarded and counted).

    ``action_space`` picks the recorded actions (joint targets or TCP poses); the motions are
    the same for the same ``seed`` either way. ``style``: strategies, misses and transit noise
    of the scripted operator (stored in the dataset's meta.json). ``cameras``: also record each
    step's rendered frames (the same motions: rendering does not touch the physics).
    """
    env = FR3TaskEnv(task, action_space=action_space, cameras=cameras)
    spec = env.spec
    root = Path(out)
    write_dataset_meta(
        root,
        spec.obs_dims,
        7,
        action_names=action_names(action_space),
        action_space=action_space,
        rate_hz=spec.control_hz,
        task=spec.name,
        generator="scripted",
        generator_seed=seed,
        demo_style={
            "strategies": list(style.strategies),
            "miss_prob": style.miss_prob,
            "transit_noise": style.transit_noise,
        },
        **({"cameras": camera_shapes(cameras)} if cameras else {}),
    )
    kept, attempts = 0, 0
    bar = tqdm(total=episodes, desc=f"demos {task}", unit="ep", disable=not progress, mininterval=2.0)
    while kept < episodes:
        if attempts >= 2 * episodes + 10:
            raise RuntimeError(f"scripted demonstrator failed too often on {task}: {kept}/{attempts} succeeded")
        episode, success = run_demonstration(env, seed + attempts, style=style)
        attempts += 1
        if success:
            write_episode(root, kept, episode)
            kept += 1
            bar.update(1)
    bar.close()
    return {
        "task": task,
        "action_space": action_space,
        "episodes": kept,
        "attempts": attempts,
        "success_rate": kept / attempts,
        "path": str(root),
    }
