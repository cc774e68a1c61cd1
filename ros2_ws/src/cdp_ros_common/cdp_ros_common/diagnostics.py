"""Building diagnostic_msgs/DiagnosticArray messages from plain dictionaries."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

from .conversions import sec_to_time

OK, WARN, ERROR, STALE = DiagnosticStatus.OK, DiagnosticStatus.WARN, DiagnosticStatus.ERROR, DiagnosticStatus.STALE


def status(
    name: str, level: int, message: str, values: Mapping[str, Any] | None = None, hardware_id: str = ""
) -> DiagnosticStatus:
    """One DiagnosticStatus; values are stringified (floats with 4 significant digits)."""
    kv = [KeyValue(key=str(k), value=f"{v:.4g}" if isinstance(v, float) else str(v)) for k, v in (values or {}).items()]
    return DiagnosticStatus(
        level=bytes([level]) if isinstance(level, int) else level,
        name=name,
        message=message,
        hardware_id=hardware_id,
        values=kv,
    )


def array(stamp: float, *statuses: DiagnosticStatus) -> DiagnosticArray:
    msg = DiagnosticArray()
    msg.header.stamp = sec_to_time(stamp)
    msg.status = list(statuses)
    return msg
