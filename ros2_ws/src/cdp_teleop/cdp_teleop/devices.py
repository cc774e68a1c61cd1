"""Input devices: the terminal keyboard (raw/cbreak mode, works over SSH), a pygame gamepad and
a 3Dconnexion SpaceMouse (pyspacemouse over hidapi, read in its own thread).

Each device has ``poll(now) -> DeviceInput`` and ``close()``; the mapping from raw key / axis
state to motion lives in :mod:`cdp_teleop.mapping` so it is tested without hardware.
"""

from __future__ import annotations

import collections
import os
import select
import sys
import threading
import time
from typing import Any

import numpy as np

from .mapping import (
    DeviceInput,
    GamepadLayout,
    GamepadMapper,
    KeyboardMapper,
    SpaceMouseLayout,
    SpaceMouseMapper,
    SpaceMouseSample,
)


class DeviceError(RuntimeError):
    """The input device is missing or unusable (no terminal, no gamepad, pygame not installed)."""


class TerminalKeyboard:
    """Keys from a terminal file descriptor (default: stdin) in cbreak mode: no echo, no line buffering.

    Ctrl-C still raises SIGINT (cbreak keeps ISIG), so the node shuts down the usual way; the
    terminal settings are restored on :meth:`close`, also after an exception.
    """

    def __init__(self, key_timeout_s: float = 0.25, fd: int | None = None):
        import termios
        import tty

        self.fd = sys.stdin.fileno() if fd is None else fd
        if not os.isatty(self.fd):
            raise DeviceError(
                "the keyboard device needs a terminal on stdin (run the node in a terminal, "
                "tmux, or over `ssh -t`); use device:=gamepad or device:=scripted otherwise"
            )
        self._termios = termios
        self._saved = termios.tcgetattr(self.fd)
        tty.setcbreak(self.fd)
        self.mapper = KeyboardMapper(key_timeout_s)

    def poll(self, now: float) -> DeviceInput:
        while select.select([self.fd], [], [], 0.0)[0]:
            data = os.read(self.fd, 64)
            if not data:  # terminal closed: behave as if every key was released
                break
            self.mapper.feed(data.decode(errors="ignore"), now)
        return self.mapper.poll(now)

    def close(self) -> None:
        if self._saved is not None:
            self._termios.tcsetattr(self.fd, self._termios.TCSADRAIN, self._saved)
            self._saved = None


class PygameGamepad:
    """The first (or ``index``-th) joystick pygame sees, read without a window (SDL dummy video driver)."""

    def __init__(self, layout: GamepadLayout | None = None, index: int = 0):
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
        os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
        os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
        try:
            import pygame
        except ImportError as exc:
            raise DeviceError("device:=gamepad needs pygame (pip install pygame)") from exc
        self.pg: Any = pygame
        pygame.display.init()  # the joystick event queue lives in the display subsystem
        pygame.joystick.init()
        count = pygame.joystick.get_count()
        if count <= index:
            pygame.quit()
            raise DeviceError(
                f"no gamepad {index}: pygame sees {count} joystick(s) "
                "(is it plugged in, and is /dev/input/js* / event* readable by this user?)"
            )
        self.joystick = pygame.joystick.Joystick(index)
        self.joystick.init()
        self.name = self.joystick.get_name()
        self.mapper = GamepadMapper(layout)

    def poll(self, now: float) -> DeviceInput:
        self.pg.event.pump()
        js = self.joystick
        axes = [js.get_axis(i) for i in range(js.get_numaxes())]
        buttons = [js.get_button(i) for i in range(js.get_numbuttons())]
        hats = [js.get_hat(i) for i in range(js.get_numhats())]
        return self.mapper.update(axes, buttons, hats)

    def close(self) -> None:
        self.pg.quit()


class SpaceMouseReader:
    """Reads a pyspacemouse device in a daemon thread; :meth:`take` never blocks.

    The teleop timer must never wait on USB: the thread polls the device (pyspacemouse's
    non-blocking read, every 2 ms when nothing came; a blocking hidapi read could not be
    interrupted safely on close), queues every decoded report (bounded, oldest dropped) and
    :meth:`take` hands them over. When the device fails (unplugged, permission lost) the thread
    records the error and ends; no new reports means no motion (the mapper's ``stale_s``).
    """

    #: At most this many reports wait between two takes (a stalled node does not grow memory).
    QUEUE = 256

    def __init__(self, device: Any, clock: Any = time.monotonic):
        self.device = device
        self.clock = clock
        self.error: str | None = None
        self._queue: collections.deque[SpaceMouseSample] = collections.deque(maxlen=self.QUEUE)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._last_t: float | None = None
        self.reports = 0
        self.thread = threading.Thread(target=self._run, name="spacemouse-reader", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                st = self.device.read()
                if st is None or st.t == self._last_t:  # nothing new (a non-blocking read)
                    time.sleep(0.002)
                    continue
                self._last_t = st.t
                sample = SpaceMouseSample(
                    translation=np.array([st.x, st.y, st.z], dtype=np.float64),
                    rotation=np.array([st.roll, st.pitch, st.yaw], dtype=np.float64),
                    buttons=tuple(int(b) for b in st.buttons),
                    t=self.clock(),
                )
                with self._lock:
                    self._queue.append(sample)
                    self.reports += 1
        except Exception as exc:  # noqa: BLE001  (easyhid raises its own types, OSError, ...)
            self.error = f"SpaceMouse read failed: {type(exc).__name__}: {exc}"

    def take(self) -> list[SpaceMouseSample]:
        """Every report since the last call, oldest first."""
        with self._lock:
            out = list(self._queue)
            self._queue.clear()
        return out

    def close(self) -> None:
        self._stop.set()
        self.thread.join(timeout=1.0)  # the thread is out of hidapi before the device closes
        self.device.close()


class SpaceMouse:
    """A 3Dconnexion SpaceMouse through pyspacemouse (hidapi): push/pull/tilt/twist the puck to
    move the TCP, left button toggles the gripper, right button starts/stops an episode (held for
    ``long_press_s``: discards it). Needs read access to its hidraw node (udev rule in README)."""

    def __init__(self, layout: SpaceMouseLayout | None = None, device: Any = None):
        self.mapper = SpaceMouseMapper(layout)
        if device is None:
            device = self._open()
        self.name = getattr(device, "name", "SpaceMouse")
        self.reader = SpaceMouseReader(device)

    @staticmethod
    def _open() -> Any:
        try:
            import pyspacemouse
        except ImportError as exc:
            raise DeviceError("device:=spacemouse needs pyspacemouse (pip install pyspacemouse)") from exc
        try:
            device = pyspacemouse.open(axis_convention=pyspacemouse.AxisConvention.ROS, nonblocking=True)
        except Exception as exc:  # noqa: BLE001  (hidapi missing, no device, no permission)
            raise DeviceError(
                f"no SpaceMouse ({type(exc).__name__}: {exc}); is it plugged in, is libhidapi installed, and "
                "can this user read its /dev/hidraw* (see the udev rule in the README)?"
            ) from exc
        if device is None:
            raise DeviceError("no SpaceMouse found (pyspacemouse.open returned nothing)")
        return device

    @property
    def error(self) -> str | None:
        """Why the device stopped delivering reports (None while it works)."""
        return self.reader.error

    def poll(self, now: float) -> DeviceInput:
        # A failed device gives no reports, so the last deflection goes stale and motion stops:
        # the node reports ``error`` and keeps its heartbeat (the arm holds, the recorder is told).
        return self.mapper.update(self.reader.take(), self.reader.clock())

    def close(self) -> None:
        self.reader.close()
