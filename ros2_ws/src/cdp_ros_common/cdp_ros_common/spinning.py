"""Spinning a node or executor until Ctrl-C / SIGTERM, with the shutdown race handled.

rclpy's signal handler shuts the context down from another thread; an executor that is just
building its next wait set then raises ``RCLError: the given context is not valid``. That is
a clean stop, not a crash: reporting it as exit 1 made a correctly stopped node look failed.

Once spinning ends the process is shutting down, and that shutdown must run to its end: a
Ctrl-C in a terminal reaches every process of the group and ``ros2 launch`` then sends its own
SIGINT (and SIGTERM after a timeout), which used to raise ``KeyboardInterrupt`` inside the
driver's jerk-limited stop. :func:`spin` therefore ignores further SIGINT / SIGTERM when it
returns (SIGKILL still ends a process that hangs).
"""

from __future__ import annotations

import signal
import threading
from typing import Any

import rclpy
from rclpy.executors import ExternalShutdownException


def spin(executor: Any) -> None:
    """``executor.spin()`` until shutdown; re-raises anything that happens while the context is still valid."""
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception:
        if rclpy.ok(context=executor.context):
            raise
    finally:
        ignore_further_signals()


def ignore_further_signals() -> None:
    """Shutdown has begun: SIGINT and SIGTERM from now on must not cut it short (module docstring)."""
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)


def spin_node(node: Any) -> None:
    """:func:`spin` for one node on a single-threaded executor (what ``rclpy.spin`` does)."""
    from rclpy.executors import SingleThreadedExecutor

    executor = SingleThreadedExecutor(context=node.context)
    executor.add_node(node)
    try:
        spin(executor)
    finally:
        executor.shutdown()


def run_node(make: Any, name: str, argv: list[str] | None = None, errors: tuple[type, ...] = (Exception,)) -> int:
    """A one-node process's ``main``: init rclpy, build the node with ``make()``, spin it until
    Ctrl-C / SIGTERM, destroy it and shut down. An exception of ``errors`` (while starting or
    spinning) is printed as ``name: message`` and exits 1; a clean stop exits 0."""
    import sys

    rclpy.init(args=argv if argv is not None else sys.argv)
    node, code = None, 0
    try:
        node = make()
        spin_node(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except errors as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        code = 1
    finally:
        if node is not None:
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return code
