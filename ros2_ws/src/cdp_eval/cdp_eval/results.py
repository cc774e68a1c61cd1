"""Trial results: one JSON line per finished trial, appended and fsynced (no ROS here).

A trial is written only once it has an outcome, in one ``write`` of one line followed by
``fsync``, so a crash or kill loses at most the trial in progress (which is then run again) and
never leaves a half-counted one. A torn last line (killed mid-write) is ignored on reading.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

RESULTS_FILE = "results.jsonl"


class ResultsError(RuntimeError):
    """The output folder holds results of a different protocol, or they cannot be written."""


def read_results(path: str | Path) -> list[dict[str, Any]]:
    """Every complete row of a results file (a torn last line from a kill is skipped)."""
    p = Path(path)
    if not p.is_file():
        return []
    rows = []
    lines = p.read_text().splitlines()
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            if i == len(lines) - 1:
                continue  # a kill during the write: that trial was not finished, it runs again
            raise ResultsError(f"{p}: line {i + 1} is not JSON (the file was edited?)") from None
    return rows


class ResultsLog:
    """The results of one protocol run in ``folder/results.jsonl``."""

    def __init__(self, folder: str | Path, protocol_hash: str):
        self.folder = Path(folder)
        self.path = self.folder / RESULTS_FILE
        self.protocol_hash = protocol_hash
        self.rows = read_results(self.path)
        other = sorted({r.get("protocol_hash") for r in self.rows} - {protocol_hash}, key=str)
        if other:
            raise ResultsError(
                f"{self.path} holds trials of another protocol (hash {other}, this one is "
                f"{protocol_hash}): the protocol, a model or the calibration changed. Use a new "
                "output folder, or move the old results away"
            )
        self._repair_torn_tail()

    def _repair_torn_tail(self) -> None:
        # A torn last line would otherwise glue itself to the next appended row.
        if self.path.is_file():
            data = self.path.read_bytes()
            if data and not data.endswith(b"\n"):
                cut = data.rfind(b"\n") + 1
                with open(self.path, "r+b") as f:
                    f.truncate(cut)
                    f.flush()
                    os.fsync(f.fileno())

    def done(self) -> set[tuple[int, str]]:
        return {(int(r["trial"]), str(r["policy"])) for r in self.rows}

    def append(self, row: dict[str, Any]) -> None:
        key = (int(row["trial"]), str(row["policy"]))
        if key in self.done():
            raise ResultsError(f"trial {key} is already recorded in {self.path}")
        row = {"protocol_hash": self.protocol_hash, **row}
        self.folder.mkdir(parents=True, exist_ok=True)
        line = (json.dumps(row, sort_keys=False) + "\n").encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
        self.rows.append(row)
