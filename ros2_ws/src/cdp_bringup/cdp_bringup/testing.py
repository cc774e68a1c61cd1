"""Helpers for integration tests that run the node graph (cdp-graph's NodeGraph) on this machine."""

from __future__ import annotations

import io
import os
import random
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from .graph import NodeSpec
from .launcher import NodeGraph


def loopback_host(block: int) -> str:
    """A per-process loopback address ``127.0.<block>.x`` for the simulator, so parallel runs never collide."""
    return f"127.0.{block}.{random.Random(os.getpid()).randint(10, 250)}"


@contextmanager
def running_graph(
    specs: Sequence[NodeSpec], log_file: str | Path | None = None, one_process_group: bool = False
) -> Iterator[tuple[NodeGraph, io.StringIO]]:
    """Start ``specs`` as one graph; yields (graph, captured output); stops it and writes the output at the end."""
    log = io.StringIO()
    graph = NodeGraph(list(specs), out=log, one_process_group=one_process_group)
    graph.start()
    try:
        yield graph, log
    finally:
        graph.stop()
        if log_file is not None:
            Path(log_file).parent.mkdir(parents=True, exist_ok=True)
            Path(log_file).write_text(log.getvalue())
