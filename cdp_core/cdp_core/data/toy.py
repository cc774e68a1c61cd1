"""A 2-D multimodal toy task: reach a goal around an obstacle, passing it on the left or right.

It stands in for a real task until the simulated FR3 scenes exist, and is the smallest
problem on which a diffusion policy's multimodality (and the action spread CDP reduces)
shows. Observations: ``agent_pos`` [2], ``goal`` [2]; action: the next position target [2].
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .episodes import Episode, write_dataset_meta, write_episode

RATE_HZ = 10.0


def toy_episode(rng: np.random.Generator, speed: float = 0.12, hold_steps: int = 6) -> Episode:
    """One demonstration: start -> detour waypoint (left or right, 50/50) -> goal, then hold."""
    start = np.array([0.0, -1.0]) + rng.uniform(-0.15, 0.15, 2)
    goal = np.array([0.0, 1.0]) + rng.uniform(-0.15, 0.15, 2)
    mid = 0.5 * (start + goal)
    d = goal - start
    perp = np.array([-d[1], d[0]]) / np.linalg.norm(d)
    side = rng.choice([-1.0, 1.0])
    waypoint = mid + side * rng.uniform(0.45, 0.6) * perp
    pts = [start]
    v = speed * rng.uniform(0.85, 1.15)
    for a, b in ((start, waypoint), (waypoint, goal)):
        n = max(int(np.ceil(np.linalg.norm(b - a) / v)), 1)
        pts.extend(a + (b - a) * (i / n) for i in range(1, n + 1))
    pts.extend([goal] * hold_steps)
    path = np.asarray(pts) + rng.normal(0.0, 0.004, (len(pts), 2))
    path[-hold_steps:] = goal
    pos, action = path[:-1], path[1:]
    t = np.arange(len(pos)) / RATE_HZ
    return Episode(
        obs={"agent_pos": pos.astype(np.float32), "goal": np.repeat(goal[None], len(pos), 0).astype(np.float32)},
        action=action.astype(np.float32),
        timestamp=t,
    )


def generate_toy_dataset(root: str | Path, episodes: int = 50, seed: int = 0) -> Path:
    """Write ``episodes`` toy demonstrations in the project's episode format under ``root``."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    write_dataset_meta(
        root,
        {"agent_pos": 2, "goal": 2},
        2,
        action_names=["target_x", "target_y"],
        rate_hz=RATE_HZ,
        task="toy_detour_2d",
        generator_seed=seed,
    )
    for i in range(episodes):
        write_episode(root, i, toy_episode(rng))
    return root


def toy_start_observations(n: int, n_obs_steps: int, seed: int = 123) -> np.ndarray:
    """Observation histories at episode starts (where the two modes split): ``[n, To, 4]``."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, n_obs_steps, 4), dtype=np.float32)
    for i in range(n):
        ep = toy_episode(rng)
        out[i] = np.concatenate([ep.obs["agent_pos"][0], ep.obs["goal"][0]])[None]
    return out
