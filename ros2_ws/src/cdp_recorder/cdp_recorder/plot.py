"""``cdp-record-plot``: one recorded episode (MCAP) as a picture.

Per joint: the measured position (``/joint_states``), what the safety filter commanded
(``/safety/command``) and what the source asked for (the first point of each
``/policy/action_chunk`` or ``/teleop/command``); vertical lines where a new policy chunk arrived;
red marks and a list of the safety filter's interventions (``/safety/intervention``); the episode
events. Time is seconds since the first message. Needs only the ``mcap`` packages and matplotlib.

    cdp-record-plot recordings/episode_000003.mcap --out episode_000003.png
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .episode_file import EpisodeFileError, RecordedEpisode, episode_events, read_episode

JOINT_STATES, SAFETY_COMMAND = "/joint_states", "/safety/command"
POLICY_CHUNK, TELEOP_COMMAND = "/policy/action_chunk", "/teleop/command"
INTERVENTION = "/safety/intervention"
JOINTS = [f"fr3_joint{i}" for i in range(1, 8)]


@dataclass
class EpisodeSeries:
    """The time series a plot shows (times in s since the episode's first message)."""

    measured_t: np.ndarray
    measured_q: np.ndarray  # [N, 7]
    commanded_t: np.ndarray
    commanded_q: np.ndarray  # [M, 7]
    requested_t: np.ndarray
    requested_q: np.ndarray  # [K, 7]: the first point of each source chunk / teleop command
    chunk_t: np.ndarray  # arrivals of policy chunks
    interventions: list[tuple[float, str]] = field(default_factory=list)
    events: list[tuple[float, str]] = field(default_factory=list)


def _joint_rows(msgs: list, names_from: str) -> np.ndarray:
    rows = []
    for m in msgs:
        names = list(m.name if names_from == "state" else m.joint_names)
        values = list(m.position) if names_from == "state" else (list(m.points[0].positions) if m.points else [])
        if not values:
            rows.append([np.nan] * 7)
            continue
        idx = {n: i for i, n in enumerate(names)}
        if all(j in idx for j in JOINTS):
            rows.append([values[idx[j]] for j in JOINTS])
        else:  # unnamed or differently named: the first seven in order
            rows.append((values + [np.nan] * 7)[:7])
    return np.array(rows, dtype=np.float64).reshape(-1, 7)


def episode_series(ep: RecordedEpisode) -> EpisodeSeries:
    """Extract what :func:`plot_episode` draws; raises EpisodeFileError when the arm's state is missing."""
    js = ep.topics.get(JOINT_STATES)
    if js is None or not js.msgs:
        raise EpisodeFileError(f"{ep.path}: no {JOINT_STATES} in the recording, nothing to plot")
    t0 = min(min(tm.log_ns) for tm in ep.topics.values() if tm.log_ns)

    def times(tm) -> np.ndarray:
        return (np.array(tm.log_ns, dtype=np.float64) - t0) * 1e-9

    empty_t, empty_q = np.zeros(0), np.zeros((0, 7))
    cmd = ep.topics.get(SAFETY_COMMAND)
    src = ep.topics.get(POLICY_CHUNK) or ep.topics.get(TELEOP_COMMAND)
    chunks = ep.topics.get(POLICY_CHUNK)
    iv = ep.topics.get(INTERVENTION)
    return EpisodeSeries(
        measured_t=times(js),
        measured_q=_joint_rows(js.msgs, "state"),
        commanded_t=times(cmd) if cmd else empty_t,
        commanded_q=_joint_rows(cmd.msgs, "trajectory") if cmd else empty_q,
        requested_t=times(src) if src else empty_t,
        requested_q=_joint_rows(src.msgs, "trajectory") if src else empty_q,
        chunk_t=times(chunks) if chunks else empty_t,
        interventions=[(t, str(m.data)) for t, m in zip(times(iv), iv.msgs, strict=True)] if iv else [],
        events=[((e["log_ns"] - t0) * 1e-9, str(e.get("event", "?"))) for e in episode_events(ep)],
    )


def plot_episode(path: str | Path, out: str | Path, title: str | None = None) -> Path:
    """Draw the episode recorded in ``path`` into the PNG ``out``; returns ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = read_episode(
        path, topics=[JOINT_STATES, SAFETY_COMMAND, POLICY_CHUNK, TELEOP_COMMAND, INTERVENTION, "/episode/event"]
    )
    s = episode_series(ep)
    fig, axes = plt.subplots(8, 1, figsize=(12, 15), sharex=True, gridspec_kw={"height_ratios": [1] * 7 + [0.6]})
    for j, ax in enumerate(axes[:7]):
        ax.plot(s.measured_t, s.measured_q[:, j], color="black", lw=1.2, label="measured")
        if len(s.commanded_t):
            ax.plot(s.commanded_t, s.commanded_q[:, j], color="tab:blue", lw=0.9, label="commanded (filter)")
        if len(s.requested_t):
            ax.plot(s.requested_t, s.requested_q[:, j], ".", color="tab:orange", ms=2.5, label="requested (source)")
        for t in s.chunk_t:
            ax.axvline(t, color="tab:green", lw=0.4, alpha=0.35)
        for t, _ in s.interventions:
            ax.axvline(t, color="tab:red", lw=1.0, alpha=0.8)
        ax.set_ylabel(f"q{j + 1} [rad]")
        ax.grid(alpha=0.3)
    axes[0].legend(loc="upper right", fontsize=8, ncol=3)
    ev = axes[7]
    ev.set_yticks([])
    for t, name in s.events:
        ev.axvline(t, color="tab:purple")
        ev.text(t, 0.75, name, rotation=90, fontsize=8, va="top")
    for t, _ in s.interventions:
        ev.plot([t], [0.2], "|", color="tab:red", ms=10)
    ev.set_ylim(0.0, 1.0)
    if s.interventions:  # the reasons by kind (the part before ':'), not one label per mark
        kinds: dict[str, int] = {}
        for _, why in s.interventions:
            kind = why.split(":", 1)[0].strip()
            kinds[kind] = kinds.get(kind, 0) + 1
        ev.set_title(
            "safety interventions (red): "
            + ", ".join(f"{k} x{n}" for k, n in sorted(kinds.items(), key=lambda kv: -kv[1])),
            color="tab:red",
            fontsize=9,
            loc="left",
        )
    ev.set_xlabel("time since the first message [s]")
    ev.set_ylabel("events")
    axes[0].set_title(
        title
        or f"{Path(path).name}: {len(s.chunk_t)} policy chunks, {len(s.interventions)} safety interventions"
        + (f", success={ep.success}" if ep.success is not None else "")
    )
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="cdp-record-plot", description=__doc__.split("\n\n")[0])
    p.add_argument("recording", help="an episode .mcap")
    p.add_argument("--out", help="PNG to write (default: next to the recording)")
    args = p.parse_args(argv)
    out = args.out or str(Path(args.recording).with_suffix(".png"))
    try:
        path = plot_episode(args.recording, out)
    except EpisodeFileError as exc:
        print(f"cdp-record-plot: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
