"""The project's episode dataset and the loaders that turn any supported source into it.

On disk (``format: episodes``)::

    dataset/
      meta.json                       {"format": "cdp-episodes", "version": 1, "obs": {key: dim}, "action_dim": A,
                                       "action_names": [...], "rate_hz": ..., ...}
      episodes/episode_000000.npz     obs/<key> [T, dim], action [T, A], optional timestamp [T],
                                      optional image/<camera> uint8 [T, H, W, 3] (meta.json "cameras": {name: [H, W]})

One file per episode, written to a temporary name and renamed into place, so a crash
while recording loses at most the episode being written and never corrupts a finished one.

Camera frames live in the same file, uint8 and losslessly deflated (``np.savez_compressed``):
the episode stays the one unit that is written atomically, a policy trains on the exact pixels
it was shown, and at 96x96 a frame takes a few kB. Video (lossy, for sharing) is what the
LeRobot export is for.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

FORMAT_NAME = "cdp-episodes"
FORMAT_VERSION = 1


class DatasetError(ValueError):
    """A dataset is missing, malformed, or holds values a policy cannot be trained on."""


@dataclass
class Episode:
    """One demonstration: per-step observations by key, actions and optional timestamps."""

    obs: dict[str, np.ndarray]
    action: np.ndarray
    timestamp: np.ndarray | None = None
    name: str = ""
    #: Camera frames by camera name, uint8 ``[T, H, W, 3]`` RGB (empty: a low-dim episode).
    images: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.action.shape[0])


@dataclass
class EpisodeDataset:
    """Validated episodes plus what is known about their observation and action spaces."""

    episodes: list[Episode]
    obs_dims: dict[str, int]
    action_dim: int
    meta: dict[str, Any] = field(default_factory=dict)
    #: ``{camera: (H, W)}`` of the episodes' frames (empty: no images).
    image_shapes: dict[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def num_steps(self) -> int:
        return sum(len(e) for e in self.episodes)


def validate_episodes(episodes: list[Episode], source: str) -> tuple[dict[str, int], int]:
    """Check shapes and finiteness; return (obs dims, action dim) or raise DatasetError naming the episode."""
    if not episodes:
        raise DatasetError(f"{source}: no episodes")
    ref = episodes[0]
    obs_dims = {k: (v.shape[1] if v.ndim == 2 else 1) for k, v in ref.obs.items()}
    if ref.action.ndim != 2:
        raise DatasetError(
            f"{source}: episode {ref.name!r}: 'action' must be [T, action_dim], got shape {ref.action.shape}"
        )
    action_dim = ref.action.shape[1]
    for ep in episodes:
        where = f"{source}: episode {ep.name!r}"
        n = len(ep)
        if n == 0:
            raise DatasetError(f"{where}: empty episode")
        if ep.action.ndim != 2 or ep.action.shape[1] != action_dim:
            raise DatasetError(f"{where}: 'action' has shape {ep.action.shape}, expected [T, {action_dim}]")
        if set(ep.obs) != set(obs_dims):
            raise DatasetError(f"{where}: observation keys {sorted(ep.obs)} differ from {sorted(obs_dims)}")
        for key, arr in ep.obs.items():
            if arr.ndim == 1:
                arr = ep.obs[key] = arr[:, None]
            if arr.ndim != 2 or arr.shape[1] != obs_dims[key]:
                raise DatasetError(f"{where}: observation {key!r} has shape {arr.shape}, expected [T, {obs_dims[key]}]")
            if arr.shape[0] != n:
                raise DatasetError(f"{where}: observation {key!r} has {arr.shape[0]} steps but 'action' has {n}")
        validate_images(ep, n, image_shapes_of(ref), where)
        for key, arr in [*((f"obs/{k}", v) for k, v in ep.obs.items()), ("action", ep.action)]:
            bad = ~np.isfinite(arr)
            if bad.any():
                step = int(np.argwhere(bad)[0][0])
                raise DatasetError(f"{where}: {key} holds NaN or inf (first at step {step})")
    return obs_dims, action_dim


def image_shapes_of(ep: Episode) -> dict[str, tuple[int, int]]:
    """``{camera: (H, W)}`` of one episode's frames."""
    return {k: (int(v.shape[1]), int(v.shape[2])) for k, v in ep.images.items() if v.ndim == 4}


def validate_images(ep: Episode, n: int, shapes: dict[str, tuple[int, int]], where: str) -> None:
    """Every episode has the same cameras at the same size, uint8 ``[T, H, W, 3]`` with one frame per step."""
    if set(ep.images) != set(shapes):
        raise DatasetError(f"{where}: cameras {sorted(ep.images)} differ from {sorted(shapes)}")
    for cam, frames in ep.images.items():
        h, w = shapes[cam]
        if frames.dtype != np.uint8 or frames.shape != (n, h, w, 3):
            raise DatasetError(
                f"{where}: image/{cam} is {frames.dtype} {frames.shape}, expected uint8 [{n}, {h}, {w}, 3] "
                "(one RGB frame per step)"
            )


