"""Runs inside the LeRobot environment (scripts/setup_lerobot.sh), never in the project's own.

The other side of the LeRobot round-trip tests: LeRobot's own ``LeRobotDataset`` (the
``lerobot-dataset`` package, written by the LeRobot authors) reads what ``cdp dataset export``
wrote, and writes a dataset through its own recording API for ``cdp train`` to load.

    python lerobot_client.py read ROOT OUT.npz     every frame, as LeRobotDataset returns it
    python lerobot_client.py write ROOT SPEC.json  a dataset recorded with add_frame/save_episode
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np


def read(root: str, out: str) -> None:
    from ledataset.datasets.lerobot_dataset import LeRobotDataset

    ds = LeRobotDataset("local/cdp-export", root=root)
    frames = [ds[i] for i in range(len(ds))]
    arrays = {
        key: np.stack([np.asarray(f[key]) for f in frames])
        for key in frames[0]
        if key != "task"  # strings travel in the JSON summary
    }
    # delta_timestamps: LeRobot's way of addressing a chunk of future actions by time
    chunked = LeRobotDataset("local/cdp-export", root=root, delta_timestamps={"action": [k / ds.fps for k in range(4)]})
    arrays["action_chunk_0"] = np.asarray(chunked[0]["action"])
    arrays["action_chunk_0_pad"] = np.asarray(chunked[0]["action_is_pad"])
    np.savez(out, **arrays)
    summary = {
        "num_frames": len(ds),
        "num_episodes": ds.num_episodes,
        "fps": ds.fps,
        "tasks": sorted({f["task"] for f in frames}),
        "features": sorted(ds.features),
        "stats_keys": sorted(ds.meta.stats),
    }
    Path(out).with_suffix(".json").write_text(json.dumps(summary))


def write(root: str, spec_path: str) -> None:
    from ledataset.datasets.lerobot_dataset import LeRobotDataset

    spec = json.loads(Path(spec_path).read_text())
    rng = np.random.default_rng(spec["seed"])
    features = {
        "observation.state": {"dtype": "float32", "shape": (spec["state_dim"],), "names": None},
        "action": {"dtype": "float32", "shape": (spec["action_dim"],), "names": None},
    }
    ds = LeRobotDataset.create("local/lerobot-made", fps=spec["fps"], features=features, root=root, use_videos=False)
    for _ in range(spec["episodes"]):
        # A point that moves towards a goal: the action is the next state (a learnable target).
        state = rng.uniform(-1, 1, spec["state_dim"]).astype(np.float32)
        for _ in range(spec["length"]):
            nxt = (0.8 * state).astype(np.float32)
            ds.add_frame({"observation.state": state, "action": nxt[: spec["action_dim"]], "task": spec["task"]})
            state = nxt
        ds.save_episode()
    ds.finalize()


if __name__ == "__main__":
    {"read": read, "write": write}[sys.argv[1]](*sys.argv[2:])
