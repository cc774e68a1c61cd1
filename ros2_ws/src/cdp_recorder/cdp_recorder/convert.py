"""``cdp-record-convert``: recorded MCAP episodes -> the cdp_core episode dataset ``cdp train`` reads.

Per episode:

1. **Time grid** at the policy rate (default: the task's control rate) over the recorded episode
   (from its ``start`` to its ``stop``, where every required input has arrived).
2. **Timestamp alignment**: at each grid time t, each input is its latest message whose *header
   stamp* is <= t (sample-and-hold: no interpolation, so every dataset value is a value some
   message carried). Observations are built with the policy node's own table
   (``cdp_policy.observations.OBS_SOURCES``, same quaternion sign conventions), so a model
   trained here sees the same numbers from the same messages at deployment.
3. **Action** (``--action``): ``command`` = the joint target the command topic (default
   ``/teleop/command``) had due at t (linear between a chunk's points); ``next_state`` = the
   measured joint positions one grid step later.
4. **Camera frames** (``--camera name=/topic``, optional): per grid step and camera, the frame
   whose capture stamp is closest to the arm state's stamp among those captured by t, fitted to
   ``--image-size`` by the policy node's own :func:`cdp_policy.camera_frames.fit_frame`; a frame
   older than ``max_image_age_s`` counts as a stale sample. The episodes hold them as uint8 RGB.
5. **Idle trimming**: steps where neither the arm nor the command moves (< ``idle_speed``
   rad/s) are cut at the start (keeping ``keep_head_s``), at the end (keeping ``keep_tail_s``:
   demonstrations should show the arm staying at the goal) and inside (pauses longer than
   ``max_pause_s`` are shortened to it).
6. **Validation report** per topic: message count, rate, rate drift (second half vs first half),
   gaps, estimated dropped messages, header-stamp-to-receive latency and its drift; stale
   samples on the grid. Episodes missing an input, too stale, or without motion are rejected
   (listed with the reason) instead of written.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from cdp_core.data.episodes import Episode, write_dataset_meta, write_episode
from cdp_core.robot.rotations import TOOL_DOWN
from cdp_core.sim.tasks import get_task
from cdp_policy.camera_frames import CameraFrameError, decode_image, fit_frame, parse_camera_topics
from cdp_policy.observations import (
    EE_POSE,
    FINGERS,
    JOINTS,
    OBJECT_POSE,
    OBJECT_UPRIGHT_XYZW,
    OBS_SOURCES,
    canonical_quat,
)
from cdp_ros_common.conversions import msg_to_chunk
from cdp_ros_common.names import FINGER_NAMES, JOINT_NAMES

from .episode_file import EpisodeFileError, RecordedEpisode, TopicMessages, read_episode
from .writer import FINAL_SUFFIX, INCOMPLETE_SUFFIX

INPUT_TOPIC = {
    JOINTS: "/joint_states",
    FINGERS: "/joint_states",
    EE_POSE: "/franka/ee_pose",
    OBJECT_POSE: "/perception/object_pose",
}


@dataclass
class ConvertConfig:
    rate_hz: float = 0.0  # 0: the task's control rate
    action: str = "command"  # command | next_state
    command_topic: str = "/teleop/command"
    idle_speed: float = 0.02  # rad/s
    keep_head_s: float = 0.3
    keep_tail_s: float = 2.0
    max_pause_s: float = 1.0
    max_sample_age_s: float = 0.25
    max_stale_fraction: float = 0.05
    gap_factor: float = 2.5
    success_only: bool = False
    task: str = ""  # "" = the task named in the episode's metadata
    #: Camera frames into the dataset: "camera=/topic" entries (sensor_msgs/Image, rgb8 or bgr8).
    cameras: tuple[str, ...] = ()
    #: Frame size (height, width) stored in the dataset (the image policy's ``image_size``).
    image_size: tuple[int, int] = (96, 96)
    #: A frame older than this (s) at its grid step is a stale sample (the policy node's limit).
    max_image_age_s: float = 0.3

    def __post_init__(self) -> None:
        if self.action not in ("command", "next_state"):
            raise ValueError(f"action must be 'command' or 'next_state', got {self.action!r}")
        if self.rate_hz < 0:
            raise ValueError("rate_hz must be >= 0")
        parse_camera_topics(self.cameras)  # a malformed entry is an error before any file is read
        if len(self.image_size) != 2 or min(self.image_size) < 8:
            raise ValueError(f"image_size must be (height, width) >= 8, got {self.image_size}")


class ConversionError(ValueError):
    """An episode that cannot become training data (the reason says why)."""


# --- per-topic arrays ------------------------------------------------------------------------


def _sorted(tm: TopicMessages) -> tuple[np.ndarray, list[Any], np.ndarray, int]:
    stamps = np.asarray(tm.stamp, dtype=np.float64)
    order = np.argsort(stamps, kind="stable")
    nonmono = int(np.sum(np.diff(stamps) < 0))
    return stamps[order], [tm.msgs[i] for i in order], np.asarray(tm.log_ns, dtype=np.int64)[order], nonmono


def _joint_rows(msgs: list[Any], wanted: list[str]) -> np.ndarray:
    rows = np.full((len(msgs), len(wanted)), np.nan)
    for i, m in enumerate(msgs):
        idx = {n: k for k, n in enumerate(m.name)}
        if all(n in idx for n in wanted) and len(m.position) == len(m.name):
            rows[i] = [m.position[idx[n]] for n in wanted]
    return rows


def _pose_rows(msgs: list[Any], reference: np.ndarray) -> np.ndarray:
    out = np.empty((len(msgs), 7))
    for i, m in enumerate(msgs):
        p, q = m.pose.position, m.pose.orientation
        out[i, :3] = (p.x, p.y, p.z)
        out[i, 3:] = canonical_quat(np.array([q.x, q.y, q.z, q.w]), reference)
    return out


def topic_report(stamps: np.ndarray, log_ns: np.ndarray, gap_factor: float, nonmono: int) -> dict[str, Any]:
    n = len(stamps)
    rep: dict[str, Any] = {"count": n, "non_monotonic_stamps": nonmono}
    if n < 3:
        return rep
    iv = np.diff(stamps)
    med = float(np.median(iv))
    half = n // 2
    r1 = (half - 1) / max(stamps[half - 1] - stamps[0], 1e-9)
    r2 = (n - half - 1) / max(stamps[-1] - stamps[half], 1e-9)
    gaps = (
        [(float(stamps[i] - stamps[0]), float(iv[i])) for i in np.flatnonzero(iv > gap_factor * med)] if med > 0 else []
    )
    dropped = int(sum(max(0, round(g / med) - 1) for _, g in gaps)) if med > 0 else 0
    lat = log_ns * 1e-9 - stamps
    slope = float(np.polyfit(stamps - stamps[0], lat, 1)[0]) if stamps[-1] > stamps[0] else 0.0
    rep.update(
        rate_hz=1.0 / med if med > 0 else float("inf"),
        rate_drift_pct=100.0 * (r2 - r1) / r1 if r1 > 0 else 0.0,
        gaps=[{"at_s": round(a, 4), "length_s": round(b, 4)} for a, b in gaps[:20]],
        gap_count=len(gaps),
        dropped_estimate=dropped,
        max_interval_s=float(iv.max()),
        latency_ms_median=1e3 * float(np.median(lat)),
        latency_ms_p99=1e3 * float(np.percentile(lat, 99)),
        latency_drift_ms_per_min=1e3 * 60.0 * slope,
    )
    return rep


def _hold_index(stamps: np.ndarray, t: np.ndarray) -> np.ndarray:
    return np.searchsorted(stamps, t, side="right") - 1


def _command_at(msgs: list[Any], stamps: np.ndarray, t: np.ndarray) -> np.ndarray:
    chunks = [msg_to_chunk(m) for m in msgs]
    idx = _hold_index(stamps, t)
    out = np.empty((len(t), len(JOINT_NAMES)))
    for k, (i, tk) in enumerate(zip(idx, t)):
        times, q = chunks[i]
        out[k] = [np.interp(tk, times, q[:, j]) for j in range(q.shape[1])] if len(times) > 1 else q[0]
    return out


# --- one episode --------------------------------------------------------------------------


def convert_episode(ep: RecordedEpisode, cfg: ConvertConfig) -> tuple[Episode, dict[str, Any]]:
    """(training episode, report); raises ConversionError with the reason for a rejected episode."""
    meta = ep.episode
    task_name = cfg.task or meta.get("task", "")
    if not task_name:
        raise ConversionError("no task in the episode metadata: pass --task")
    task = get_task(task_name)
    spec = task.spec
    rate = cfg.rate_hz or spec.control_hz
    keys = list(spec.obs_dims)
    needed = sorted({i for k in keys for i in OBS_SOURCES[k].inputs})
    camera_topics = parse_camera_topics(cfg.cameras)
    topics = sorted(
        {INPUT_TOPIC[i] for i in needed}
        | ({cfg.command_topic} if cfg.action == "command" else set())
        | set(camera_topics.values())
    )
    report: dict[str, Any] = {
        "file": str(ep.path),
        "task": task_name,
        "success": ep.success,
        "rate_hz": rate,
        "action": cfg.action,
        "topics": {},
    }
    data: dict[str, tuple[np.ndarray, list[Any]]] = {}
    for topic in topics:
        tm = ep.topics.get(topic)
        if tm is None or not tm.msgs:
            raise ConversionError(f"no messages on {topic}")
        stamps, msgs, log_ns, nonmono = _sorted(tm)
        data[topic] = (stamps, msgs)
        report["topics"][topic] = topic_report(stamps, log_ns, cfg.gap_factor, nonmono)
    arrays: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    js_stamps, js_msgs = data["/joint_states"]
    if JOINTS in needed:
        arrays[JOINTS] = (js_stamps, _joint_rows(js_msgs, JOINT_NAMES))
    if FINGERS in needed:
        arrays[FINGERS] = (js_stamps, _joint_rows(js_msgs, FINGER_NAMES))
    if EE_POSE in needed:
        s, m = data["/franka/ee_pose"]
        arrays[EE_POSE] = (s, _pose_rows(m, TOOL_DOWN))
    if OBJECT_POSE in needed:
        s, m = data["/perception/object_pose"]
        arrays[OBJECT_POSE] = (s, _pose_rows(m, OBJECT_UPRIGHT_XYZW))
    # Grid: from the episode's start (or when the last input first arrived) to its stop.
    start = float(meta["start_ns"]) * 1e-9 if "start_ns" in meta else -np.inf
    stop = float(meta["stop_ns"]) * 1e-9 if "stop_ns" in meta else np.inf
    firsts = [s[0] for s, _ in data.values()]
    t0 = max(start, max(firsts))
    t1 = min(stop, min(s[-1] for s, _ in data.values()) + cfg.max_sample_age_s)
    n = int(np.floor((t1 - t0) * rate)) + 1
    if n < 2:
        raise ConversionError(f"episode too short: {max(t1 - t0, 0):.2f} s of overlapping inputs")
    t = t0 + np.arange(n) / rate
    values: dict[str, np.ndarray] = {}
    stale = np.zeros(n, dtype=bool)
    for key, (stamps, rows) in arrays.items():
        idx = _hold_index(stamps, t)
        stale |= (t - stamps[idx]) > cfg.max_sample_age_s
        values[key] = rows[idx]
        if not np.isfinite(values[key]).all():
            raise ConversionError(f"{INPUT_TOPIC[key]} lacks joints {JOINT_NAMES if key == JOINTS else FINGER_NAMES}")
    obs = {
        k: np.stack([OBS_SOURCES[k].build({i: values[i][s] for i in OBS_SOURCES[k].inputs}) for s in range(n)])
        for k in keys
    }
    if cfg.action == "command":
        stamps, msgs = data[cfg.command_topic]
        action = _command_at(msgs, stamps, t)
        stale |= (t - stamps[_hold_index(stamps, t)]) > cfg.max_sample_age_s
    else:
        q = values[JOINTS]
        action = np.concatenate([q[1:], q[-1:]])
    images: dict[str, np.ndarray] = {}
    for camera, topic in camera_topics.items():
        cam_stamps, cam_msgs = data[topic]
        ref = js_stamps[_hold_index(js_stamps, t)]  # the arm state each grid step shows
        pick, cam_stale = frames_for_grid(cam_stamps, t, ref, cfg.max_image_age_s)
        stale |= cam_stale
        cache: dict[int, np.ndarray] = {}
        for i in np.unique(pick):
            m = cam_msgs[i]
            try:
                rgb = decode_image(f"{topic} frame {i}", m.height, m.width, m.encoding, m.step, m.data)
                cache[int(i)] = fit_frame(rgb, tuple(cfg.image_size), topic)
            except CameraFrameError as exc:
                raise ConversionError(str(exc)) from None
        images[camera] = np.stack([cache[int(i)] for i in pick])
    report["stale_samples"] = int(stale.sum())
    if stale.mean() > cfg.max_stale_fraction:
        raise ConversionError(
            f"{stale.mean():.0%} of the grid samples are older than max_sample_age_s="
            f"{cfg.max_sample_age_s:g} (limit {cfg.max_stale_fraction:.0%}): see the topic report"
        )
    keep, trim = idle_keep_mask(values[JOINTS], action, rate, cfg)
    report.update(steps_recorded=n, steps_kept=int(keep.sum()), trimmed=trim)
    if not keep.any():
        raise ConversionError("the arm never moved (every step is idle)")
    episode = Episode(
        obs={k: v[keep].astype(np.float32) for k, v in obs.items()},
        action=action[keep].astype(np.float32),
        timestamp=t[keep],
        name=ep.path.stem,
        images={c: v[keep] for c, v in images.items()},
    )
    return episode, report


def frames_for_grid(
    stamps: np.ndarray, t: np.ndarray, ref: np.ndarray, max_age_s: float
) -> tuple[np.ndarray, np.ndarray]:
    """Per grid time ``t[k]``: the index of the frame (capture ``stamps``, sorted) closest to the arm
    state's stamp ``ref[k]`` among frames captured by ``t[k]`` (what the policy node could have had
    then), and whether that frame is older than ``max_age_s`` at ``t[k]``."""
    before = np.clip(_hold_index(stamps, ref), 0, len(stamps) - 1)  # last frame <= the state (or the first)
    after = np.minimum(before + 1, len(stamps) - 1)
    usable = stamps[after] <= t
    closer = np.abs(stamps[after] - ref) < np.abs(stamps[before] - ref)
    pick = np.where(usable & closer, after, before)
    return pick, (t - stamps[pick]) > max_age_s


def idle_keep_mask(q: np.ndarray, action: np.ndarray, rate: float, cfg: ConvertConfig) -> tuple[np.ndarray, dict]:
    """Which grid steps to keep after idle trimming, and how many were cut where."""
    n = len(q)
    speed = np.zeros(n)
    if n > 1:
        move = np.maximum(np.abs(np.diff(q, axis=0)).max(axis=1), np.abs(np.diff(action, axis=0)).max(axis=1)) * rate
        speed[:-1] = move
        speed[-1] = move[-1]
    moving = speed >= cfg.idle_speed
    keep = np.ones(n, dtype=bool)
    trim = {"head": 0, "tail": 0, "pauses": 0}
    if not moving.any():
        return np.zeros(n, dtype=bool), trim
    first, last = int(np.argmax(moving)), int(n - 1 - np.argmax(moving[::-1]))
    head = max(0, first - int(round(cfg.keep_head_s * rate)))
    tail = min(n, last + 1 + int(round(cfg.keep_tail_s * rate)))
    keep[:head], keep[tail:] = False, False
    trim["head"], trim["tail"] = head, n - tail
    max_pause = int(round(cfg.max_pause_s * rate))
    k = first
    while k <= last:
        if not moving[k]:
            j = k
            while j <= last and not moving[j]:
                j += 1
            if j - k > max_pause:
                keep[k + max_pause : j] = False
                trim["pauses"] += j - k - max_pause
            k = j
        else:
            k += 1
    return keep, trim


# --- many episodes -----------------------------------------------------------------------


def find_recordings(inputs: list[str | Path]) -> list[Path]:
    """Finished episode files among ``inputs`` (files or folders); partial / incomplete / discarded ones are skipped."""
    files: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            files += sorted(
                f for f in p.glob(f"*{FINAL_SUFFIX}") if not f.name.endswith((INCOMPLETE_SUFFIX, ".discarded.mcap"))
            )
        elif p.is_file():
            files.append(p)
        else:
            raise FileNotFoundError(f"no such recording or folder: {p}")
    return files


def convert(inputs: list[str | Path], out: str | Path, cfg: ConvertConfig) -> dict[str, Any]:
    files = find_recordings(inputs)
    if not files:
        raise ConversionError(f"no finished recordings (*.mcap) in {', '.join(map(str, inputs))}")
    kept: list[tuple[Episode, dict]] = []
    rejected = []
    task_name = cfg.task
    for f in files:
        try:
            ep = read_episode(f)
            if cfg.success_only and ep.success is not True:
                raise ConversionError(f"success flag is {ep.success} (--success-only)")
            episode, rep = convert_episode(ep, cfg)
        except (ConversionError, EpisodeFileError) as exc:
            rejected.append({"file": str(f), "reason": str(exc)})
            continue
        if task_name and rep["task"] != task_name:
            rejected.append({"file": str(f), "reason": f"task {rep['task']} differs from {task_name}"})
            continue
        task_name = rep["task"]
        kept.append((episode, rep))
    report: dict[str, Any] = {"config": asdict(cfg), "episodes": [r for _, r in kept], "rejected": rejected}
    if not kept:
        report["error"] = "no episode could be converted"
        return report
    spec = get_task(task_name).spec
    rate = cfg.rate_hz or spec.control_hz
    root = Path(out)
    cams = parse_camera_topics(cfg.cameras)
    write_dataset_meta(
        root,
        spec.obs_dims,
        7,
        action_names=spec.action_names,
        rate_hz=rate,
        task=task_name,
        generator="cdp-record-convert",
        action_definition=cfg.action,
        command_topic=cfg.command_topic,
        sources=[r["file"] for _, r in kept],
        **({"cameras": {c: list(cfg.image_size) for c in cams}} if cams else {}),
        **({"camera_topics": cams} if cams else {}),
    )
    for i, (episode, rep) in enumerate(kept):
        rep["dataset_file"] = str(write_episode(root, i, episode))
    report["summary"] = {
        "episodes": len(kept),
        "rejected": len(rejected),
        "steps": int(sum(len(e) for e, _ in kept)),
        "dataset": str(root),
    }
    (root / "conversion_report.json").write_text(json.dumps(report, indent=2, default=float))
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="cdp-record-convert", description=__doc__.splitlines()[0])
    ap.add_argument("inputs", nargs="+", help="recorded episodes (.mcap) or folders of them")
    ap.add_argument("--out", required=True, help="dataset folder (cdp_core episode format)")
    ap.add_argument("--rate", type=float, default=0.0, help="policy rate in Hz (default: the task's control rate)")
    ap.add_argument("--action", choices=("command", "next_state"), default="command")
    ap.add_argument("--command-topic", default="/teleop/command")
    ap.add_argument("--task", default="", help="task name (default: from each episode's metadata)")
    ap.add_argument("--success-only", action="store_true", help="skip episodes not marked successful")
    ap.add_argument("--max-pause", type=float, default=1.0, help="idle pauses longer than this are shortened (s)")
    ap.add_argument("--keep-tail", type=float, default=2.0, help="idle time kept after the last motion (s)")
    ap.add_argument(
        "--camera",
        action="append",
        default=[],
        metavar="NAME=/TOPIC",
        help="put this camera's frames in the episodes (repeatable), e.g. agentview=/camera/color/image_raw",
    )
    ap.add_argument("--image-size", type=int, nargs=2, default=(96, 96), metavar=("H", "W"))
    ap.add_argument("--report", help="also write the validation report here (JSON)")
    args = ap.parse_args(argv)
    try:
        cfg = ConvertConfig(
            rate_hz=args.rate,
            action=args.action,
            command_topic=args.command_topic,
            task=args.task,
            success_only=args.success_only,
            max_pause_s=args.max_pause,
            keep_tail_s=args.keep_tail,
            cameras=tuple(args.camera),
            image_size=(int(args.image_size[0]), int(args.image_size[1])),
        )
        report = convert(args.inputs, args.out, cfg)
    except (ValueError, FileNotFoundError) as exc:
        print(f"cdp-record-convert: {exc}", file=sys.stderr)
        return 2
    text = json.dumps(report, indent=2, default=float)
    if args.report:
        Path(args.report).write_text(text)
    for r in report["episodes"]:
        worst = max((t.get("dropped_estimate", 0) for t in r["topics"].values()), default=0)
        print(
            f"kept {r['file']}: {r['steps_kept']}/{r['steps_recorded']} steps, success={r['success']}, "
            f"stale={r['stale_samples']}, dropped<= {worst}"
        )
    for r in report["rejected"]:
        print(f"REJECTED {r['file']}: {r['reason']}")
    if "error" in report:
        print(f"cdp-record-convert: {report['error']}", file=sys.stderr)
        return 1
    print(json.dumps(report["summary"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
