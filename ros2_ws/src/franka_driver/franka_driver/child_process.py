"""What the driver's child processes (control loop, gripper) share: how they learn to wind down."""

from __future__ import annotations

import os
import signal


class ExitFlag:
    """Why a child process should wind down: SIGTERM, or the parent died (it was orphaned).

    Ctrl-C reaches the whole process group, so SIGINT is ignored here: the parent decides when
    the arm stops, not the key.
    """

    def __init__(self) -> None:
        self.term = False
        self.parent = os.getppid()
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, lambda *_: setattr(self, "term", True))

    def parent_alive(self) -> bool:
        return os.getppid() == self.parent

    def __call__(self) -> bool:
        return self.term or not self.parent_alive()


def describe(exc: BaseException) -> str:
    """``Type: message`` of an exception, for the shared error text."""
    return f"{type(exc).__name__}: {exc}".strip()
