"""``cdp``: the command line of cdp_core (train, export, bench, inspect, toy data, demo)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .checkpoint import CheckpointError
from .config import ConfigError, load_config, parse_override
from .data import DatasetError
from .runtime import ModelContractError
from .samplers import SAMPLERS, SamplerSpecError
from .sim.tasks import UnknownTaskError

USER_ERRORS = (
    ConfigError,
    DatasetError,
    CheckpointError,
    ModelContractError,
    SamplerSpecError,
    FloatingPointError,
    UnknownTaskError,
)


def _cmd_train(args: argparse.Namespace) -> int:
    from .trainer import train

    cfg = load_config(args.config, args.set)
    result = train(cfg, args.out, resume=args.resume)
    print(json.dumps({"checkpoint": result["checkpoint"], "metrics": result["metrics"]}, indent=2))
    if not cfg.gate.enabled:
        return 0
    report = _run_gate_on_run(result["latest"], args.out)
    return 3 if report is not None and not report.passed and cfg.gate.on_fail == "fail" else 0


def _run_gate_on_run(checkpoint: str, run_dir: str):
    """Gate a finished run's checkpoint, print the verdict and store it as RUN/gate.json (None: not run)."""
    from .gate import GATE_FILE, gate_checkpoint, store_report
    from .convergence import GateError

    try:
        report = gate_checkpoint(checkpoint, workdir=run_dir)
    except GateError as exc:
        print(f"cdp: convergence gate not run: {exc}", file=sys.stderr)
        return None
    store_report(report, Path(run_dir) / GATE_FILE, checkpoint)
    _print_gate(report)
    return report


def _print_gate(report) -> None:
    if report.passed:
        print(report.summary(), file=sys.stderr)
    else:  # loud: this model should not be trusted on a robot
        bar = "!" * 78
        print(f"{bar}\nWARNING: {report.summary()}\n{bar}", file=sys.stderr)


def _cmd_gate(args: argparse.Namespace) -> int:
    from .convergence import GateError
    from .gate import GATE_FILE, gate_checkpoint, gate_model, store_report

    if bool(args.model) == bool(args.checkpoint):
        raise ConfigError("cdp gate needs exactly one of --model (exported .onnx) or --checkpoint (.pt)")
    cfg = None
    if args.holdout:
        from .config import GateConfig

        cfg = GateConfig(holdout_path=args.holdout)
    try:
        if args.checkpoint:
            report = gate_checkpoint(args.checkpoint, cfg, workdir=args.workdir)
            store_report(report, Path(args.checkpoint).parent.parent / GATE_FILE, args.checkpoint)
        else:
            report = gate_model(args.model, task=args.task, cfg=cfg, workdir=args.workdir)
    except GateError as exc:
        print(f"cdp gate: error: {exc}", file=sys.stderr)
        return 2
    _print_gate(report)
    print(json.dumps(report.to_dict(), indent=2))
    return 0 if report.passed else 3


def _cmd_export(args: argparse.Namespace) -> int:
    from .export import export_onnx

    meta = export_onnx(args.checkpoint, args.out, args.sampler, args.steps, use_ema=not args.raw_weights)
    print(
        f"wrote {args.out} ({meta['sampler']}, {meta['steps']} steps, gamma={meta['gamma']:g}) "
        f"and {Path(args.out).with_suffix('.json')}"
    )
    return 0


