"""LeRobot dataset v3.0 on a local folder, both ways: export the project's episodes, load one.

Layout (LeRobot's ``codebase_version`` v3.0; no hub access, local folders only)::

    root/
      meta/info.json                            fps, features {name: dtype, shape, names}, totals, paths
      meta/stats.json                           per feature: min, max, mean, std, count, q01..q99
      meta/tasks.parquet                        index: task string, column task_index
      meta/episodes/chunk-000/file-000.parquet  one row per episode: length, tasks, data file and
                                                dataset_from_index / dataset_to_index, stats/<feature>/<stat>
      data/chunk-000/file-000.parquet           one row per frame: the features, timestamp,
                                                frame_index, episode_index, index, task_index

The mapping is name for name: observation ``<key>`` is feature ``observation.<key>``; the action
is ``action``. A dataset from elsewhere names its robot state ``observation.state`` (and the
scene ``observation.environment_state``): those load as observation keys ``state`` and
``environment_state``. Camera frames are ``observation.images.<camera>`` video features (one MP4
per camera, H.264 through PyAV, episodes one after another, addressed by the episode rows'
``videos/<feature>/from_timestamp``): episodes' frames export as such, and such features load
back as the episodes' frames (decoded: video is lossy). Camera features stored as per-frame
``image`` bytes are not loaded, and the loader says which it left out.

Everything is written with pyarrow (parquet) and ``json``; a dataset is written into a temporary
folder and renamed into place, so a crash leaves no half-written dataset under ``root``.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .episodes import DatasetError, Episode, EpisodeDataset, validate_episodes

CODEBASE_VERSION = "v3.0"
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
OBS_PREFIX = "observation."
IMAGES_PREFIX = "observation.images."
ACTION = "action"
#: The per-frame bookkeeping columns every LeRobot dataset has (not observations).
INDEX_FEATURES: dict[str, dict[str, Any]] = {
    "timestamp": {"dtype": "float32", "shape": [1], "names": None},
    "frame_index": {"dtype": "int64", "shape": [1], "names": None},
    "episode_index": {"dtype": "int64", "shape": [1], "names": None},
    "index": {"dtype": "int64", "shape": [1], "names": None},
    "task_index": {"dtype": "int64", "shape": [1], "names": None},
}
QUANTILES = (0.01, 0.10, 0.50, 0.90, 0.99)
#: info.json key for the project's dataset facts that LeRobot has no field for.
CDP_KEY = "cdp"
CDP_META = ("task", "action_space", "rate_hz", "generator", "generator_seed", "demo_style")
NUMERIC_DTYPES = ("float32", "float64", "int64", "int32", "bool")


@dataclass(frozen=True)
class LeRobotExport:
    """What :func:`export_lerobot` writes besides the episodes themselves."""

    fps: float
    task: str
    robot_type: str = "franka_fr3"
    #: Names of the action's components (LeRobot's ``names``); None leaves them unnamed.
    action_names: list[str] | None = None


def _stats(x: np.ndarray) -> dict[str, np.ndarray]:
    """LeRobot's per-feature statistics over axis 0 of ``x`` [N, D]."""
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    out = {
        "min": x.min(axis=0),
        "max": x.max(axis=0),
        "mean": x.mean(axis=0),
        "std": x.std(axis=0),
        "count": np.array([len(x)], dtype=np.int64),
    }
    for q in QUANTILES:
        out[f"q{int(round(q * 100)):02d}"] = np.quantile(x, q, axis=0)
    return out


def _image_stats(frames: np.ndarray) -> dict[str, np.ndarray]:
    """LeRobot's camera statistics: per channel, over pixels in [0, 1], shaped ``[3, 1, 1]``."""
    x = frames.reshape(-1, 3).astype(np.float64) / 255.0
    out = {
        "min": x.min(0),
        "max": x.max(0),
        "mean": x.mean(0),
        "std": x.std(0),
    }
    stats = {k: v.reshape(3, 1, 1) for k, v in out.items()}
    stats["count"] = np.array([len(frames)])
    return stats


def _fps_of(fps: float) -> int | float:
    """LeRobot stores fps as an int; a fractional rate is kept as a float rather than rounded."""
    return int(fps) if float(fps).is_integer() else float(fps)


