"""The fixed sets of reasons the safety filter rejects an input or intervenes for.

Every reason string the filter emits is ``"<kind>: <detail>"``: the kind is one member of
:class:`Reject` or :class:`Intervention` (a fixed vocabulary), the detail carries the numbers.
Counters, ``/diagnostics`` keys and evaluation reports key on the kind only, so an input that
sprays varying stamps or values cannot grow the filter's memory or its diagnostics: the
number of distinct keys is bounded by the size of these enums.
"""

from __future__ import annotations

from enum import Enum


class Reject(str, Enum):
    """Why an input (command, measured state, speed scale) was refused whole."""

    NOT_SYNCED = "not_synced"
    ESTOP = "estop_latched"
    FAULT = "fault_latched"
    RESYNCING = "resyncing"
    BEFORE_SYNC = "before_sync"
    FUTURE = "future"
    EXPIRED = "expired"
    NOT_NUMERIC = "not_numeric"
    SHAPE = "shape"
    NON_FINITE = "non_finite"
    TIMES_NOT_INCREASING = "times_not_increasing"
    MISSING_JOINTS = "missing_joints"
    DUPLICATE_JOINTS = "duplicate_joints"
    MALFORMED = "malformed"
    WRONG_FRAME = "wrong_frame"
    QUATERNION = "quaternion"
    SPEED_SCALE = "speed_scale"
    MEASURED_UNUSABLE = "measured_unusable"
    #: A measured state from a publisher other than the driver.
    FOREIGN_SOURCE = "foreign_source"
    #: The per-tick input queue was full: the oldest unprocessed message was dropped.
    SUPERSEDED = "superseded"


class Intervention(str, Enum):
    """Why an output differs from what the active source asked for (or why there is none)."""

    ESTOP = "estop"
    FAULT = "fault"
    RESET = "reset"
    STALE = "stale"
    PAUSED = "paused"
    LAG_HOLD = "lag_hold"
    SPEED_SCALED = "speed_scaled"
    POSITION_CLAMPED = "position_clamped"
    STEP_CLAMPED = "step_clamped"
    WORKSPACE_CLAMPED = "workspace_clamped"
    WORKSPACE_REJECTED = "workspace_rejected"
    ORIENTATION_REJECTED = "orientation_rejected"
    SAFETY_BRAKE = "safety_brake"
    RESYNC = "resync"
    HANDOVER = "handover"
    IGNORED_SOURCE = "ignored_source"
    REJECTED = "rejected"
    OTHER = "other"


_KINDS = {k.value: k for k in Intervention}


def reason(kind: Reject | Intervention, detail: str = "") -> str:
    """The reason string ``"<kind>: <detail>"`` (just the kind without a detail)."""
    return f"{kind.value}: {detail}" if detail else kind.value


def kind_of(note: str) -> Intervention:
    """The intervention kind of a reason string; anything unknown counts as ``other``."""
    return _KINDS.get(note.split(":", 1)[0].strip(), Intervention.OTHER)
