"""Spinning a node or executor until Ctrl-C / SIGTERM, with the shutdown race handled.

rclpy's signal handler shuts the context down from another thread; an executor that is just
building its next wait set then raises ``RCLError: the given context is not valid``. That is
a clean stop, not a crash: reporting it as exit 1 made a correctly stopped node look failed.
"""

from __future__ import annotations

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


def spin_node(node: Any) -> None:
    """:func:`spin` for one node on a single-threaded executor (what ``rclpy.spin`` does)."""
    from rclpy.executors import SingleThreadedExecutor

    executor = SingleThreadedExecutor(context=node.context)
    executor.add_node(node)
    try:
        spin(executor)
    finally:
        executor.shutdown()
