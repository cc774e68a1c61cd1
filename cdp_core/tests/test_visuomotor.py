"""Image (visuomotor) policies in cdp_core: rendered frames in demonstrations -> windows -> an image
encoder conditioning the denoiser -> one ONNX graph with uint8 images inside -> the fast path."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cdp_core.sim.cameras import use_offscreen_gl

use_offscreen_gl()  # before MuJoCo's first import in this process

from cdp_core.config import ConfigError, config_from_dict  # noqa: E402
from cdp_core.data import DatasetError, WindowDataset, load_episodes  # noqa: E402
from cdp_core.data.episodes import write_episode  # noqa: E402
from cdp_core.deploy import StackCapabilities, deployment_problems  # noqa: E402
from cdp_core.export import export_onnx  # noqa: E402
from cdp_core.checkpoint import load_policy  # noqa: E402
from cdp_core.models.image_encoder import ImageObsEncoder, ResNet18GN  # noqa: E402
from cdp_core.runtime import OnnxPolicy  # noqa: E402
from cdp_core.samplers import SAMPLERS, FixedStepSampler  # noqa: E402
from cdp_core.sim.cameras import CameraConfig, cameras_by_name  # noqa: E402
from cdp_core.sim.demos import generate_demos  # noqa: E402
from cdp_core.sim.env import FR3TaskEnv  # noqa: E402
from cdp_core.sim.evaluate import evaluate_model  # noqa: E402
from cdp_core.trainer import train  # noqa: E402
from cdp_core_test_config import small_config  # noqa: E402

SIZE = 40  # frames in these tests: small, the pipeline is what is tested
CAMS = cameras_by_name(["agentview"], (SIZE, SIZE))


@pytest.fixture(scope="module")
def image_demos(tmp_path_factory):
    out = tmp_path_factory.mktemp("img_demos")
    generate_demos("reach_precise", out, episodes=2, seed=0, progress=False, cameras=CAMS)
    return out


@pytest.fixture(scope="module")
def image_checkpoint(image_demos, tmp_path_factory):
    torch.manual_seed(0)
    cfg = small_config(
        image_demos,
        data={"cameras": ["agentview"], "obs_keys": ["joint_pos", "ee_pos"]},
        model={"image_feature_dim": 8},
        train={"steps": 6, "checkpoint_every": 6, "warmup_steps": 2, "batch_size": 16},
        contraction={"gamma": 0.1, "every": 1},
        gate={"holdout_episodes": 0},
    )
    return train(config_from_dict(cfg), tmp_path_factory.mktemp("img_run"))["checkpoint"]


def test_cameras_see_the_arm_and_leave_the_physics_alone():
    plain = FR3TaskEnv("reach_precise")
    seen = FR3TaskEnv("reach_precise", cameras=CAMS)
    plain.reset(3)
    seen.reset(3)
    first = seen.render()["agentview"]
    assert first.dtype == np.uint8 and first.shape == (SIZE, SIZE, 3) and first.std() > 5  # not a blank frame
    target = seen.q + np.array([0.4, 0.2, 0.0, -0.2, 0.0, 0.2, 0.0])
    for _ in range(8):
        a, _ = plain.step(target)
        b, _ = seen.step(target)
        seen.render()
    np.testing.assert_array_equal(a["joint_pos"], b["joint_pos"])  # rendering does not touch the physics
    moved = seen.render()["agentview"]
    assert np.abs(moved.astype(int) - first.astype(int)).mean() > 0.5  # the camera sees the arm move


def test_the_wrist_camera_rides_on_the_hand():
    env = FR3TaskEnv("peg_insert", cameras=cameras_by_name(["wrist"], (SIZE, SIZE)))
    env.reset(3)
    here = env.render()["wrist"]
    assert here.std() > 5
    # turning only the last joint turns the hand camera's view; the agent view would barely change
    q = env.q.copy()
    q[6] += 0.6
    turned = env.render_state(q, 0.02, env.params)["wrist"]
    assert np.abs(turned.astype(int) - here.astype(int)).mean() > 5
    with pytest.raises(ValueError, match="mount 'hand'"):
        CameraConfig(name="elbow", mount="hand")


def test_demos_store_frames_per_step(image_demos):
    ds = load_episodes(image_demos)
    assert ds.image_shapes == {"agentview": (SIZE, SIZE)}
    assert ds.meta["cameras"] == {"agentview": [SIZE, SIZE]}
    for ep in ds.episodes:
        frames = ep.images["agentview"]
        assert frames.dtype == np.uint8 and frames.shape == (len(ep), SIZE, SIZE, 3)
        assert not np.array_equal(frames[0], frames[-1])  # the arm moved during the demonstration


def test_windows_index_the_observed_frames(image_demos):
    ds = load_episodes(image_demos)
    w = WindowDataset(ds, ["joint_pos"], 2, 8, 4, cameras=["agentview"])
    assert w.image_size == (SIZE, SIZE)
    batch = w.images(torch.tensor([0, 5, len(w) - 1]))
    assert batch.shape == (3, 2, 1, SIZE, SIZE, 3) and batch.dtype == torch.uint8
    ep = ds.episodes[0]
    # Window 0 starts one step before the episode (edge padding): both observed steps are frame 0.
    np.testing.assert_array_equal(batch[0, 0, 0].numpy(), ep.images["agentview"][0])
    np.testing.assert_array_equal(batch[0, 1, 0].numpy(), ep.images["agentview"][0])
    np.testing.assert_array_equal(batch[1, 1, 0].numpy(), ep.images["agentview"][5])
    # The frames and the joint observation of a window come from the same step.
    np.testing.assert_allclose(w.obs[5, 1].numpy(), ep.obs["joint_pos"][5], rtol=0, atol=0)
    with pytest.raises(DatasetError, match=r"cameras \['wrist'\] not in dataset"):
        WindowDataset(ds, ["joint_pos"], 2, 8, 4, cameras=["wrist"])


def test_bad_frames_are_refused_naming_the_camera(image_demos, tmp_path):
    ds = load_episodes(image_demos)
    import shutil

    shutil.copytree(image_demos, tmp_path / "d")
    ep = ds.episodes[1]
    f = tmp_path / "d" / "episodes" / "episode_000001.npz"
    with np.load(f) as z:  # a frame array written by some other tool, as float
        arrays = {k: z[k] for k in z.files}
    arrays["image/agentview"] = arrays["image/agentview"].astype(np.float32)
    np.savez(f, **arrays)
    with pytest.raises(DatasetError, match=r"image/agentview is float32"):
        load_episodes(tmp_path / "d")
    arrays["image/agentview"] = ep.images["agentview"][:-1]  # a frame short
    np.savez(f, **arrays)
    with pytest.raises(DatasetError, match=r"one RGB frame per step"):
        load_episodes(tmp_path / "d")
    write_episode(tmp_path / "d", 1, ep)  # the writer stores what it is given as uint8 frames
    assert load_episodes(tmp_path / "d").episodes[1].images["agentview"].dtype == np.uint8


def test_crop_is_random_in_training_and_centred_at_inference():
    enc = ImageObsEncoder(["a"], (20, 20), "cnn", 4, 0.8)
    x = torch.arange(2 * 3 * 20 * 20, dtype=torch.float32).reshape(2, 3, 20, 20)
    enc.eval()
    centre = enc.crop(x)
    assert centre.shape == (2, 3, 16, 16)
    torch.testing.assert_close(centre, x[:, :, 2:18, 2:18])
    enc.train()
    torch.manual_seed(0)
    crops = [enc.crop(x) for _ in range(8)]
    assert all(c.shape == (2, 3, 16, 16) for c in crops)
    assert any(not torch.equal(c, crops[0]) for c in crops[1:])
    # Every random crop is a window of the frame (the gather kept rows and columns together).
    c = crops[0][0, 0]
    top, left = int(c[0, 0] // 20), int(c[0, 0] % 20)
    torch.testing.assert_close(c, x[0, 0, top : top + 16, left : left + 16])


def test_onnx_parity_with_images_for_every_sampler(image_checkpoint, tmp_path):
    policy, _ = load_policy(image_checkpoint)
    rng = np.random.default_rng(0)
    obs = rng.standard_normal((3, 2, policy.shape.obs_dim)).astype(np.float32)
    noise = rng.standard_normal((3, policy.shape.horizon, policy.shape.action_dim)).astype(np.float32)
    images = rng.integers(0, 256, (3, 2, 1, SIZE, SIZE, 3), dtype=np.uint8)
    for sampler in SAMPLERS:
        path = tmp_path / f"{sampler}.onnx"
        meta = export_onnx(image_checkpoint, path, sampler, 3)
        assert meta["cameras"] == ["agentview"] and meta["image_size"] == [SIZE, SIZE]
        assert meta["inputs"]["images"] == ["batch", 2, 1, SIZE, SIZE, 3]
        with torch.no_grad():
            ref = FixedStepSampler(policy, sampler, 3)(
                torch.from_numpy(obs), torch.from_numpy(noise), torch.from_numpy(images)
            ).numpy()
        got = OnnxPolicy(path)(obs, noise, images)
        assert np.abs(got - ref).max() <= 1e-4, sampler
    # The frames matter: other images, other actions.
    model = OnnxPolicy(tmp_path / "ddim.onnx")
    assert np.abs(model(obs, noise, images) - model(obs, noise, 255 - images)).max() > 1e-6


def test_runtime_and_deploy_refuse_wrong_images(image_checkpoint, tmp_path):
    path = tmp_path / "m.onnx"
    meta = export_onnx(image_checkpoint, path, "ddim", 2)
    model = OnnxPolicy(path)
    obs = np.zeros((1, 2, model.obs_shape[1]), np.float32)
    with pytest.raises(ValueError, match="image policy .*pass images"):
        model(obs)
    with pytest.raises(ValueError, match=r"images must be uint8 \[1, 2, 1, 40, 40, 3\].*got float32"):
        model(obs, images=np.zeros((1, 2, 1, SIZE, SIZE, 3), np.float32))
    with pytest.raises(ValueError, match=r"got uint8 \(1, 2, 1, 48, 48, 3\)"):
        model(obs, images=np.zeros((1, 2, 1, 48, 48, 3), np.uint8))
    dims = {"joint_pos": 7, "ee_pos": 3}
    blind = StackCapabilities(obs_dims=dims, name="policy node")
    assert any(
        "sees cameras ['agentview'], which policy node does not deliver" in p for p in deployment_problems(meta, blind)
    )
    odd = StackCapabilities(obs_dims=dims, cameras={"agentview": (96, 96)}, name="policy node")
    assert any(
        "takes [40, 40] frames; policy node delivers agentview ([96, 96])" in p for p in deployment_problems(meta, odd)
    )
    ok = StackCapabilities(obs_dims=dims, cameras={"agentview": (SIZE, SIZE)})
    assert deployment_problems(meta, ok) == []


def test_fast_path_runs_an_image_policy(image_checkpoint, tmp_path):
    path = tmp_path / "m.onnx"
    export_onnx(image_checkpoint, path, "ddim", 2)
    summary = evaluate_model(str(path), "reach_precise", [7], workers=1, dispersion_obs=1, dispersion_seeds=2)
    assert summary["episodes"] == 1 and np.isfinite(summary["rows"][0]["final_error_mm"])
    assert summary["dispersion_rad"] > 0  # different noise, different chunks (the frames went in)


def test_resnet18_backbone_and_local_weights(tmp_path):
    net = ResNet18GN()
    assert net(torch.zeros(1, 3, 64, 64)).shape == (1, 512, 2, 2)
    weights = tmp_path / "r18.pt"
    torch.save({k: torch.full_like(v, 0.5) for k, v in net.state_dict().items() if k.startswith("conv1")}, weights)
    enc = ImageObsEncoder(["a", "b"], (64, 64), "resnet18", 16, 0.9)
    missing = enc.load_backbone_weights(weights)
    assert "conv1.weight" not in missing and "layer1.0.conv1.weight" in missing
    assert all(torch.all(e.backbone.conv1.weight == 0.5) for e in enc.encoders)
    assert enc(torch.zeros(2, 2, 2, 64, 64, 3, dtype=torch.uint8)).shape == (2, enc.out_dim(2))
    torch.save({"fc.weight": torch.zeros(3)}, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="no tensor of .* fits"):
        enc.load_backbone_weights(tmp_path / "bad.pt")


def test_config_checks_cameras_and_crop(image_demos):
    with pytest.raises(ConfigError, match="image_encoder"):
        config_from_dict(small_config(image_demos, model={"image_encoder": "vit"}))
    with pytest.raises(ConfigError, match="image_crop"):
        config_from_dict(small_config(image_demos, model={"image_crop": 0.2}))
    with pytest.raises(ConfigError, match="twice"):
        config_from_dict(small_config(image_demos, data={"cameras": ["agentview", "agentview"]}))
    with pytest.raises(ValueError, match="unknown camera"):
        cameras_by_name(["elbow"])
    with pytest.raises(ValueError, match="outside"):
        CameraConfig(width=4)


def test_the_convergence_gate_judges_an_image_policy_on_rendered_held_out_demos(image_checkpoint, tmp_path):
    """Held-out demonstrations are recorded with the model's cameras; checkpoint and ONNX agree."""
    from cdp_core.config import GateConfig
    from cdp_core.gate import gate_checkpoint, gate_model

    cfg = GateConfig(auto_demos=2, samples=2, windows_per_episode=3)
    rep = gate_checkpoint(image_checkpoint, cfg, workdir=tmp_path)
    assert (tmp_path / f"gate_demos_agentview{SIZE}x{SIZE}" / "meta.json").is_file()
    assert rep.windows > 0 and np.isfinite(rep.action_error_mm) and np.isfinite(rep.scatter_mm)
    path = tmp_path / "img.onnx"
    export_onnx(image_checkpoint, path, "ddim", 8)
    onnx_rep = gate_model(path, cfg=cfg, workdir=tmp_path)
    assert onnx_rep.windows == rep.windows
    assert abs(onnx_rep.action_error_mm - rep.action_error_mm) < 0.05 * rep.action_error_mm + 0.1
