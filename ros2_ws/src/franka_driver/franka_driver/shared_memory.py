"""Named shared-memory blocks between the driver (parent) and its 1 kHz control process.

A block's layout is a numpy structured dtype built from an example (Diffusion Policy's
shared-memory ring buffer idea): every field has a name and a shape, and the offsets follow
from the example, so nothing addresses a magic index. Each block has one writer and is guarded
by a seqlock: the writer makes ``seq`` odd, writes, makes it even; a reader copies the block and
retries until it saw the same even ``seq`` before and after, so the 1 kHz loop never waits on a
lock the parent holds. Error text travels in a separate char array (:class:`ErrorText`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from .backend import BackendError


class SharedLayout:
    """The structured dtype of a block of float64 fields; ``seq`` (the seqlock) is always first."""

    def __init__(self, example: Mapping[str, float | np.ndarray | list[float]]):
        if "seq" in example:
            raise ValueError("'seq' is the seqlock's own field; leave it out of the example")
        fields: list[tuple[Any, ...]] = [("seq", np.float64)]
        for name, value in example.items():
            shape = np.shape(value)
            fields.append((name, np.float64, shape) if shape else (name, np.float64))
        self.dtype = np.dtype(fields)
        if self.dtype.itemsize % 8:
            raise ValueError("shared layouts hold float64 fields only")
        self.example = {k: np.asarray(v, dtype=np.float64) for k, v in example.items()}

    @property
    def doubles(self) -> int:
        """Size of the block in doubles (what ``RawArray("d", n)`` must allocate)."""
        return self.dtype.itemsize // 8

    def allocate(self, ctx: Any) -> Any:
        """A shared raw array for this layout from a multiprocessing context, filled with the example."""
        raw = ctx.RawArray("d", self.doubles)
        view = np.frombuffer(raw, dtype=self.dtype)
        for k, v in self.example.items():
            view[k][0] = v
        return raw


#: The parent's command to the control process: the latest joint target (its counter ``target_id``,
#: positions, optional velocities) and request counters (each request is acknowledged by the child).
COMMAND = SharedLayout(
    {"target_id": 0.0, "has_dq": 0.0, "q": np.zeros(7), "dq": np.zeros(7), "stop": 0.0, "recover": 0.0, "shutdown": 0.0}
)

#: The control process's report: the robot state it last read, loop counters and acknowledgements.
STATE = SharedLayout(
    {
        "time": 0.0,
        "q": np.zeros(7),
        "dq": np.zeros(7),
        "tau": np.zeros(7),
        "O_T_EE": np.zeros(16),
        "F_T_EE": np.zeros(16),
        "mode": 0.0,
        "in_control": 0.0,
        "cycles": 0.0,
        "connected": 0.0,
        "error": 0.0,
        "stop_ack": 0.0,
        "recover_ack": 0.0,
        "recover_ok": 0.0,
        "motions": 0.0,
        "late": 0.0,
    }
)


class SeqlockBlock:
    """A shared block with one writer and any number of readers (see the module docstring).

    ``read()`` returns a consistent copy (a numpy record: ``snapshot["q"]``); ``write(**fields)``
    updates named fields under the seqlock; ``current(name)`` reads one field without the lock
    (for the writer's own bookkeeping only).
    """

    def __init__(self, raw: Any, layout: SharedLayout, writer_alive: Callable[[], bool] | None = None):
        if len(raw) != layout.doubles:
            raise ValueError(f"shared block has {len(raw)} doubles, its layout {layout.doubles}")
        self.raw = raw
        self.layout = layout
        self.view = np.frombuffer(raw, dtype=layout.dtype)
        self._seq = self.view["seq"]
        self._writer_alive = writer_alive
        self._last: np.void | None = None

    def write(self, **fields: Any) -> None:
        unknown = set(fields) - set(self.layout.example)
        if unknown:
            raise KeyError(f"unknown shared fields {sorted(unknown)}")
        self._seq[0] += 1.0
        for name, value in fields.items():
            self.view[name][0] = value
        self._seq[0] += 1.0

    def current(self, name: str) -> Any:
        v = self.view[name][0]
        return float(v) if np.ndim(v) == 0 else np.array(v)

    def read(self) -> np.void:
        # A deadline, not a retry count: on a loaded machine the writer can be descheduled
        # mid-update for milliseconds; only a writer that stays stuck is an error.
        deadline = time.monotonic() + 0.5
        spins = 0
        while True:
            s1 = self._seq[0]
            if s1 % 2.0 == 0.0:
                out = self.view.copy()[0]
                if self._seq[0] == s1:
                    self._last = out
                    return out
            spins += 1
            # A writer killed mid-update leaves the sequence odd forever. Its last consistent
            # snapshot is what the reader gets; the caller learns from the dead process that the
            # data is final (the pylibfranka backend then reports "control process died").
            if spins % 64 == 0 and self._writer_alive is not None and not self._writer_alive():
                return self._last if self._last is not None else self.view.copy()[0]
            if time.monotonic() > deadline:
                raise BackendError("shared state never became consistent (writer stuck mid-update for 0.5 s)")
            time.sleep(0)  # the writer is mid-update (a few microseconds): yield and retry


class ErrorText:
    """A fixed-size shared char array holding one UTF-8 message (written by one side at a time)."""

    CHARS = 1024

    def __init__(self, raw: Any):
        self.raw = raw

    @classmethod
    def allocate(cls, ctx: Any) -> Any:
        return ctx.RawArray("c", cls.CHARS)

    def write(self, text: str) -> None:
        data = text.encode("utf-8", "replace")[: self.CHARS - 1]
        self.raw[: len(data)] = data
        self.raw[len(data)] = 0

    def read(self) -> str:
        return bytes(self.raw[:]).split(b"\0", 1)[0].decode("utf-8", "replace")
