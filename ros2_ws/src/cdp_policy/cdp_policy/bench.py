"""``python -m cdp_policy.bench --model M``: latency of PolicyRunner.tick() with K draws vs one draw.

An image policy gets a fresh random frame per camera each tick (the decode and copy count).

Both runners are built in the same process on the same providers and ticked alternately
(so machine load affects both alike); every tick plans (n_action_steps = 1). Prints the
median and p99 of the inference time the runner measures and of the whole tick() call.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from .runner import PolicyConfig, PolicyRunner

HOME = [0.0, -0.3, 0.0, -2.2, 0.0, 1.9, 0.785]


def _feed(r: PolicyRunner, t: float, rng: np.random.Generator) -> None:
    from cdp_ros_common.names import FINGER_NAMES, JOINT_NAMES

    q = np.add(HOME, rng.normal(0.0, 0.01, 7))
    r.obs.update_joint_state(t, JOINT_NAMES + FINGER_NAMES, [*q, 0.04, 0.04])
    r.obs.update_ee_pose(t, [0.31, 0.0, 0.49], [1.0, 0.0, 0.0, 0.0])
    r.obs.update_object_pose(t, [0.5, 0.1, 0.3], [0.0, 0.0, 0.0, 1.0])
    # a 7-D hole_pose model reads the same object pose; gripper width from the fingers above
    if r.obs.cameras is not None:  # an image policy: a fresh frame per camera, as a camera driver sends
        h, w = r.obs.cameras.height, r.obs.cameras.width
        for cam in r.cameras:
            img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            r.obs.update_image(cam, t, h, w, "rgb8", 3 * w, img.tobytes())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--samples", type=int, default=4, help="K noise draws per inference (default 4)")
    ap.add_argument("--ticks", type=int, default=500)
    ap.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads (0 = all cores)")
    ap.add_argument("--providers", nargs="+", default=list(PolicyConfig.providers))
    args = ap.parse_args(argv)
    runners = {}
    for k in sorted({1, args.samples}):
        runners[k] = PolicyRunner(
            PolicyConfig(
                model_path=args.model,
                n_action_steps=1,
                dispersion_samples=k,
                intra_op_threads=args.threads,
                providers=tuple(args.providers),
                max_obs_age_s=1e9,
                seed=0,
            )
        )
    r0 = next(iter(runners.values()))
    m = r0.metadata
    print(
        f"model {args.model}: {m['sampler']} x {m['steps']} steps, obs {m['n_obs_steps']} x {m['obs_dim']}, "
        f"chunk {m['horizon']} x {m['action_dim']}; provider {r0.provider}; intra-op threads {args.threads}"
        + (f"; cameras {m['cameras']} at {m['image_size']}" if m.get("cameras") else "")
    )
    rng = np.random.default_rng(0)
    infer = {k: [] for k in runners}
    whole = {k: [] for k in runners}
    for i in range(args.ticks + 20):
        for k, r in runners.items():
            t = 1000.0 + i * r.dt
            _feed(r, t, rng)
            t0 = time.perf_counter()
            d = r.tick(t)
            elapsed = time.perf_counter() - t0
            if i >= 20:  # warm-up ticks left out
                infer[k].append(d.latency_s)
                whole[k].append(elapsed)
    for k in runners:
        a, b = 1000 * np.array(infer[k]), 1000 * np.array(whole[k])
        print(
            f"K={k:<3d} inference median {np.median(a):.3f} ms  p99 {np.percentile(a, 99):.3f} ms | "
            f"tick() median {np.median(b):.3f} ms  p99 {np.percentile(b, 99):.3f} ms  ({len(a)} ticks)"
        )
    if len(runners) == 2:
        ratio = np.median(infer[args.samples]) / np.median(infer[1])
        print(f"K={args.samples} / K=1 median inference ratio: {ratio:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
