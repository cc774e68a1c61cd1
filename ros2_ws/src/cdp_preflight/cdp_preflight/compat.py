"""Which libfranka fits which robot system version (Franka's compatibility matrix, as data).

Source: libfranka's ``docs/compatibility_matrix.rst`` / "Robot System Version Compatibility"
(frankarobotics/libfranka). The robot server version is what libfranka's connect handshake
compares: the arm refuses a library built for another server version with
``IncompatibleVersionException`` (message "server version: N, library version: M").
An open upper bound means "not tested against newer robot system versions", not "works".
"""

from __future__ import annotations

import re
from dataclasses import dataclass

Version = tuple[int, ...]


@dataclass(frozen=True)
class CompatRow:
    libfranka_min: Version
    libfranka_max: Version | None  # exclusive
    system_min: Version
    system_max: Version | None  # exclusive
    robot_server: int
    gripper_server: int
    robot: str  # "FR3" or "FER" (Panda)


#: Newest first, as in Franka's table.
COMPAT_TABLE: tuple[CompatRow, ...] = (
    CompatRow((0, 18, 0), None, (5, 9, 0), None, 10, 3, "FR3"),
    CompatRow((0, 15, 0), (0, 18, 0), (5, 7, 2), (5, 9, 0), 9, 3, "FR3"),
    CompatRow((0, 14, 1), (0, 15, 0), (5, 7, 0), (5, 7, 2), 8, 3, "FR3"),
    CompatRow((0, 13, 3), (0, 14, 1), (5, 5, 0), (5, 7, 0), 7, 3, "FR3"),
    CompatRow((0, 10, 0), (0, 13, 3), (5, 2, 0), (5, 5, 0), 6, 3, "FR3"),
    CompatRow((0, 9, 1), (0, 10, 0), (4, 2, 1), (5, 2, 0), 5, 3, "FER"),
    CompatRow((0, 8, 0), (0, 9, 1), (4, 0, 0), (4, 2, 1), 4, 3, "FER"),
    CompatRow((0, 7, 1), (0, 8, 0), (3, 0, 0), (4, 0, 0), 3, 3, "FER"),
    CompatRow((0, 5, 0), (0, 7, 1), (1, 3, 0), (3, 0, 0), 3, 2, "FER"),
    CompatRow((0, 3, 0), (0, 5, 0), (1, 2, 0), (1, 3, 0), 2, 2, "FER"),
    CompatRow((0, 2, 0), (0, 3, 0), (1, 1, 0), (1, 2, 0), 2, 1, "FER"),
)

#: What the project's images pin (docker/requirements.*.txt): pylibfranka 0.21.3 is libfranka 0.21.3,
#: franky-control 2.0.0 bundles libfranka 0.21.2. Both need robot system >= 5.9.0 (server 10).
PINNED_LIBFRANKA = {"pylibfranka": "0.21.3", "franky-control": "0.21.2"}


def parse_version(text: str) -> Version:
    """``"0.21.3"`` -> (0, 21, 3); trailing non-numeric parts (``.post1``, ``rc1``) are dropped."""
    parts = []
    for p in str(text).strip().lstrip("v").split("."):
        m = re.match(r"\d+", p)
        if not m:
            break
        parts.append(int(m.group()))
    if not parts:
        raise ValueError(f"not a version: {text!r}")
    return tuple(parts)


def fmt(v: Version | None) -> str:
    return ".".join(str(x) for x in v) if v else ""


def version_range(lo: Version, hi: Version | None) -> str:
    return f">= {fmt(lo)}" + (f" < {fmt(hi)}" if hi else "")


def row_for_libfranka(version: str | Version) -> CompatRow | None:
    """The table row a libfranka version belongs to (None: older than every row)."""
    v = parse_version(version) if isinstance(version, str) else tuple(version)
    for row in COMPAT_TABLE:
        if v >= row.libfranka_min and (row.libfranka_max is None or v < row.libfranka_max):
            return row
    return None


def rows_for_server(server_version: int) -> list[CompatRow]:
    """Rows whose robot server version is ``server_version`` (what an incompatible arm reports)."""
    return [r for r in COMPAT_TABLE if r.robot_server == server_version]


def describe_libfranka(version: str) -> str:
    row = row_for_libfranka(version)
    if row is None:
        return f"libfranka {version} is older than every row of Franka's compatibility table"
    return (
        f"libfranka {version}: {row.robot} robot system {version_range(row.system_min, row.system_max)} "
        f"(robot/gripper server {row.robot_server}/{row.gripper_server})"
    )


def advice_for_server(server_version: int) -> str:
    """What to install for an arm that reports ``server_version``."""
    rows = rows_for_server(server_version)
    if not rows:
        return (
            f"robot server version {server_version} is not in the compatibility table this tool knows "
            "(newer robot system?): check Franka's compatibility matrix for a matching libfranka"
        )
    r = rows[0]
    return (
        f"the arm runs robot server version {server_version} ({r.robot} robot system "
        f"{version_range(r.system_min, r.system_max)}): it needs libfranka {version_range(r.libfranka_min, r.libfranka_max)}; "
        "install matching pylibfranka / franky-control wheels (franky publishes wheels per robot server version), "
        "or update the robot system in Desk"
    )


def markdown_table() -> str:
    """The table as Markdown (docs/robot_pc.md carries exactly this; a test keeps them equal)."""
    lines = ["| libfranka | robot system | robot / gripper server | robot |", "| --- | --- | --- | --- |"]
    for r in COMPAT_TABLE:
        lines.append(
            f"| {version_range(r.libfranka_min, r.libfranka_max)} | {version_range(r.system_min, r.system_max)} | "
            f"{r.robot_server} / {r.gripper_server} | {r.robot} |"
        )
    return "\n".join(lines)