def _cmd_inspect(args: argparse.Namespace) -> int:
    from .runtime import OnnxPolicy

    model = OnnxPolicy(args.model)
    meta = dict(model.metadata)
    if not args.full:
        meta.pop("training_config", None)
    print(json.dumps({**meta, "providers": model.providers}, indent=2))
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from .bench import sampler_latency_table, train_step_overhead

    console = Console()
    if args.what == "train-speed":
        from .bench import training_throughput

        rows = training_throughput(args.config, args.set, steps=args.iters, repeats=args.repeats)
        table = Table(title=f"training throughput, real training loop ({args.iters} steps x {args.repeats}, median)")
        for col in ("variant", "steps/s", "threads"):
            table.add_column(col)
        for r in rows:
            table.add_row(str(r["variant"]), f"{r['steps_per_s']:.2f}", str(r["threads"]))
        console.print(table)
        if args.json:
            Path(args.json).write_text(json.dumps(rows, indent=2))
        return 0
    if args.what == "train":
        table = Table(title=f"training step time, CDP (gamma=0.1) vs DP, same batch ({args.device})")
        for col in ("denoiser", "batch", "horizon x action", "DP ms (mean)", "CDP ms (mean)", "CDP/DP"):
            table.add_column(col)
        for den in args.denoisers:
            r = train_step_overhead(
                den,
                args.batch,
                args.horizon,
                args.action_dim,
                iters=args.iters,
                device=args.device,
                threads=args.threads,
                contraction={k: v for o in args.contraction for k, v in parse_override(o)["contraction"].items()}
                or None,
            )
            table.add_row(
                den,
                str(r["batch"]),
                f"{r['horizon']}x{r['action_dim']}",
                f"{r['dp_ms']:.1f}",
                f"{r['cdp_ms']:.1f}",
                f"{r['ratio']:.3f}",
            )
        console.print(table)
        return 0
    if not (args.checkpoint or args.model):
        raise ConfigError("cdp bench sampler needs --checkpoint (exports each sampler/steps) or --model (one .onnx)")
    rows = sampler_latency_table(
        args.checkpoint,
        args.model,
        args.samplers,
        args.steps,
        args.batches,
        args.iters,
        args.device,
        args.backends,
        args.threads,
    )
    table = Table(title=f"sampler latency ({args.iters} calls each, {args.threads} thread(s))")
    for col in ("backend", "sampler", "steps", "batch", "p50 ms", "p99 ms"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            r["backend"], r["sampler"], str(r["steps"]), str(r["batch"]), f"{r['p50_ms']:.3f}", f"{r['p99_ms']:.3f}"
        )
    console.print(table)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


def _cmd_toy_data(args: argparse.Namespace) -> int:
    from .data.toy import generate_toy_dataset

    root = generate_toy_dataset(args.out, args.episodes, args.seed)
    print(f"wrote {args.episodes} toy episodes to {root}")
    return 0


def _cmd_dataset_export(args: argparse.Namespace) -> int:
    from .data.episodes import load_episodes
    from .data.lerobot import LeRobotExport, export_lerobot

    ds = load_episodes(args.source, args.source_format)
    fps = args.fps or float(ds.meta.get("rate_hz") or 0.0)
    if not fps > 0:
        raise ConfigError(f"{args.source}: no rate_hz in its meta.json; pass --fps")
    task = args.task or str(ds.meta.get("task") or "")
    if not task:
        raise ConfigError(f"{args.source}: no task in its meta.json; pass --task (LeRobot's task string)")
    root = export_lerobot(ds, args.out, LeRobotExport(fps=fps, task=task, robot_type=args.robot_type), args.overwrite)
    print(f"wrote LeRobot {len(ds.episodes)} episodes, {ds.num_steps} frames at {fps:g} fps to {root}")
    return 0