def export_lerobot(dataset: EpisodeDataset, root: str | Path, spec: LeRobotExport, overwrite: bool = False) -> Path:
    """Write ``dataset`` as a LeRobot v3.0 dataset at ``root`` (one data file, one episodes file).

    Timestamps are ``frame_index / fps`` (LeRobot addresses frames by them); the recorded
    timestamps, when the episodes have them, are checked against that grid first, so a recording
    with dropped frames is refused instead of silently re-timed.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = Path(root)
    if root.exists() and not overwrite:
        raise DatasetError(f"{root} exists (pass overwrite to replace it)")
    if not spec.fps > 0:
        raise DatasetError(f"fps must be positive, got {spec.fps}")
    obs_dims, action_dim = validate_episodes(dataset.episodes, "export")
    keys = sorted(obs_dims)
    for ep in dataset.episodes:
        if ep.timestamp is not None and len(ep) > 1:
            dt = np.diff(np.asarray(ep.timestamp, dtype=np.float64))
            if np.max(np.abs(dt - 1.0 / spec.fps)) > 0.5 / spec.fps:
                raise DatasetError(
                    f"episode {ep.name!r}: its timestamps are not on a {spec.fps} Hz grid "
                    f"(steps {dt.min():.4f}-{dt.max():.4f} s); resample it before exporting"
                )

    names = dataset.meta.get("obs_names", {}) if isinstance(dataset.meta.get("obs_names"), dict) else {}
    features: dict[str, dict[str, Any]] = {
        f"{OBS_PREFIX}{k}": {"dtype": "float32", "shape": [obs_dims[k]], "names": names.get(k)} for k in keys
    }
    action_names = spec.action_names or dataset.meta.get("action_names")
    features[ACTION] = {"dtype": "float32", "shape": [action_dim], "names": action_names}
    features.update(INDEX_FEATURES)

    columns: dict[str, list[np.ndarray]] = {name: [] for name in features}
    episode_rows: list[dict[str, Any]] = []
    cams = sorted(dataset.image_shapes)
    start = 0
    for i, ep in enumerate(dataset.episodes):
        n = len(ep)
        for k in keys:
            columns[f"{OBS_PREFIX}{k}"].append(np.asarray(ep.obs[k], dtype=np.float32).reshape(n, -1))
        columns[ACTION].append(np.asarray(ep.action, dtype=np.float32))
        frame = np.arange(n, dtype=np.int64)
        columns["timestamp"].append((frame / spec.fps).astype(np.float32))
        columns["frame_index"].append(frame)
        columns["episode_index"].append(np.full(n, i, dtype=np.int64))
        columns["index"].append(np.arange(start, start + n, dtype=np.int64))
        columns["task_index"].append(np.zeros(n, dtype=np.int64))
        row: dict[str, Any] = {
            "episode_index": i,
            "tasks": [spec.task],
            "length": n,
            "data/chunk_index": 0,
            "data/file_index": 0,
            "dataset_from_index": start,
            "dataset_to_index": start + n,
            "meta/episodes/chunk_index": 0,
            "meta/episodes/file_index": 0,
        }
        for name in features:
            for stat, value in _stats(columns[name][-1]).items():
                row[f"stats/{name}/{stat}"] = value.tolist()
        for cam in cams:  # this episode's span of the camera's one video file
            key = f"{IMAGES_PREFIX}{cam}"
            row.update(
                {
                    f"videos/{key}/chunk_index": 0,
                    f"videos/{key}/file_index": 0,
                    f"videos/{key}/from_timestamp": start / spec.fps,
                    f"videos/{key}/to_timestamp": (start + n) / spec.fps,
                }
            )
            for stat, value in _image_stats(ep.images[cam]).items():
                row[f"stats/{key}/{stat}"] = value.tolist()
        episode_rows.append(row)
        start += n

    tmp = root.with_name(root.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "meta").mkdir(parents=True)
    video_features: dict[str, dict[str, Any]] = {}
    for cam in cams:
        from .video import encode_frames

        key = f"{IMAGES_PREFIX}{cam}"
        frames = np.concatenate([ep.images[cam] for ep in dataset.episodes])
        try:
            vinfo = encode_frames(frames, tmp / VIDEO_PATH.format(video_key=key, chunk_index=0, file_index=0), spec.fps)
        except ValueError as exc:
            raise DatasetError(f"camera {cam}: {exc}") from exc
        h, w = dataset.image_shapes[cam]
        video_features[key] = {
            "dtype": "video",
            "shape": [h, w, 3],
            "names": ["height", "width", "channels"],
            "info": vinfo,
        }

    arrays, fields = [], []
    for name, ft in features.items():
        data = np.concatenate(columns[name])
        dtype = pa.float32() if ft["dtype"] == "float32" else pa.int64()
        if name in INDEX_FEATURES:
            arrays.append(pa.array(data.reshape(-1), type=dtype))
            fields.append(pa.field(name, dtype))
        else:
            width = int(ft["shape"][0])
            flat = pa.array(data.reshape(-1), type=dtype)
            arrays.append(pa.FixedSizeListArray.from_arrays(flat, width))
            fields.append(pa.field(name, pa.list_(dtype, width)))
    data_file = tmp / DATA_PATH.format(chunk_index=0, file_index=0)
    data_file.parent.mkdir(parents=True)
    pq.write_table(pa.Table.from_arrays(arrays, schema=pa.schema(fields)), data_file)

    episodes_file = tmp / EPISODES_PATH.format(chunk_index=0, file_index=0)
    episodes_file.parent.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(episode_rows), episodes_file)

    import pandas as pd

    pd.DataFrame({"task_index": [0]}, index=[spec.task]).to_parquet(tmp / "meta" / "tasks.parquet")
    all_stats = {name: _stats(np.concatenate(columns[name])) for name in features}
    for cam in cams:
        all_stats[f"{IMAGES_PREFIX}{cam}"] = _image_stats(np.concatenate([ep.images[cam] for ep in dataset.episodes]))
    (tmp / "meta" / "stats.json").write_text(
        json.dumps({k: {s: v.tolist() for s, v in st.items()} for k, st in all_stats.items()}, indent=4)
    )
    info = {
        "codebase_version": CODEBASE_VERSION,
        "robot_type": spec.robot_type,
        "total_episodes": len(dataset.episodes),
        "total_frames": start,
        "total_tasks": 1,
        "chunks_size": 1000,
        "data_files_size_in_mb": 100,
        "video_files_size_in_mb": 200,
        "fps": _fps_of(spec.fps),
        "splits": {"train": f"0:{len(dataset.episodes)}"},
        "data_path": DATA_PATH,
        "video_path": VIDEO_PATH if cams else None,
        "features": {**features, **video_features},
        # The project's own facts a deployment checks (LeRobot readers ignore the key).
        CDP_KEY: {k: dataset.meta[k] for k in CDP_META if k in dataset.meta},
    }
    (tmp / "meta" / "info.json").write_text(json.dumps(info, indent=4))
    if root.exists():
        shutil.rmtree(root)
    tmp.rename(root)
    return root


def load_lerobot(root: str | Path) -> EpisodeDataset:
    """Load a local LeRobot v3.x dataset folder as the project's episodes (low-dim features only).

    ``meta`` of the result holds ``rate_hz`` (the dataset's fps), the task strings, the action's
    names, and ``skipped_features`` (camera and other non-numeric features left out).
    """
    import pyarrow.parquet as pq

    root = Path(root)
    info_path = root / "meta" / "info.json"
    if not info_path.is_file():
        raise DatasetError(f"{root}: not a LeRobot dataset (no meta/info.json)")
    try:
        info = json.loads(info_path.read_text())
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{info_path}: not valid JSON ({exc})") from exc
    version = str(info.get("codebase_version", ""))
    if not version.startswith("v3."):
        raise DatasetError(
            f"{root}: LeRobot codebase_version {version or '(none)'}; only v3.x is read "
            "(convert older datasets with LeRobot's convert_dataset_v21_to_v30)"
        )
    features: dict[str, dict[str, Any]] = info.get("features", {})
    if ACTION not in features:
        raise DatasetError(f"{info_path}: no '{ACTION}' feature (features: {sorted(features)})")
    obs_features, skipped, videos = {}, [], {}
    for name, ft in features.items():
        if not name.startswith(OBS_PREFIX):
            continue
        shape = list(ft.get("shape") or [])
        if ft.get("dtype") in NUMERIC_DTYPES and len(shape) == 1:
            obs_features[name[len(OBS_PREFIX) :]] = name
        elif ft.get("dtype") == "video" and info.get("video_path"):
            cam = name[len(IMAGES_PREFIX) :] if name.startswith(IMAGES_PREFIX) else name[len(OBS_PREFIX) :]
            videos[cam] = name
        else:
            skipped.append(name)
    if not obs_features:
        raise DatasetError(f"{root}: no low-dimensional observation features (skipped: {skipped})")

    files = sorted((root / "data").glob("*/*.parquet"))
    if not files:
        raise DatasetError(f"{root}: no data files under data/")
    wanted = [*obs_features.values(), ACTION, "episode_index", "frame_index", "timestamp"]
    try:
        tables = [pq.read_table(f, columns=wanted) for f in files]
    except Exception as exc:  # missing columns, corrupt file: the user needs the file's name
        raise DatasetError(f"{root}: unreadable data file ({type(exc).__name__}: {exc})") from exc

    def column(name: str) -> np.ndarray:
        parts = []
        for t in tables:
            col = t.column(name).combine_chunks()
            if hasattr(col, "flatten") and str(col.type).startswith(("fixed_size_list", "list")):
                width = int(features[name]["shape"][0])
                parts.append(np.asarray(col.flatten().to_numpy(zero_copy_only=False)).reshape(-1, width))
            else:
                parts.append(np.asarray(col.to_numpy(zero_copy_only=False)))
        return np.concatenate(parts)

    ep_index, frame_index, timestamp = column("episode_index"), column("frame_index"), column("timestamp")
    obs_all = {k: column(name).astype(np.float32) for k, name in obs_features.items()}
    action_all = column(ACTION).astype(np.float32)
    episodes = []
    for e in np.unique(ep_index):
        rows = np.flatnonzero(ep_index == e)
        rows = rows[np.argsort(frame_index[rows], kind="stable")]
        if not np.array_equal(frame_index[rows], np.arange(len(rows))):
            raise DatasetError(f"{root}: episode {int(e)} has missing or repeated frame_index values")
        episodes.append(
            Episode(
                obs={k: v[rows] for k, v in obs_all.items()},
                action=action_all[rows],
                timestamp=timestamp[rows].astype(np.float64),
                name=f"episode_{int(e):06d}",
            )
        )
    if videos:
        _attach_video_frames(root, info, videos, episodes, np.unique(ep_index))
    obs_dims, action_dim = validate_episodes(episodes, str(root))
    tasks: list[str] = []
    tasks_path = root / "meta" / "tasks.parquet"
    if tasks_path.is_file():
        tasks = [str(t) for t in pq.read_table(tasks_path).to_pandas().index]
    meta = {
        **(info.get(CDP_KEY) or {}),
        "format": "lerobot",
        "codebase_version": version,
        "rate_hz": float(info.get("fps") or 0.0),
        "robot_type": info.get("robot_type"),
        "tasks": tasks,
        "action_names": features[ACTION].get("names"),
        "skipped_features": skipped,
    }
    shapes = {c: (int(v.shape[1]), int(v.shape[2])) for c, v in episodes[0].images.items()}
    return EpisodeDataset(episodes, obs_dims, action_dim, meta, shapes)


def _attach_video_frames(
    root: Path, info: dict[str, Any], videos: dict[str, str], episodes: list[Episode], indices: np.ndarray
) -> None:
    """Decode each camera's video files and give every episode its frames (by the episode rows' spans)."""
    import pyarrow.parquet as pq

    from .video import decode_frames

    ep_files = sorted((root / "meta" / "episodes").glob("*/*.parquet"))
    if not ep_files:
        raise DatasetError(f"{root}: video features but no meta/episodes/ files to locate their frames")
    rows = {int(r["episode_index"]): r for f in ep_files for r in pq.read_table(f).to_pylist()}
    fps = float(info.get("fps") or 0.0)
    decoded: dict[Path, np.ndarray] = {}
    for ep, e in zip(episodes, indices):
        row = rows.get(int(e))
        if row is None:
            raise DatasetError(f"{root}: episode {int(e)} has no row in meta/episodes/")
        for cam, key in videos.items():
            try:
                chunk, file, t0 = (row[f"videos/{key}/{c}"] for c in ("chunk_index", "file_index", "from_timestamp"))
            except KeyError as exc:
                raise DatasetError(f"{root}: episode {int(e)} does not say where {key}'s frames are ({exc})") from None
            path = root / str(info["video_path"]).format(video_key=key, chunk_index=chunk, file_index=file)
            if path not in decoded:
                try:
                    decoded[path] = decode_frames(path)
                except ValueError as exc:
                    raise DatasetError(str(exc)) from exc
            first = int(round(float(t0) * fps))
            frames = decoded[path][first : first + len(ep)]
            if len(frames) != len(ep):
                raise DatasetError(
                    f"{path}: episode {int(e)} needs frames {first}..{first + len(ep) - 1}, the file has {len(decoded[path])}"
                )
            ep.images[cam] = frames
