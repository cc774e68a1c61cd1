"""Which one publisher a safety-relevant subscription listens to (no rclpy import here).

The stack's two safety-critical topics each have exactly one legitimate publisher: the safety
filter on ``/safety/command`` (read by the driver) and the driver on ``/joint_states`` (read by
the filter). :class:`SolePublisher` holds that publisher's GID, found on the ROS graph by its
node name, and answers per message (rmw message info carries the publisher GID) whether it
came from it; anything else on the topic is *foreign*, which the owner treats as a fault.

Node names on the graph are claimed, not proven: SROS2 (DDS security with per-topic publish
permissions) is what makes them hold against a hostile participant; see franka_driver/README.md.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

Endpoint = tuple[str, bytes]  # (fully qualified node name, publisher GID)

#: What rmw reports for an endpoint whose participant's node information has not been discovered
#: yet (seen for the driver's own publisher during start-up on a loaded machine).
UNKNOWN_NODE = "_NODE_NAME_UNKNOWN_"


class SolePublisher:
    """The only publisher of a topic to listen to: named ``node`` ("" = any, bench tests only)."""

    def __init__(self, node: str, unknown_grace_s: float = 3.0):
        self.node = node
        self.gid: bytes | None = None
        self.foreign: list[str] = []
        #: An endpoint whose node name is not discovered yet is not foreign until it stays unknown
        #: this long (s); it is never believed meanwhile.
        self.unknown_grace_s = unknown_grace_s
        self._unknown_since: dict[bytes, float] = {}

    def update(self, endpoints: Sequence[Endpoint], now: float | None = None) -> list[str]:
        """Take the topic's publishers from the graph (at monotonic time ``now``); returns the foreign ones."""
        if not self.node:
            self.gid, self.foreign = None, []
            return []
        now = time.monotonic() if now is None else now
        unknown = {gid for name, gid in endpoints if UNKNOWN_NODE in name}
        self._unknown_since = {gid: self._unknown_since.get(gid, now) for gid in unknown}
        lingering = [gid for gid, t0 in self._unknown_since.items() if now - t0 >= self.unknown_grace_s]
        own = [gid for name, gid in endpoints if name == self.node]
        foreign = sorted(
            name for name, gid in endpoints if name != self.node and (UNKNOWN_NODE not in name or gid in lingering)
        )
        if len(own) > 1:
            foreign.append(f"{self.node} (a second publisher under that name)")
        self.gid = own[0] if len(own) == 1 else None
        self.foreign = foreign
        return foreign

    @property
    def known(self) -> bool:
        """True when messages can be told apart (the named node is alone on the topic), or any is fine."""
        return not self.node or self.gid is not None

    def accepts(self, gid: bytes | None) -> bool:
        """Did this message (publisher ``gid``) come from the sole publisher?"""
        if not self.node:
            return True
        return self.gid is not None and gid is not None and bytes(gid) == self.gid


def graph_endpoints(node: Any, topic: str) -> list[Endpoint]:
    """(fully qualified node name, GID) of every publisher on ``topic``, from an rclpy node's graph."""
    out = []
    for info in node.get_publishers_info_by_topic(topic):
        ns = info.node_namespace.rstrip("/")
        out.append((f"{ns}/{info.node_name}", bytes(info.endpoint_gid)))
    return out


def message_gid(info: dict | None) -> bytes | None:
    """The publisher GID of a message from rmw message info (a two-argument subscription callback)."""
    gid = (info or {}).get("publisher_gid")
    return bytes(gid["data"]) if gid and gid.get("data") is not None else None