def _cmd_demos(args: argparse.Namespace) -> int:
    from .sim import get_task
    from .sim.demos import generate_demos

    from .sim.scripted import DemoStyle

    get_task(args.task)  # unknown task: clear error before the simulator starts
    from .sim.cameras import cameras_by_name

    try:
        style = DemoStyle(tuple(args.strategies), args.miss_prob, args.transit_noise)
        cameras = cameras_by_name(args.cameras, (args.image_size, args.image_size)) if args.cameras else ()
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    summary = generate_demos(
        args.task, args.out, args.episodes, args.seed, action_space=args.action_space, style=style, cameras=cameras
    )
    print(json.dumps(summary, indent=2))
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    if args.video:
        from .sim.cameras import use_offscreen_gl

        use_offscreen_gl()  # before anything imports MuJoCo
    from .sim import get_task
    from .sim.evaluate import evaluate_checkpoint, evaluate_model

    get_task(args.task)
    if bool(args.model) == bool(args.checkpoint):
        raise ConfigError("cdp eval needs exactly one of --model (exported .onnx) or --checkpoint (.pt)")
    if args.video and not args.model:
        raise ConfigError("--video needs --model: export the checkpoint first (cdp export)")
    seeds = list(range(args.seed, args.seed + args.episodes))
    gate = None
    if not args.no_gate:
        gate = _gate_for_eval(args)
    if args.checkpoint:
        summary = evaluate_checkpoint(
            args.checkpoint,
            args.task,
            seeds,
            args.sampler,
            args.steps,
            workers=args.workers,
            progress=True,
            n_action_steps=args.n_action_steps,
        )
    else:
        summary = evaluate_model(
            args.model, args.task, seeds, workers=args.workers, progress=True, n_action_steps=args.n_action_steps
        )
    if not args.verbose:
        summary.pop("rows")
    if gate is not None:
        summary["convergence_gate"] = gate.to_dict()
    print(json.dumps(summary, indent=2))
    if args.video:
        from .sim.video import record_episode

        for seed in seeds[: args.video_episodes]:
            record_episode(
                args.model,
                args.task,
                seed,
                f"{args.video}/{args.task}_seed{seed}.gif",
                n_action_steps=args.n_action_steps,
            )
    return 0


def _gate_for_eval(args: argparse.Namespace):
    """The convergence gate before a closed-loop evaluation (printed; None when it cannot run)."""
    from .convergence import GateError
    from .gate import gate_checkpoint, gate_model

    try:
        if args.checkpoint:
            report = gate_checkpoint(args.checkpoint, sampler=args.sampler, steps=args.steps)
        else:
            report = gate_model(args.model, task=args.task, n_action_steps=args.n_action_steps)
    except GateError as exc:
        print(f"cdp eval: convergence gate not run: {exc}", file=sys.stderr)
        return None
    _print_gate(report)
    return report


def _cmd_compare(args: argparse.Namespace) -> int:
    """Two exported models on the same seeded episodes: success, error, dispersion, exact McNemar."""
    from scipy.stats import binomtest

    from .sim import get_task
    from .sim.evaluate import evaluate_model

    get_task(args.task)
    seeds = list(range(args.seed, args.seed + args.episodes))
    runs = [evaluate_model(m, args.task, seeds, workers=args.workers, progress=True) for m in args.models]
    a, b = ([bool(r["success"]) for r in run["rows"]] for run in runs)
    only_a = sum(x and not y for x, y in zip(a, b))
    only_b = sum(y and not x for x, y in zip(a, b))
    p = binomtest(min(only_a, only_b), only_a + only_b, 0.5).pvalue if only_a + only_b else 1.0
    out = {
        "task": args.task,
        "seeds": [seeds[0], seeds[-1]],
        "models": [],
        "only_first_succeeded": only_a,
        "only_second_succeeded": only_b,
        "mcnemar_exact_p": float(p),
    }
    for run in runs:
        rows = run.pop("rows")
        out["models"].append({**run, "successes": [bool(r["success"]) for r in rows]} if args.verbose else run)
    print(json.dumps(out, indent=2))
    return 0


