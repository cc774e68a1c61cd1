"""ros2msg schema text for MCAP channels, built from the installed .msg definitions.

MCAP's ROS 2 profile stores each channel's schema as the message definition followed by every
nested type's definition (rosbag2's layout: a line of 80 ``=``, ``MSG: pkg/Type``, the text),
which is what Foxglove, rosbag2's MCAP storage and ``mcap-ros2-support`` decode with. The .msg
files come with the ROS message packages (``share/<pkg>/msg/<Type>.msg`` under a prefix in
``AMENT_PREFIX_PATH`` or this Python's prefix, where the PyPI ROS wheels put them).
"""

from __future__ import annotations

import functools
import os
import re
import sys
from pathlib import Path

BUILTINS = {
    "bool",
    "byte",
    "char",
    "float32",
    "float64",
    "int8",
    "uint8",
    "int16",
    "uint16",
    "int32",
    "uint32",
    "int64",
    "uint64",
    "string",
    "wstring",
}
SEPARATOR = "=" * 80


class SchemaError(LookupError):
    """A message type whose .msg definition cannot be found."""


def _prefixes() -> list[Path]:
    out = [Path(p) for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    out += [Path(sys.prefix), Path(sys.base_prefix)]
    return out


@functools.lru_cache(maxsize=None)
def msg_file(pkg: str, name: str) -> Path:
    for prefix in _prefixes():
        f = prefix / "share" / pkg / "msg" / f"{name}.msg"
        if f.is_file():
            return f
    raise SchemaError(
        f"no definition of {pkg}/msg/{name} (looked for share/{pkg}/msg/{name}.msg under "
        f"{', '.join(str(p) for p in _prefixes())})"
    )


def split_type(type_name: str) -> tuple[str, str]:
    """``sensor_msgs/msg/JointState`` or ``sensor_msgs/JointState`` -> (package, name)."""
    parts = type_name.split("/")
    if len(parts) == 3 and parts[1] == "msg":
        return parts[0], parts[2]
    if len(parts) == 2:
        return parts[0], parts[1]
    raise SchemaError(f"message type {type_name!r} is not pkg/msg/Type")


def _field_types(text: str, pkg: str) -> list[tuple[str, str]]:
    deps = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        tokens = line.split(None, 1)
        ftype = tokens[0]
        if len(tokens) > 1 and "=" in tokens[1].split()[0] + (
            tokens[1].split()[1] if len(tokens[1].split()) > 1 else ""
        ):
            continue  # constant (NAME=VALUE): always a builtin type
        base = re.sub(r"\[.*\]$", "", ftype)
        base = re.sub(r"<=\d+$", "", base)
        if base in BUILTINS:
            continue
        if base == "Header":
            deps.append(("std_msgs", "Header"))
        elif "/" in base:
            deps.append(split_type(base))
        else:
            deps.append((pkg, base))
    return deps


@functools.lru_cache(maxsize=None)
def message_definition(type_name: str) -> str:
    """The full ros2msg schema text of ``type_name`` (dependencies depth-first, each once)."""
    pkg, name = split_type(type_name)
    main = msg_file(pkg, name).read_text()
    seen: set[tuple[str, str]] = {(pkg, name)}
    parts: list[str] = []

    def visit(p: str, n: str) -> None:
        for dep in _field_types(msg_file(p, n).read_text(), p):
            if dep in seen:
                continue
            seen.add(dep)
            parts.append(f"{SEPARATOR}\nMSG: {dep[0]}/{dep[1]}\n{msg_file(*dep).read_text()}")
            visit(*dep)

    visit(pkg, name)
    return "\n".join([main.rstrip("\n")] + [x.rstrip("\n") for x in parts]) + "\n"
