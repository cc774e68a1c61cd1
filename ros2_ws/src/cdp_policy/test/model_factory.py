"""Build a small FR3-shaped ONNX policy with the project's own tools (demos -> train -> export).

Tiny on purpose (a few seconds on a 2-core CPU): the tests need the real metadata contract and
a real ONNX sampler, not a good policy.
"""

from __future__ import annotations

from pathlib import Path


def make_fr3_model(
    root: Path,
    task: str = "reach_precise",
    episodes: int = 2,
    steps: int = 10,
    horizon: int = 8,
    n_obs_steps: int = 2,
    n_action_steps: int = 4,
    action_space: str = "joint_position",
    cameras: tuple[str, ...] = (),
    image_size: int = 32,
) -> Path:
    """``cameras``: an image policy seeing those simulated cameras at ``image_size`` square frames."""
    import torch

    from cdp_core.config import config_from_dict
    from cdp_core.export import export_onnx
    from cdp_core.sim.demos import generate_demos
    from cdp_core.trainer import train

    root = Path(root)
    demos = root / "demos"
    from cdp_core.sim.cameras import cameras_by_name

    cams = cameras_by_name(list(cameras), (image_size, image_size)) if cameras else ()
    generate_demos(task, demos, episodes, seed=0, progress=False, action_space=action_space, cameras=cams)
    torch.manual_seed(0)
    cfg = config_from_dict(
        {
            "data": {
                "path": str(demos),
                "horizon": horizon,
                "n_obs_steps": n_obs_steps,
                "n_action_steps": n_action_steps,
                "cameras": list(cameras),
            },
            "model": {
                "denoiser": "mlp",
                "mlp_hidden": 32,
                "mlp_blocks": 1,
                "obs_feature_dim": 16,
                "time_embed_dim": 16,
                "image_feature_dim": 8,
            },
            "contraction": {"gamma": 0.0},
            "train": {
                "steps": steps,
                "batch_size": 32,
                "lr": 1e-3,
                "warmup_steps": 2,
                "log_every": steps,
                "checkpoint_every": steps,
                "progress": False,
                "device": "cpu",
            },
        }
    )
    run = train(cfg, root / "run")
    out = root / (f"{task}_{'_'.join(cameras)}.onnx" if cameras else f"{task}.onnx")
    export_onnx(run["checkpoint"], out, sampler="ddim", steps=2)
    return out


#: The 2-D toy model bundled for cdp_core's demo: the wrong shape for an FR3 policy.
TOY_MODEL = Path(__file__).resolve().parents[4] / "models" / "default" / "toy_cdp.onnx"