def _cmd_metaworld(args: argparse.Namespace) -> int:
    from .benchmarks.metaworld import MetaWorldBenchmark, MetaWorldUnavailable, run_benchmark

    cfg = MetaWorldBenchmark(
        tasks=args.tasks,
        demos=args.demos,
        seeds=args.seeds,
        gammas=args.gammas,
        episodes=args.episodes,
        sampler=args.sampler,
        steps=args.steps,
        train_config=args.config,
        train_overrides=args.set,
        workers=args.workers,
    )
    try:
        print(f"report: {run_benchmark(cfg, args.work, args.out)}")
    except MetaWorldUnavailable as exc:
        print(f"cdp metaworld: error: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:  # an unknown task
        print(f"cdp metaworld: error: {exc}", file=sys.stderr)
        return 2
    return 0


def _cmd_grid(args: argparse.Namespace) -> int:
    from .sim.grid import GridConfig, run_grid

    cfg = GridConfig(
        task=args.task,
        demos=args.demos,
        seeds=args.seeds,
        steps=args.steps,
        gammas=args.gammas,
        sampler=args.sampler,
        episodes=args.episodes,
        train_config=args.config,
        train_overrides=args.set,
        workers=args.workers,
        action_space=args.action_space,
        gate=not args.no_gate,
    )
    load_config(cfg.train_config, cfg.train_overrides)  # a bad config fails before any demo is recorded
    print(f"report: {run_grid(cfg, args.work, args.out)}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    report = run_demo(args.out, steps=args.steps, episodes=args.episodes, quick=args.quick)
    print(f"report: {report}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cdp", description="Contractive Diffusion Policies: train, export, benchmark.")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a policy (torchrun for multi-GPU / multi-process)")
    t.add_argument("--config", help="YAML config (defaults apply to anything it leaves out)")
    t.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override a config value")
    t.add_argument("--out", required=True, help="run directory (checkpoints, TensorBoard, metrics.jsonl)")
    t.add_argument("--resume", action="store_true", help="continue from OUT/checkpoints/latest.pt")
    t.set_defaults(fn=_cmd_train)

    e = sub.add_parser("export", help="export the fixed-step sampler of a checkpoint to ONNX")
    e.add_argument("--checkpoint", required=True)
    e.add_argument("--out", required=True, help="model.onnx (a model.json sidecar is written beside it)")
    e.add_argument("--sampler", default="ddim", help=f"one of {', '.join(SAMPLERS)}")
    e.add_argument("--steps", type=int, default=10)
    e.add_argument("--raw-weights", action="store_true", help="export the raw instead of the EMA weights")
    e.set_defaults(fn=_cmd_export)

    i = sub.add_parser("inspect", help="print an exported model's metadata contract")
    i.add_argument("model")
    i.add_argument("--full", action="store_true", help="include the training config")
    i.set_defaults(fn=_cmd_inspect)

    b = sub.add_parser("bench", help="benchmarks: sampler latency or CDP training overhead")
    b.add_argument("what", choices=("sampler", "train", "train-speed"))
    b.add_argument("--config", help="train-speed: training config (YAML)")
    b.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="train-speed: override")
    b.add_argument("--repeats", type=int, default=2, help="train-speed: interleaved repetitions")
    b.add_argument("--checkpoint")
    b.add_argument("--model")
    b.add_argument("--samplers", nargs="+", default=["ddim"])
    b.add_argument("--steps", nargs="+", type=int, default=[1, 2, 4, 8, 16])
    b.add_argument("--batches", nargs="+", type=int, default=[1, 8, 32])
    b.add_argument("--backends", nargs="+", default=["ort", "torch"], help="ort, torch, torch-cudagraph")
    b.add_argument("--device", default="cpu")
    b.add_argument("--iters", type=int, default=100)
    b.add_argument("--threads", type=int, default=1)
    b.add_argument("--denoisers", nargs="+", default=["unet", "mlp"])
    b.add_argument("--batch", type=int, default=256)
    b.add_argument("--horizon", type=int, default=16)
    b.add_argument("--action-dim", type=int, default=7)
    b.add_argument("--json", help="also write the sampler rows as JSON here")
    b.add_argument(
        "--contraction",
        nargs="*",
        default=[],
        metavar="contraction.KEY=VALUE",
        help="contraction settings for `bench train`, e.g. contraction.every=4",
    )
    b.set_defaults(fn=_cmd_bench)

    q = sub.add_parser(
        "gate",
        help="open-loop convergence gate: action error and scatter (mm at the TCP) on "
        "held-out demonstrations; exit 3 when it fails",
    )
    q.add_argument("--checkpoint", help="PyTorch checkpoint (.pt): writes RUN/gate.json")
    q.add_argument("--model", help="exported policy (.onnx)")
    q.add_argument("--task", help="simulated task to record held-out demonstrations on (default: the model's)")
    q.add_argument("--holdout", help="held-out demonstrations (episode dataset) instead of the configured ones")
    q.add_argument("--workdir", help="where automatically recorded held-out demonstrations are kept")
    q.set_defaults(fn=_cmd_gate)

    d = sub.add_parser("toy-data", help="write the 2-D multimodal toy dataset")
    d.add_argument("--out", required=True)
    d.add_argument("--episodes", type=int, default=50)
    d.add_argument("--seed", type=int, default=0)
    d.set_defaults(fn=_cmd_toy_data)

    ds = sub.add_parser("dataset", help="datasets: export to other formats")
    ds_sub = ds.add_subparsers(dest="dataset_command", required=True)
    dx = ds_sub.add_parser("export", help="write episodes as a LeRobot v3 dataset folder")
    dx.add_argument("source", help="dataset to export (the project's episodes by default)")
    dx.add_argument("--out", required=True, help="the LeRobot dataset folder to write")
    dx.add_argument("--format", default="lerobot", choices=["lerobot"], help="output format")
    dx.add_argument("--source-format", default="episodes", help="format of SOURCE (see data.format)")
    dx.add_argument("--fps", type=float, help="frame rate (default: the source's rate_hz)")
    dx.add_argument("--task", help="task string (default: the source's task)")
    dx.add_argument("--robot-type", default="franka_fr3")
    dx.add_argument("--overwrite", action="store_true")
    dx.set_defaults(fn=_cmd_dataset_export)

    s = sub.add_parser("demos", help="record scripted demonstrations of a simulated FR3 task")
    s.add_argument("--task", required=True, help="reach_precise or peg_insert")
    s.add_argument("--episodes", type=int, default=50)
    s.add_argument("--out", required=True)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument(
        "--action-space",
        default="joint_position",
        choices=["joint_position", "ee_pose"],
        help="record joint-position targets or TCP pose targets (executed through IK)",
    )
    s.add_argument(
        "--strategies",
        nargs="+",
        default=["direct", "from_above", "from_left", "from_right"],
        help="approach strategies the scripted operator picks from (one: unimodal data)",
    )
    s.add_argument("--miss-prob", type=float, default=0.15, help="probability of a miss-and-recover per demo")
    s.add_argument("--transit-noise", type=float, default=0.002, help="command noise in transit (rad, std)")
    s.add_argument(
        "--cameras", nargs="*", default=[], help="also record these cameras' frames (agentview) for image policies"
    )
    s.add_argument("--image-size", type=int, default=96, help="square frame size of --cameras (pixels)")
    s.set_defaults(fn=_cmd_demos)

    v = sub.add_parser("eval", help="closed-loop evaluation of an exported model on a simulated FR3 task")
    v.add_argument("--model", help="exported policy (.onnx)")
    v.add_argument("--checkpoint", help="PyTorch checkpoint (.pt): exported to a temporary ONNX graph first")
    v.add_argument("--sampler", default="ddim", help="with --checkpoint: the sampler to export")
    v.add_argument("--steps", type=int, default=8, help="with --checkpoint: sampling steps")
    v.add_argument("--task", required=True)
    v.add_argument("--episodes", type=int, default=20)
    v.add_argument("--seed", type=int, default=10_000, help="first episode seed (demos use 0..)")
    v.add_argument("--workers", type=int, default=0, help="parallel processes (0 = one per CPU core)")
    v.add_argument("--n-action-steps", type=int, help="actions executed per chunk (default: the model's)")
    v.add_argument("--verbose", action="store_true", help="include every episode's result")
    v.add_argument("--video", help="folder for GIFs of the first --video-episodes episodes (offscreen rendering)")
    v.add_argument("--video-episodes", type=int, default=1)
    v.add_argument("--no-gate", action="store_true", help="skip the open-loop convergence gate before the episodes")
    v.set_defaults(fn=_cmd_eval)

    c = sub.add_parser("compare", help="two exported models on the same seeded episodes, with an exact McNemar test")
    c.add_argument("models", nargs=2, help="two exported policies (.onnx), e.g. CDP and its DP twin")
    c.add_argument("--task", required=True)
    c.add_argument("--episodes", type=int, default=100)
    c.add_argument("--seed", type=int, default=200_000, help="first episode seed")
    c.add_argument("--workers", type=int, default=0)
    c.add_argument("--verbose", action="store_true", help="include each model's per-episode outcomes")
    c.set_defaults(fn=_cmd_compare)

    w = sub.add_parser(
        "metaworld",
        help="Meta-World tasks: expert demos -> DP and CDP -> evaluation, with a report "
        "(run with .venv-metaworld/bin/cdp; scripts/setup_metaworld.sh makes it)",
    )
    w.add_argument(
        "--tasks",
        nargs="+",
        default=["peg-insert-side-v3", "coffee-pull-v3", "box-close-v3", "push-v3", "lever-pull-v3", "disassemble-v3"],
        help="Meta-World V3 task names",
    )
    w.add_argument("--demos", type=int, default=10)
    w.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="training seeds")
    w.add_argument("--gammas", nargs="+", type=float, default=[0.0, 0.1])
    w.add_argument("--episodes", type=int, default=50, help="evaluation episodes per policy and seed")
    w.add_argument("--sampler", default="ddim")
    w.add_argument("--steps", type=int, default=8)
    w.add_argument("--config", default=str(Path(__file__).parent / "configs" / "sim_mlp.yaml"))
    w.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    w.add_argument("--workers", type=int, default=0)
    w.add_argument("--work", required=True, help="folder for demos, runs and models (resumable; not committed)")
    w.add_argument("--out", required=True, help="report folder: report.md, metaworld.png, results.json")
    w.set_defaults(fn=_cmd_metaworld)

    g = sub.add_parser("grid", help="DP vs CDP x demos x seeds x steps on a simulated task, with a report")
    g.add_argument("--task", required=True)
    g.add_argument("--demos", nargs="+", type=int, default=[5, 10, 25, 50])
    g.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    g.add_argument("--steps", nargs="+", type=int, default=[1, 2, 4, 8, 16])
    g.add_argument("--gammas", nargs="+", type=float, default=[0.0, 0.1])
    g.add_argument("--sampler", default="ddim")
    g.add_argument("--episodes", type=int, default=50, help="evaluation episodes per cell")
    g.add_argument("--no-gate", action="store_true", help="skip the convergence gate of each trained run")
    g.add_argument("--config", help="base training config (YAML)")
    g.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    g.add_argument("--workers", type=int, default=0)
    g.add_argument(
        "--action-space",
        default="joint_position",
        choices=["joint_position", "ee_pose"],
        help="what the policies output: joint-position targets or TCP pose targets",
    )
    g.add_argument("--work", required=True, help="folder for demos, runs and models (resumable; not committed)")
    g.add_argument("--out", required=True, help="report folder: report.md, grid.png, results.json")
    g.set_defaults(fn=_cmd_grid)

    m = sub.add_parser("demo", help="main job: toy data -> train DP and CDP -> export -> report")
    m.add_argument("--out", default="outputs/demo")
    m.add_argument("--steps", type=int, default=1500)
    m.add_argument("--episodes", type=int, default=30)
    m.add_argument("--quick", action="store_true", help="tiny run for smoke tests")
    m.set_defaults(fn=_cmd_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except USER_ERRORS as exc:
        print(f"cdp {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
