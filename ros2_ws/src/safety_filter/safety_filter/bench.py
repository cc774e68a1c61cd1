"""Time ``SafetyFilter.step()`` (and the Cartesian one): ``python -m safety_filter.bench``.

Prints median / p99 / max per scenario; a 100 Hz filter has a 10 ms budget per tick.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from cdp_core.robot.kinematics import forward_kinematics
from cdp_core.robot.rotations import W_NON_NEGATIVE, matrix_to_quat

from .filter import CartesianSafetyFilter, SafetyConfig, SafetyFilter

Q0 = np.array([0.0, -0.3, 0.0, -2.2, 0.0, 1.9, 0.785])


def _stats(name: str, samples: list[float]) -> str:
    us = np.asarray(samples) * 1e6
    return (
        f"{name:<34} n={len(us):5d}  median {np.median(us):7.1f} us  p99 {np.percentile(us, 99):7.1f} us  "
        f"max {np.max(us):7.1f} us"
    )


def bench_joint(ticks: int, scenario: str) -> list[float]:
    cfg = SafetyConfig()
    f = SafetyFilter(cfg)
    f.sync(Q0, 0.0)
    times = []
    axis = np.array([1, 1, -1, 1, 1, -1, 1])
    push = Q0 + np.array([0.0, 1.2, 0.0, 0.0, 0.0, 0.0, 0.0])  # towards the floor of the box
    for k in range(ticks):
        t = k * cfg.dt
        if scenario == "tracking" and k % 10 == 0:  # a 10 Hz policy, 16-step chunks at 0.1 s
            ts = t + 0.1 * np.arange(16)
            f.set_chunk(ts, Q0 + 0.2 * np.sin(2 * np.pi * 0.25 * ts)[:, None] * axis, "policy", t)
        elif scenario == "box":
            f.set_chunk(np.array([t]), push[None], "policy", t)
        t0 = time.perf_counter()
        f.step(t)
        times.append(time.perf_counter() - t0)
    return times


def bench_cartesian(ticks: int) -> list[float]:
    cfg = SafetyConfig()
    f = CartesianSafetyFilter(cfg)
    f.sync_joints(Q0, 0.0)
    home = forward_kinematics(Q0)
    quat = matrix_to_quat(home[:3, :3], hemisphere=W_NON_NEGATIVE)
    times = []
    for k in range(ticks):
        t = k * cfg.dt
        f.set_target(home[:3, 3] + 0.1 * np.array([np.sin(t), np.cos(t) - 1, 0.0]), quat, t, "teleop", t)
        t0 = time.perf_counter()
        f.step(t)
        times.append(time.perf_counter() - t0)
    return times


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ticks", type=int, default=2000)
    args = parser.parse_args(argv)
    for scenario, label in (
        ("tracking", "joint: tracking 10 Hz chunks"),
        ("box", "joint: pushing into the box floor"),
        ("idle", "joint: idle (holding)"),
    ):
        print(_stats(label, bench_joint(args.ticks, scenario)))
    print(_stats("cartesian: tracking a moving pose", bench_cartesian(args.ticks)))


if __name__ == "__main__":
    main()
