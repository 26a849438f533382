"""Values that cross the bus API: received messages, wills, overflow policies and counters."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

__all__ = ["BusStats", "Message", "Overflow", "Will"]


class Message:
    """One received MQTT message. The payload is bytes: decoding is the caller's business."""

    __slots__ = ("payload", "qos", "retain", "topic")

    def __init__(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> None:
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain

    def __repr__(self) -> str:
        return (f"Message(topic={self.topic!r}, payload=<{len(self.payload)} bytes>, qos={self.qos}, "
                f"retain={self.retain})")


@dataclass(frozen=True, slots=True, kw_only=True)
class Will:
    """The message the broker publishes for us when the connection dies without a DISCONNECT."""

    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


class Overflow(Enum):
    """What a full subscription queue does with a new message; every drop is counted."""

    DROP_OLDEST = "drop_oldest"
    DROP_NEWEST = "drop_newest"


@dataclass(slots=True)
class BusStats:
    """Counters of one bus; they only grow."""

    connects: int = 0
    connection_losses: int = 0
    connect_failures: int = 0
    published: int = 0
    received: int = 0
    unmatched: int = 0
    oversize: int = 0
    duplicates: int = 0
    dropped_offline: int = 0
    last_error: str | None = field(default=None)
