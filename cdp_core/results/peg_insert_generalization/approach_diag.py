"""Where a peg_insert policy is when its tip first comes within 8 mm of the rim (fast path).

Per seeded episode: success, the peg's yaw error (modulo the square's 90 degrees) and the tip's
xy offset from the hole axis in the hole frame, then medians for successes and misses.
Usage: approach_diag.py MODEL.onnx FIRST_SEED N
"""

from __future__ import annotations

import sys

import numpy as np
from cdp_core.robot.kinematics import tcp_pose
from cdp_core.runtime import OnnxPolicy
from cdp_core.sim.env import FR3TaskEnv
from cdp_core.sim.evaluate import rollout, seeded_policy


def main(model_path: str, first: int, n: int) -> None:
    model = OnnxPolicy(model_path)
    meta = model.metadata
    env = FR3TaskEnv("peg_insert", action_space=meta.get("action_space", "joint_position"))
    offsets = {True: [], False: []}
    for seed in range(first, first + n):
        rec: list[tuple[np.ndarray, float]] = []

        def on_step(e: FR3TaskEnv) -> None:
            rot = tcp_pose(e.q)[1]
            rec.append((e.tip_position().copy(), float(np.arctan2(rot[1, 0], rot[0, 0]))))

        keys, n_obs, n_exec = meta["obs_keys"], meta["n_obs_steps"], meta["n_action_steps"]
        r = rollout(env, seeded_policy(model, seed), keys, n_obs, n_exec, meta["action_start_index"], seed, on_step)
        params = env.params
        hole = params["hole_pos"]
        tips = np.array([t for t, _ in rec])
        near = np.flatnonzero(tips[:, 2] < hole[2] + 0.008)
        k = int(near[0]) if len(near) else len(tips) - 1
        dyaw = (rec[k][1] - params["yaw"] + np.pi / 4) % (np.pi / 2) - np.pi / 4
        d = tips[k, :2] - hole[:2]
        c, s = np.cos(params["yaw"]), np.sin(params["yaw"])
        local = 1000 * np.array([c * d[0] + s * d[1], -s * d[0] + c * d[1]])
        offsets[bool(r["success"])].append(float(np.hypot(*local)))
        print(
            f"{seed} {'OK  ' if r['success'] else 'MISS'} yaw {np.degrees(dyaw):+.1f} deg, "
            f"xy (hole frame) {local[0]:+.1f} {local[1]:+.1f} mm, {1000 * (tips[k, 2] - hole[2]):.1f} mm above the rim"
        )
    for ok, name in ((True, "successes"), (False, "misses")):
        if offsets[ok]:
            print(f"{name}: {len(offsets[ok])}, median |xy offset| at the rim {np.median(offsets[ok]):.1f} mm")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
