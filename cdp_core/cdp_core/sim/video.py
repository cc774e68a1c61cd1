"""Offscreen videos of chosen evaluation episodes (MuJoCo renderer, OSMesa on headless machines)."""

from __future__ import annotations

from pathlib import Path


from ..runtime import OnnxPolicy
from .env import FR3TaskEnv
from .evaluate import check_model_fits_task, rollout, seeded_policy


def record_episode(
    model_path: str,
    task: str,
    seed: int,
    out: str | Path,
    size: tuple[int, int] = (360, 480),
    n_action_steps: int | None = None,
) -> Path:
    """Re-run one seeded evaluation episode and write it as an animated GIF (one frame per control step)."""
    import mujoco
    from PIL import Image

    model = OnnxPolicy(model_path, intra_op_threads=1)
    env = FR3TaskEnv(task, action_space=model.metadata["action_space"])
    check_model_fits_task(model.metadata, env.task)
    m = model.metadata
    renderer = mujoco.Renderer(env.model, *size)
    cam = mujoco.MjvCamera()
    cam.lookat[:] = [0.5, 0.0, 0.2]
    cam.distance, cam.azimuth, cam.elevation = 1.1, 135.0, -25.0
    frames: list[Image.Image] = []

    def grab(e: FR3TaskEnv) -> None:
        renderer.update_scene(e.data, cam)
        frames.append(Image.fromarray(renderer.render().copy()))

    result = rollout(
        env,
        seeded_policy(model, seed),
        m["obs_keys"],
        m["n_obs_steps"],
        n_action_steps or m["n_action_steps"],
        m["action_start_index"],
        seed,
        on_step=grab,
    )
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    period_ms = int(round(1000 / env.spec.control_hz))
    frames[0].save(out, save_all=True, append_images=frames[1:], duration=period_ms, loop=0)
    try:
        renderer.close()
    except Exception:  # PyOpenGL's OSMesa teardown can raise on interpreter exit; the file is written
        pass
    print(f"video: {out} (seed {seed}, success={result['success']}, {result['final_error_mm']:.1f} mm)")
    return out
