"""Node configuration as a dataclass: declared as ROS parameters, read back typed.

Every node keeps its settings in a plain dataclass (what the unit tests construct); the node
declares one ROS parameter per field with the dataclass default, so the same YAML file
(ROS 2 ``--params-file`` format) configures ``ros2 launch`` and the project's own launcher.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

T = TypeVar("T")


def declare_dataclass(node: Any, cls: type[T], prefix: str = "") -> T:
    """Declare a parameter per field of ``cls`` on ``node`` and return the instance they give.

    Lists must be non-empty in the defaults (ROS infers the parameter type from them).
    """
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            default = f.default_factory()  # type: ignore[misc]
        else:
            raise TypeError(f"{cls.__name__}.{f.name} needs a default to be a ROS parameter")
        if isinstance(default, tuple):
            default = list(default)
        value = node.declare_parameter(prefix + f.name, default).value
        if isinstance(f.default, tuple) or isinstance(default, list):
            value = type(f.default)(value) if isinstance(f.default, tuple) else list(value)
        values[f.name] = value
    return cls(**values)
