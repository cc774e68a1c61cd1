"""One episode's MCAP file, crash-safe: written as ``<name>.mcap.partial``, renamed when complete.

* Messages are stored as ROS 2 CDR bytes (exactly what DDS delivered) on channels with
  ``ros2msg`` schemas, so any MCAP/ROS 2 tool decodes them.
* The file is flushed and fsync'd every ``fsync_period_s``: a crash loses at most that much
  of the episode being written, and never touches a finished one.
* :meth:`finish` writes the summary, fsyncs, renames ``.mcap.partial`` -> ``.mcap`` (atomic on
  POSIX) and fsyncs the directory: a ``.mcap`` file is always complete.
* Any OSError (full disk: ENOSPC, EDQUOT, EFBIG) becomes :class:`RecordingError` with a message
  naming the file and the cause; the writer is closed and the partial file left for inspection.
"""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path

from mcap.writer import CompressionType, Writer

from .schemas import message_definition

PARTIAL_SUFFIX = ".mcap.partial"
FINAL_SUFFIX = ".mcap"
INCOMPLETE_SUFFIX = ".incomplete.mcap"
DISK_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


class RecordingError(RuntimeError):
    """Writing the episode failed (disk full, I/O error); recording has stopped."""

    def __init__(self, message: str, disk_full: bool = False):
        super().__init__(message)
        self.disk_full = disk_full


def describe_os_error(exc: OSError, path: Path) -> RecordingError:
    full = exc.errno in DISK_FULL_ERRNOS
    why = "disk full" if full else "I/O error"
    return RecordingError(
        f"{why} while writing {path} ({errno.errorcode.get(exc.errno or 0, exc.errno)}: "
        f"{exc.strerror or exc}): recording stopped, the episode is left as {path.name} "
        "(marked partial); the arm is not affected",
        disk_full=full,
    )


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class EpisodeWriter:
    """Writes one episode to ``<directory>/<name>.mcap.partial``; :meth:`finish` makes it ``<name>.mcap``."""

    def __init__(
        self,
        directory: str | Path,
        name: str,
        fsync_period_s: float = 1.0,
        chunk_size: int = 1 << 20,
        library: str = "cdp_recorder",
    ):
        self.directory = Path(directory)
        self.name = name
        self.partial = self.directory / f"{name}{PARTIAL_SUFFIX}"
        self.final = self.directory / f"{name}{FINAL_SUFFIX}"
        self.fsync_period_s = fsync_period_s
        self._schemas: dict[str, int] = {}
        self._channels: dict[str, int] = {}
        self._sequence: dict[str, int] = {}
        self.messages = 0
        self.closed = False
        self._finished = False
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            if self.partial.exists() or self.final.exists():
                raise RecordingError(f"{self.partial} or {self.final} exists already: refusing to overwrite")
            self._fh = open(self.partial, "xb")
            self._writer = Writer(self._fh, chunk_size=chunk_size, compression=CompressionType.ZSTD)
            self._writer.start(profile="ros2", library=library)
            self._sync()
        except OSError as exc:
            self._close_quietly()
            raise describe_os_error(exc, self.partial) from exc

    def _channel(self, topic: str, type_name: str) -> int:
        cid = self._channels.get(topic)
        if cid is None:
            sid = self._schemas.get(type_name)
            if sid is None:
                sid = self._writer.register_schema(
                    name=type_name, encoding="ros2msg", data=message_definition(type_name).encode()
                )
                self._schemas[type_name] = sid
            cid = self._channels[topic] = self._writer.register_channel(
                topic=topic, message_encoding="cdr", schema_id=sid
            )
            self._sequence[topic] = 0
        return cid

    def write(
        self, topic: str, type_name: str, data: bytes, log_time_ns: int, publish_time_ns: int | None = None
    ) -> None:
        """Append one serialized (CDR) message; fsync if the period has passed."""
        if self.closed:
            raise RecordingError(f"{self.partial} is closed")
        try:
            cid = self._channel(topic, type_name)
            self._sequence[topic] += 1
            self._writer.add_message(
                cid,
                log_time=int(log_time_ns),
                data=bytes(data),
                publish_time=int(publish_time_ns if publish_time_ns is not None else log_time_ns),
                sequence=self._sequence[topic],
            )
            self.messages += 1
            if time.monotonic() - self._last_sync >= self.fsync_period_s:
                self._sync()
        except OSError as exc:
            self._close_quietly()
            raise describe_os_error(exc, self.partial) from exc

    def _sync(self) -> None:
        if not self._finished:
            self._writer.flush()  # closes the chunk in progress: what is fsync'd is readable after a crash
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._last_sync = time.monotonic()

    def finish(self, metadata: dict[str, dict[str, str]]) -> Path:
        """Write metadata records and the summary, then atomically publish the file as ``.mcap``."""
        try:
            for name, data in metadata.items():
                self._writer.add_metadata(name, {str(k): str(v) for k, v in data.items()})
            self._writer.finish()
            self._finished = True
            self._sync()
            self._fh.close()
            self.closed = True
            os.replace(self.partial, self.final)
            _fsync_dir(self.directory)
        except OSError as exc:
            self._close_quietly()
            raise describe_os_error(exc, self.partial) from exc
        return self.final

    def discard(self, keep_as: str | None = None) -> Path | None:
        """Close without publishing; delete the partial file, or rename it to ``<name><keep_as>``."""
        self._close_quietly()
        try:
            if keep_as:
                target = self.directory / f"{self.name}{keep_as}"
                os.replace(self.partial, target)
                return target
            self.partial.unlink(missing_ok=True)
        except OSError:
            pass
        return None

    def close(self) -> None:
        """Stop writing and leave the ``.mcap.partial`` file as it is."""
        self._close_quietly()

    def _close_quietly(self) -> None:
        self.closed = True
        fh = getattr(self, "_fh", None)
        if fh is not None and not fh.closed:
            try:
                fh.close()
            except OSError:
                pass  # the buffered tail cannot be written (disk full): the partial file keeps what it has


def mark_leftover_partials(directory: str | Path) -> list[Path]:
    """Rename every ``*.mcap.partial`` in ``directory`` (a recorder that crashed) to ``*.incomplete.mcap``.

    Never deletes: the data up to the last fsync is usually readable with a streaming MCAP reader.
    Returns the new paths.
    """
    d = Path(directory)
    out = []
    if not d.is_dir():
        return out
    for p in sorted(d.glob(f"*{PARTIAL_SUFFIX}")):
        target = p.with_name(p.name[: -len(PARTIAL_SUFFIX)] + INCOMPLETE_SUFFIX)
        n = 1
        while target.exists():
            target = p.with_name(p.name[: -len(PARTIAL_SUFFIX)] + f".{n}{INCOMPLETE_SUFFIX}")
            n += 1
        os.replace(p, target)
        out.append(target)
    return out
