"""``cdp-graph``: start the node graph of ``launch/graph.yaml`` where ROS 2 launch is not installed.

One process per node (``python -m <module> --ros-args ...``, the same parameters as
``manipulation.launch.py``), output prefixed with the node name, Ctrl-C stops everything, and a
required node that exits stops the graph. Stopping goes upstream first (policy, then safety
filter, then driver, then simulator) with a pause after the command sources, so the safety
filter sees its input go stale and brings the arm to a jerk-limited hold before anything
downstream of it stops.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

from .graph import GraphError, NodeSpec, load_graph, parse_launch_arguments, resolve

#: How long the arm gets to come to rest once the command sources have stopped (s).
HOLD_SETTLE_S = 0.5


@dataclass
class RunningNode:
    spec: NodeSpec
    process: subprocess.Popen
    reader: threading.Thread


class NodeGraph:
    """The processes of a resolved node graph."""

    def __init__(
        self,
        specs: Sequence[NodeSpec],
        python: str = sys.executable,
        env: dict[str, str] | None = None,
        out=None,
        one_process_group: bool = False,
        die_with_parent: bool = False,
    ):
        """``one_process_group``: every node in one new process group, as ``ros2 launch`` children
        under a terminal are (so a Ctrl-C reaches them all at once); default: one session each.
        ``die_with_parent``: every node gets SIGINT when this process dies, however it dies (a killed
        evaluation runner must not leave a policy driving the arm unsupervised)."""
        self.specs = list(specs)
        self.one_process_group = one_process_group
        self.die_with_parent = die_with_parent
        self._restarting: str | None = None
        self.pgid: int | None = None
        self.python = python
        self.env = dict(os.environ if env is None else env)
        self.env.setdefault("PYTHONUNBUFFERED", "1")
        self.out = out or sys.stdout
        self.nodes: list[RunningNode] = []
        self._print_lock = threading.Lock()
        self.failed: tuple[str, int] | None = None

    def command(self, spec: NodeSpec) -> list[str]:
        return [self.python, "-m", spec.module, *spec.ros_args()]

    def _say(self, name: str, line: str) -> None:
        with self._print_lock:
            self.out.write(f"[{name}] {line.rstrip()}\n")
            self.out.flush()

    def _pump(self, name: str, stream) -> None:
        for raw in iter(stream.readline, b""):
            self._say(name, raw.decode(errors="replace"))
        stream.close()

    def start(self, stop_event: threading.Event | None = None) -> None:
        """Start every node in order (honouring start delays); a required node dying meanwhile aborts."""
        for spec in self.specs:
            t_end = time.monotonic() + spec.start_delay_s
            while time.monotonic() < t_end:
                if self.check() is not None or (stop_event is not None and stop_event.is_set()):
                    return
                time.sleep(0.05)
            self.nodes.append(self._spawn(spec))

    def _spawn(self, spec: NodeSpec) -> RunningNode:
        preexec = _child_setup_dying_with_parent if self.die_with_parent else _default_sigint
        if self.one_process_group:
            proc = subprocess.Popen(
                self.command(spec),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=self.env,
                process_group=self.pgid or 0,
                preexec_fn=preexec,
            )
            self.pgid = self.pgid or proc.pid
        else:
            proc = subprocess.Popen(
                self.command(spec),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
                preexec_fn=preexec,
            )
        reader = threading.Thread(target=self._pump, args=(spec.name, proc.stdout), daemon=True)
        reader.start()
        self._say("cdp-graph", f"started {spec.name} (pid {proc.pid}): {' '.join(self.command(spec))}")
        return RunningNode(spec, proc, reader)

    def restart_node(self, name: str, overrides: dict[str, str], timeout_s: float = 5.0) -> None:
        """Stop node ``name`` (SIGINT, then harder) and start it again with ``overrides`` added.

        While it restarts, its exit does not count as a required node failing.
        """
        idx = next((i for i, n in enumerate(self.nodes) if n.spec.name == name), None)
        if idx is None:
            raise GraphError(f"no running node named {name!r}")
        old = self.nodes[idx]
        self._restarting = name
        try:
            self._say("cdp-graph", f"restarting {name} with {overrides}")
            self._stop_one(old, timeout_s)
            spec = replace(old.spec, overrides={**old.spec.overrides, **overrides})
            self.specs[self.specs.index(old.spec)] = spec
            self.nodes[idx] = self._spawn(spec)
        finally:
            self._restarting = None

    def check(self) -> tuple[str, int] | None:
        """The first required node that has exited, as (name, exit code); None while all run."""
        if self.failed is None:
            for n in self.nodes:
                code = n.process.poll()
                if code is not None and n.spec.required and n.spec.name != self._restarting:
                    self.failed = (n.spec.name, code)
                    break
        return self.failed

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop upstream first: SIGINT, then SIGTERM, then SIGKILL for whatever does not exit."""
        for i, n in enumerate(reversed(self.nodes)):
            if n.process.poll() is None:
                self._say("cdp-graph", f"stopping {n.spec.name}")
            self._stop_one(n, timeout_s)
            if i == 0 and len(self.nodes) > 1:
                time.sleep(HOLD_SETTLE_S)

    def _stop_one(self, n: RunningNode, timeout_s: float) -> None:
        for sig, wait in ((signal.SIGINT, timeout_s), (signal.SIGTERM, 2.0), (signal.SIGKILL, None)):
            if n.process.poll() is not None:
                break
            self._signal(n, sig)
            try:
                n.process.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue
        n.reader.join(timeout=1.0)

    def _signal(self, node: RunningNode, sig: int) -> None:
        if self.one_process_group:
            try:
                node.process.send_signal(sig)
            except ProcessLookupError:
                pass
        else:
            _signal(node.process, sig)

    def interrupt_like_a_terminal(self, second_after_s: float = 0.2) -> None:
        """What Ctrl-C under ``ros2 launch`` does: SIGINT to the whole process group, then
        launch's own SIGINT to each node (needs ``one_process_group``)."""
        if self.pgid is None:
            raise RuntimeError("interrupt_like_a_terminal needs one_process_group=True and a started graph")
        try:
            os.killpg(self.pgid, signal.SIGINT)
        except ProcessLookupError:
            return
        time.sleep(second_after_s)
        for n in self.nodes:
            if n.process.poll() is None:
                self._signal(n, signal.SIGINT)

    def __enter__(self) -> NodeGraph:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _default_sigint() -> None:
    """In the child: SIGINT back to its default action.

    A launcher started in the background (``nohup ... &``, some service managers) has SIGINT
    ignored, and children inherit that: Python then installs no KeyboardInterrupt handler, and
    the graceful stop (SIGINT first) would be ignored until the SIGKILL escalation.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _child_setup_dying_with_parent() -> None:
    """In the child: default SIGINT, and SIGINT when the parent dies (Linux PR_SET_PDEATHSIG)."""
    _default_sigint()
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGINT)
    except OSError:
        pass


def _signal(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="cdp-graph",
        description=__doc__.splitlines()[0],
        epilog="Launch arguments are given as name:=value, as for ros2 launch.",
    )
    parser.add_argument("arguments", nargs="*", help="launch arguments, e.g. use_sim:=true model:=m.onnx")
    parser.add_argument("--graph", help="node graph YAML (default: launch/graph.yaml)")
    parser.add_argument("--print", action="store_true", dest="dry_run", help="print the commands and exit")
    args = parser.parse_args(argv)
    try:
        graph = load_graph(args.graph)
        specs = resolve(graph, parse_launch_arguments(args.arguments))
    except GraphError as exc:
        print(f"cdp-graph: {exc}", file=sys.stderr)
        return 2
    g = NodeGraph(specs)
    if args.dry_run:
        for s in specs:
            print(" ".join(g.command(s)))
        return 0
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    code = 0
    try:
        g.start(stop)
        while not stop.is_set():
            failed = g.check()
            if failed is not None:
                g._say(
                    "cdp-graph",
                    f"required node {failed[0]} exited with code {failed[1]}: stopping the graph "
                    "(the safety filter holds the arm)",
                )
                code = 1
                break
            time.sleep(0.1)
    finally:
        g.stop()
    return code


if __name__ == "__main__":
    sys.exit(main())
