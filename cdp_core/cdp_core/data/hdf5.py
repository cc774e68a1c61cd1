"""Readers for robomimic-style and D4RL-style HDF5 files, producing validated episodes."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .episodes import DatasetError, Episode, EpisodeDataset, validate_episodes


def _open(path: Path):
    import h5py

    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise DatasetError(f"{path}: not a readable HDF5 file ({exc})") from exc


def load_robomimic(path: Path) -> EpisodeDataset:
    """robomimic layout: ``data/demo_<i>/obs/<key>`` [T, ...] and ``data/demo_<i>/actions`` [T, A]."""
    with _open(path) as f:
        if "data" not in f:
            raise DatasetError(f"{path}: no 'data' group (expected robomimic layout data/demo_*/obs, actions)")
        names = sorted(f["data"].keys(), key=lambda n: (len(n), n))  # demo_2 before demo_10
        episodes = []
        for name in names:
            g = f["data"][name]
            if "actions" not in g or "obs" not in g:
                raise DatasetError(f"{path}: data/{name} lacks 'actions' or 'obs'")
            obs = {k: np.asarray(g["obs"][k], dtype=np.float32).reshape(g["obs"][k].shape[0], -1) for k in g["obs"]}
            episodes.append(Episode(obs=obs, action=np.asarray(g["actions"], dtype=np.float32), name=name))
    obs_dims, action_dim = validate_episodes(episodes, str(path))
    return EpisodeDataset(episodes, obs_dims, action_dim, {"source": "robomimic", "path": str(path)})


def load_d4rl(path: Path) -> EpisodeDataset:
    """D4RL layout: flat ``observations`` [N, D], ``actions`` [N, A], episodes split at ``terminals``/``timeouts``."""
    with _open(path) as f:
        for key in ("observations", "actions"):
            if key not in f:
                raise DatasetError(f"{path}: missing dataset {key!r} (expected D4RL layout)")
        obs = np.asarray(f["observations"], dtype=np.float32)
        act = np.asarray(f["actions"], dtype=np.float32)
        n = len(act)
        ends = np.zeros(n, dtype=bool)
        for key in ("terminals", "timeouts"):
            if key in f:
                flags = np.asarray(f[key]).astype(bool).reshape(-1)
                if len(flags) != n:
                    raise DatasetError(f"{path}: {key!r} has {len(flags)} entries but 'actions' has {n}")
                ends |= flags
    if len(obs) != n:
        raise DatasetError(f"{path}: 'observations' has {len(obs)} rows but 'actions' has {n}")
    ends[-1] = True
    bounds = np.flatnonzero(ends) + 1
    episodes, start = [], 0
    for i, stop in enumerate(bounds):
        episodes.append(
            Episode(
                obs={"observations": obs[start:stop].reshape(stop - start, -1)},
                action=act[start:stop].reshape(stop - start, -1),
                name=f"episode_{i}",
            )
        )
        start = stop
    obs_dims, action_dim = validate_episodes(episodes, str(path))
    return EpisodeDataset(episodes, obs_dims, action_dim, {"source": "d4rl", "path": str(path)})
