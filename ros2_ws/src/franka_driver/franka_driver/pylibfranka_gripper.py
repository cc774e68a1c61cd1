"""The gripper's own process for the pylibfranka backend.

Its commands block for seconds, so they must not run in the control loop's process, and the
driver's (parent) process may already hold franky, whose pybind types clash with pylibfranka's.
Requests arrive on a queue (``("move", args)`` / ``("grasp", args)``, ``None`` to end), answers
go back as ``(kind, ok, message)``; between commands the width is polled into a shared double.
"""

from __future__ import annotations

import math
import queue
from typing import Any

from .child_process import ExitFlag, describe


def gripper_main(ip: str, requests: Any, responses: Any, width: Any) -> None:
    """Gripper process: executes blocking commands, otherwise polls the width (~20 Hz)."""
    should_exit = ExitFlag()
    import pylibfranka as plf

    try:
        gripper = plf.Gripper(ip)
    except Exception as exc:
        responses.put(("connect", False, describe(exc)))
        return
    responses.put(("connect", True, ""))
    while not should_exit():
        try:
            req = requests.get(timeout=0.05)
        except queue.Empty:
            try:
                width.value = float(gripper.read_once().width)
            except Exception:
                width.value = math.nan
            continue
        if req is None:
            return
        kind, args = req
        try:
            ok = bool(gripper.move(*args) if kind == "move" else gripper.grasp(*args))
            responses.put((kind, ok, ""))
        except Exception as exc:
            responses.put((kind, False, describe(exc)))
