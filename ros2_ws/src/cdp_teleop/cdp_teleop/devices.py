"""Input devices: the terminal keyboard (raw/cbreak mode, works over SSH) and a pygame gamepad.

Each device has ``poll(now) -> DeviceInput`` and ``close()``; the mapping from raw key / axis
state to motion lives in :mod:`cdp_teleop.mapping` so it is tested without hardware.
"""

from __future__ import annotations

import os
import select
import sys
from typing import Any

from .mapping import DeviceInput, GamepadLayout, GamepadMapper, KeyboardMapper


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
