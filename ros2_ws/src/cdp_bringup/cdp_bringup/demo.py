"""``cdp-sim-demo``: the main job. Start the stack on the simulated FR3, run episodes, report.

Starts the node graph (simulator, Franka driver, safety filter, policy) exactly as
``cdp-graph use_sim:=true`` does, runs seeded precision-task episodes through it, prints the
success rate and the policy's latency, then stops the graph (upstream first, arm holding).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path

from .episodes import EpisodeConfig
from .graph import GraphError, load_graph, parse_launch_arguments, resolve
from .launcher import NodeGraph


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cdp-sim-demo", description=__doc__.splitlines()[0])
    parser.add_argument("arguments", nargs="*", help="launch arguments (name:=value), e.g. model:=m.onnx")
    parser.add_argument("--episodes", type=int, default=5)
    parser.add_argument("--out", default="outputs/sim_demo", help="folder for summary.json and graph.log")
    parser.add_argument("--graph", help="node graph YAML (default: launch/graph.yaml)")
    args = parser.parse_args(argv)
    given = {"use_sim": "true", **parse_launch_arguments(args.arguments)}
    try:
        graph = load_graph(args.graph)
        specs = resolve(graph, given)
    except GraphError as exc:
        print(f"cdp-sim-demo: {exc}", file=sys.stderr)
        return 2
    task = given.get("task", graph["arguments"]["task"]["default"])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log = open(out / "graph.log", "w")
    g = NodeGraph(specs, out=log)
    print(f"starting the stack ({', '.join(s.name for s in specs)}); node output in {out / 'graph.log'}")
    summary = None
    failure: list[str] = []

    def watch(stop: threading.Event) -> None:
        while not stop.is_set():
            failed = g.check()
            if failed:
                failure.append(f"required node {failed[0]} exited with code {failed[1]} (see {out / 'graph.log'})")
                os.kill(os.getpid(), 2)  # interrupt the episode loop; the graph is stopped below
                return
            time.sleep(0.2)

    stop = threading.Event()
    try:
        g.start()
        threading.Thread(target=watch, args=(stop,), daemon=True).start()
        from .episodes_node import StackError, run_episodes

        try:
            summary = run_episodes(task, EpisodeConfig(episodes=args.episodes), log=lambda s: print(s, flush=True))
        except StackError as exc:
            failure.append(str(exc))
    except KeyboardInterrupt:
        if not failure:
            failure.append("interrupted")
    finally:
        stop.set()
        g.stop()
        log.close()
    if summary is None:
        print(f"cdp-sim-demo: {'; '.join(failure) or 'no result'}", file=sys.stderr)
        return 1
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    lo, hi = summary["success_ci95"]
    print(
        f"\n{task}: {summary['successes']}/{summary['episodes']} succeeded "
        f"({100 * summary['success_rate']:.0f} %, 95 % CI {100 * lo:.0f}-{100 * hi:.0f} %), "
        f"median final error {summary['final_error_mm_median']:.1f} mm"
    )
    for name, values in summary.get("policy_diagnostics", {}).items():
        shown = {k: v for k, v in values.items() if any(w in k for w in ("latency", "age", "missed", "provider"))}
        print(f"{name}: " + ", ".join(f"{k} {v}" for k, v in shown.items()))
    print(f"summary: {out / 'summary.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