def write_dataset_meta(root: str | Path, obs_dims: dict[str, int], action_dim: int, **extra: Any) -> None:
    """Write ``meta.json`` of an episode dataset (atomically)."""
    root = Path(root)
    (root / "episodes").mkdir(parents=True, exist_ok=True)
    meta = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "obs": obs_dims, "action_dim": action_dim, **extra}
    _atomic_write_bytes(root / "meta.json", json.dumps(meta, indent=2).encode())


def write_episode(root: str | Path, index: int, episode: Episode) -> Path:
    """Write one episode as ``episodes/episode_{index:06d}.npz`` atomically; return its path."""
    arrays = {f"obs/{k}": np.asarray(v, dtype=np.float32) for k, v in episode.obs.items()}
    arrays["action"] = np.asarray(episode.action, dtype=np.float32)
    if episode.timestamp is not None:
        arrays["timestamp"] = np.asarray(episode.timestamp, dtype=np.float64)
    for cam, frames in episode.images.items():
        arrays[f"image/{cam}"] = np.asarray(frames, dtype=np.uint8)
    path = Path(root) / "episodes" / f"episode_{index:06d}.npz"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".npz.tmp")
    save = np.savez_compressed if episode.images else np.savez
    with open(tmp, "wb") as fh:
        save(fh, **arrays)  # type: ignore[arg-type]  # the stub takes **kwds for its bool flag
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return path


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def write_json_atomic(path: str | Path, data: Any) -> None:
    """Write ``data`` as indented JSON to ``path`` atomically (a crash leaves the old file or the new one)."""
    _atomic_write_bytes(Path(path), json.dumps(data, indent=2).encode())


def _load_episode_dir(root: Path) -> EpisodeDataset:
    meta_path = root / "meta.json"
    if not meta_path.is_file():
        raise DatasetError(f"{root}: not an episode dataset (no meta.json)")
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{meta_path}: not valid JSON ({exc})") from exc
    if meta.get("format") != FORMAT_NAME:
        raise DatasetError(f"{meta_path}: format is {meta.get('format')!r}, expected {FORMAT_NAME!r}")
    files = sorted((root / "episodes").glob("episode_*.npz"))
    episodes = []
    for f in files:
        try:
            with np.load(f) as z:
                obs = {k[4:]: z[k] for k in z.files if k.startswith("obs/")}
                episodes.append(
                    Episode(
                        obs=obs,
                        action=z["action"],
                        timestamp=z["timestamp"] if "timestamp" in z.files else None,
                        name=f.name,
                        images={k[6:]: z[k] for k in z.files if k.startswith("image/")},
                    )
                )
        except Exception as exc:  # zipfile/pickle/key errors all mean the same to the user
            raise DatasetError(f"{f}: unreadable episode file ({type(exc).__name__}: {exc})") from exc
    obs_dims, action_dim = validate_episodes(episodes, str(root))
    declared = {k: int(v) for k, v in meta.get("obs", {}).items()}
    if declared and declared != obs_dims:
        raise DatasetError(f"{root}: episodes have observations {obs_dims} but meta.json declares {declared}")
    if "action_dim" in meta and int(meta["action_dim"]) != action_dim:
        raise DatasetError(f"{root}: episodes have action_dim {action_dim} but meta.json declares {meta['action_dim']}")
    shapes = image_shapes_of(episodes[0])
    declared_cams = {k: tuple(int(x) for x in v) for k, v in meta.get("cameras", {}).items()}
    if declared_cams != shapes:
        raise DatasetError(f"{root}: episodes have cameras {shapes} but meta.json declares {declared_cams}")
    return EpisodeDataset(episodes, obs_dims, action_dim, meta, shapes)


def load_episodes(path: str | Path, fmt: str = "episodes", max_episodes: int = 0) -> EpisodeDataset:
    """Load and validate a dataset in any supported format (``episodes``, ``lerobot``, ``robomimic``, ``d4rl``)."""
    p = Path(path)
    if not p.exists():
        raise DatasetError(f"dataset not found: {p}")
    if fmt == "episodes":
        ds = _load_episode_dir(p)
    elif fmt == "lerobot":
        from .lerobot import load_lerobot

        ds = load_lerobot(p)
    elif fmt == "robomimic":
        from .hdf5 import load_robomimic

        ds = load_robomimic(p)
    elif fmt == "d4rl":
        from .hdf5 import load_d4rl

        ds = load_d4rl(p)
    else:
        raise DatasetError(f"unknown dataset format {fmt!r} (known: episodes, lerobot, robomimic, d4rl)")
    if max_episodes:
        ds.episodes = ds.episodes[:max_episodes]
    return ds
