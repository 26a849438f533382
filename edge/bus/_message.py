"""Values that cross the bus API: received messages, wills, overflow policies and counters."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

__all__ = ["BusStats", "HeldMessage", "Message", "Overflow", "Will"]


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

    @property
    def held(self) -> bool:
        """Whether the broker still waits for this message's acknowledgement (see :class:`HeldMessage`)."""
        return False

    def ack(self) -> None:
        """Done with this message: for a :class:`HeldMessage`, one of its holders lets it go; for
        every other message (acknowledged on arrival, or QoS 0) nothing."""


class HeldMessage(Message):
    """A QoS 1 message whose PUBACK waits until every subscription that holds it has called :meth:`ack`.

    The bus makes one instead of a :class:`Message` only for a message that reaches at least one
    subscription opened with ``hold=True`` (a task input that waits rather than drops). Holders
    that take it at once ack it during delivery, and then the transport acknowledges it as it
    would any other; otherwise its PUBACK waits, and meanwhile the message takes one slot of the
    connection's in-flight window (the receive maximum): that is how a slow consumer slows the
    broker down. Each holder calls ``ack()`` once; the last call sends the PUBACK. A message
    whose connection ended before that is acknowledged to nobody: the broker sends it again on
    the next connection of a kept session (a duplicate, which inputs fed by a stream recognise
    by its ``seq``).
    """

    __slots__ = ("_holders", "_release")

    def __init__(self, topic: str, payload: bytes, qos: int, retain: bool, *, holders: int) -> None:
        super().__init__(topic, payload, qos, retain)
        self._holders = holders
        self._release: Callable[[], object] | None = None

    @property
    def held(self) -> bool:
        return self._holders > 0

    def ack(self) -> None:
        if self._holders <= 0:
            return
        self._holders -= 1
        if not self._holders and self._release is not None:
            release, self._release = self._release, None
            release()

    def defer(self, release: Callable[[], object]) -> bool:
        """After delivery: if some holder still holds the message, ``release`` sends its PUBACK once
        the last lets go (True); False when every holder took it already (acknowledge it now)."""
        if self._holders <= 0:
            return False
        self._release = release
        return True


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
