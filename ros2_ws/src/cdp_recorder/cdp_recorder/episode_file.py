"""Reading a recorded episode: decoded messages per topic (with header and log times) and metadata.

Decoding uses ``mcap-ros2-support`` (pure Python, from the schemas stored in the file), so
conversion runs on any machine with the ``mcap`` packages, with or without ROS 2.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory


@dataclass
class TopicMessages:
    log_ns: list[int] = field(default_factory=list)
    stamp: list[float] = field(default_factory=list)  # header stamp (s) or log time where there is none
    msgs: list[Any] = field(default_factory=list)


@dataclass
class RecordedEpisode:
    path: Path
    topics: dict[str, TopicMessages]
    metadata: dict[str, dict[str, str]]

    @property
    def episode(self) -> dict[str, str]:
        return self.metadata.get("episode", {})

    @property
    def success(self) -> bool | None:
        v = self.episode.get("success", "unknown")
        return None if v == "unknown" else v == "true"


class EpisodeFileError(ValueError):
    """A recording that cannot be read (truncated, not MCAP, not ROS 2)."""


def read_episode(path: str | Path, topics: list[str] | None = None) -> RecordedEpisode:
    p = Path(path)
    out: dict[str, TopicMessages] = {}
    try:
        with open(p, "rb") as fh:
            reader = make_reader(fh, decoder_factories=[DecoderFactory()])
            for _schema, channel, message, decoded in reader.iter_decoded_messages(topics=topics, log_time_order=True):
                tm = out.setdefault(channel.topic, TopicMessages())
                tm.log_ns.append(message.log_time)
                header = getattr(decoded, "header", None)
                if header is not None and (header.stamp.sec or header.stamp.nanosec):
                    tm.stamp.append(header.stamp.sec + header.stamp.nanosec * 1e-9)
                else:
                    tm.stamp.append(message.log_time * 1e-9)
                tm.msgs.append(decoded)
            fh.seek(0)
            reader = make_reader(fh)
            metadata = {m.name: dict(m.metadata) for m in reader.iter_metadata()}
    except Exception as exc:  # noqa: BLE001 - mcap raises many types for a damaged file
        raise EpisodeFileError(f"{p}: cannot read recording ({type(exc).__name__}: {exc})") from exc
    return RecordedEpisode(p, out, metadata)


def episode_events(ep: RecordedEpisode) -> list[dict[str, Any]]:
    tm = ep.topics.get("/episode/event")
    if tm is None:
        return []
    out = []
    for ns, m in zip(tm.log_ns, tm.msgs):
        try:
            d = json.loads(m.data)
        except (ValueError, TypeError):
            d = {"event": str(m.data)}
        d["log_ns"] = ns
        out.append(d)
    return out
