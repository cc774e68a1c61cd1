"""Trainer: resume continues the same run; bad checkpoints and configs fail clearly; DDP on gloo."""

import json
import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from cdp_core.checkpoint import CheckpointError, load_policy, read_checkpoint
from cdp_core.config import config_from_dict
from cdp_core.trainer import train

from cdp_core_test_config import small_config


def _losses(run_dir):
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in rows}


def test_resume_continues_the_same_run(toy_data, tmp_path):
    cfg = small_config(toy_data, contraction={"gamma": 0.1, "every": 3})  # lazy steps cross the resume point
    torch.manual_seed(123)
    full = tmp_path / "full"
    train(config_from_dict(cfg), full)
    part = tmp_path / "part"
    train(config_from_dict({**cfg, "train": {**cfg["train"], "steps": 20}}), part)
    # the 20-step run ends with a cosine schedule of 20 steps; resuming with steps=40 must
    # reproduce the 40-step run exactly only if the schedule matches, so resume a 40-step run
    # interrupted after its step-20 checkpoint instead:
    interrupted = tmp_path / "interrupted"
    train(config_from_dict(cfg), interrupted)
    (interrupted / "checkpoints" / "latest.pt").unlink()
    os.replace(interrupted / "checkpoints" / "step_0000020.pt", interrupted / "checkpoints" / "latest.pt")
    train(config_from_dict(cfg), interrupted, resume=True)
    a, b = _losses(full), _losses(interrupted)
    later = [s for s in a if s > 20]
    assert later and all(abs(a[s] - b[s]) <= 1e-5 * max(1.0, abs(a[s])) for s in later), (a, b)
    pa, _ = load_policy(full / "checkpoints" / "latest.pt")
    pb, _ = load_policy(interrupted / "checkpoints" / "latest.pt")
    for x, y in zip(pa.state_dict().values(), pb.state_dict().values()):
        assert torch.allclose(x, y, atol=1e-5)
    assert part.exists()


def test_resume_refuses_a_different_config(toy_data, tmp_path):
    cfg = small_config(toy_data, train={"steps": 20})
    train(config_from_dict(cfg), tmp_path)
    other = small_config(toy_data, train={"steps": 40}, contraction={"gamma": 0.5})
    with pytest.raises(CheckpointError, match="contraction.gamma"):
        train(config_from_dict(other), tmp_path, resume=True)


def test_corrupt_checkpoint_is_a_clear_error(mlp_checkpoint, tmp_path):
    bad = tmp_path / "bad.pt"
    data = open(mlp_checkpoint, "rb").read()
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt or not a CDP checkpoint"):
        read_checkpoint(bad)
    torch.save({"hello": 1}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a CDP checkpoint"):
        read_checkpoint(tmp_path / "other.pt")


def test_checkpoint_holds_config_normaliser_and_ema(mlp_checkpoint):
    ckpt = read_checkpoint(mlp_checkpoint)
    assert ckpt["config"]["contraction"]["gamma"] == 0.1
    assert "action_normalizer.scale" in ckpt["ema"] and "obs_normalizer.offset" in ckpt["model"]
    assert not torch.equal(ckpt["ema"]["denoiser.inp.weight"], ckpt["model"]["denoiser.inp.weight"])


def _ddp_worker(rank, world, port, cfg, out):
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world), RANK=str(rank), LOCAL_RANK=str(rank)
    )
    torch.set_num_threads(1)
    run = train(config_from_dict(cfg), out)
    params = torch.cat([p.detach().flatten() for p in run["policy"].parameters()])
    torch.save(params, out / f"rank{rank}.pt")
    torch.distributed.destroy_process_group()


def test_ddp_two_processes_gloo(toy_data, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = small_config(
        toy_data, train={"steps": 10, "batch_size": 16, "checkpoint_every": 5}, contraction={"gamma": 0.1, "every": 2}
    )
    mp.spawn(_ddp_worker, args=(2, port, cfg, tmp_path), nprocs=2, join=True)
    ckpt = read_checkpoint(tmp_path / "checkpoints" / "latest.pt")
    assert ckpt["step"] == 10 and isinstance(ckpt["rng"]["torch"], list) and len(ckpt["rng"]["torch"]) == 2
    # each rank trained on its own shard of every batch, yet DDP kept the weights identical
    assert torch.equal(torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt"))


def test_metrics_log_contraction_with_lazy_regularisation(toy_data, tmp_path):
    cfg = small_config(toy_data, contraction={"gamma": 0.1, "every": 4}, train={"steps": 10, "log_every": 5})
    train(config_from_dict(cfg), tmp_path)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [5, 10]
    assert all("lambda_max" in r and "contraction_loss" in r for r in rows)
    assert any((p.name.startswith("events.out.tfevents")) for p in (tmp_path / "tensorboard").iterdir())
