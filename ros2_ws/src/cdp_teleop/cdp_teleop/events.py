"""Episode events: what teleop sends the recorder on ``/episode/event`` (std_msgs/String, JSON).

A topic, not services: the recorder may be down or busy writing, and a teleop loop that waits
on a service reply stalls the arm's command stream. The payload is one JSON object::

    {"event": "start" | "stop" | "discard" | "success" | "failure",
     "stamp": <seconds, ROS clock>, "task": "...", "operator": "...", "source": "keyboard", ...extra}

``stop`` ends the episode and keeps it; ``discard`` ends it and throws it away; ``success`` /
``failure`` set the episode's outcome flag (any time while it records, last one wins). The
recorder answers on ``/recorder/status`` (String, JSON: state, episode, file, error).
"""

from __future__ import annotations

import json
from typing import Any

from cdp_ros_common import names

EPISODE_EVENT = names.EPISODE_EVENT
RECORDER_STATUS = names.RECORDER_STATUS

START, STOP, DISCARD, SUCCESS, FAILURE = "start", "stop", "discard", "success", "failure"
EPISODE_EVENTS = (START, STOP, DISCARD, SUCCESS, FAILURE)


class EventError(ValueError):
    """A malformed episode event."""


def encode_event(event: str, stamp: float, **extra: Any) -> str:
    if event not in EPISODE_EVENTS:
        raise EventError(f"unknown episode event {event!r}; known: {', '.join(EPISODE_EVENTS)}")
    return json.dumps({"event": event, "stamp": float(stamp), **extra})


def decode_event(text: str) -> dict[str, Any]:
    """JSON payload -> dict with a known ``event``; a bare event name is accepted too (``ros2 topic pub``)."""
    text = text.strip()
    if text in EPISODE_EVENTS:
        return {"event": text}
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as exc:
        raise EventError(f"episode event is neither an event name nor JSON: {text[:80]!r} ({exc})") from exc
    if not isinstance(payload, dict) or payload.get("event") not in EPISODE_EVENTS:
        raise EventError(f"episode event needs 'event' in {EPISODE_EVENTS}, got {text[:80]!r}")
    return payload
