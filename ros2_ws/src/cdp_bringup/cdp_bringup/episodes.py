"""Robot-in-the-loop episodes: homing, seeds and the summary (the ROS-free part of the runner).

An episode on the ROS path mirrors a fast-path episode with the same seed: the simulator draws
the object placement from the seed, and the arm is first brought (through the safety filter,
like an operator would) to the same jittered home configuration the fast path starts from; both
come from ``Task.episode_start(seed)``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from cdp_core.sim.evaluate import wilson_interval


@dataclass
class EpisodeConfig:
    """Settings of an episode run (ROS parameters of ``cdp-episodes``)."""

    episodes: int = 5
    #: Jitter of the home configuration (rad), as in the fast path.
    home_jitter: float = 0.05
    #: Homing: joint speed of the homing trajectory (rad/s) and how close counts as home (rad).
    homing_speed: float = 0.4
    home_tolerance: float = 0.01
    homing_timeout_s: float = 20.0
    #: Extra time after the task's limit before an episode is called failed (pipeline start-up).
    grace_s: float = 0.5


@dataclass
class EpisodeResult:
    seed: int
    success: bool
    final_error_mm: float
    time_to_success_s: float | None
    chunks: int
    params: dict[str, Any]


def summarize(results: list[EpisodeResult]) -> dict[str, Any]:
    """Success rate with a 95 % Wilson interval, median final error and time to success."""
    n = len(results)
    k = sum(r.success for r in results)
    lo, hi = wilson_interval(k, n)
    tts = [r.time_to_success_s for r in results if r.time_to_success_s is not None]
    return {
        "episodes": n,
        "successes": k,
        "success_rate": k / n if n else 0.0,
        "success_ci95": [lo, hi],
        "final_error_mm_median": float(np.median([r.final_error_mm for r in results])) if n else None,
        "time_to_success_s_median": float(np.median(tts)) if tts else None,
        "rows": [asdict(r) for r in results],
    }
