"""The small interface between :class:`edge.bus.Bus` and an MQTT client implementation.

A transport moves bytes; it knows nothing of frames, subscriptions-to-queues routing or
reconnect policy, all of which live in the bus. One :class:`Connection` is one MQTT session
on one socket: made by :meth:`Transport.connect` (which returns after CONNACK), used until
:meth:`Connection.wait_closed` returns, never reused.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from edge.bus._message import Will
from edge.settings import BrokerURL

__all__ = ["RECEIVE_MAXIMUM", "Connection", "ConnectOptions", "Deferral", "MessageHandler", "TLSOptions",
           "Transport"]

_FLUSH_POLL = 0.01  # s between two looks at what is unacknowledged, while leaving

#: QoS 1/2 publishes the broker may send us before we acknowledge them (MQTT 5 CONNECT's
#: Receive Maximum; EDGE_RECEIVE_MAXIMUM): the window a held message takes a slot of
RECEIVE_MAXIMUM = 64


class Deferral(Protocol):
    """What a :class:`MessageHandler` returns for a QoS 1 message whose PUBACK may have to wait."""

    def defer(self, release: Callable[[], object], /) -> bool:
        """True: the PUBACK waits, ``release()`` sends it later (once); False: acknowledge it now."""


#: Called for every received PUBLISH: (topic, payload, qos, retain); must not block. For a QoS 1
#: message it may return a :class:`Deferral` (the bus's HeldMessage), which the transport offers a
#: ``release`` that sends this message's PUBACK on this connection (nothing once it has ended).
MessageHandler = Callable[[str, bytes, int, bool], "Deferral | None"]


@dataclass(frozen=True, slots=True, kw_only=True)
class TLSOptions:
    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None
    insecure: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectOptions:
    url: BrokerURL
    client_id: str
    clean_start: bool = True
    #: s the broker keeps a session (clean_start False) after its connection ends; MQTT 5 only
    #: (3.1.1 brokers apply their own rule: Mosquitto's ``persistent_client_expiration``)
    session_expiry: int = 0xFFFFFFFF
    keepalive: int = 15
    will: Will | None = None
    tls: TLSOptions | None = None
    protocol: Literal["3.1.1", "5"] = "3.1.1"
    connect_timeout: float = 10.0
    #: the largest packet we accept; MQTT 5 tells the broker, which then drops bigger ones for us
    max_packet_size: int | None = None
    #: QoS 1/2 messages the broker may have in flight to us (MQTT 5; a 3.1.1 broker applies its
    #: own limit: Mosquitto's ``max_inflight_messages``, 20 by default)
    receive_maximum: int = RECEIVE_MAXIMUM


class Connection(ABC):
    """One live MQTT session."""

    @abstractmethod
    def publish(self, topic: str, payload: bytes, qos: int, retain: bool) -> None:
        """Queue a PUBLISH for writing; never blocks (see :attr:`write_buffer_size`)."""

    @abstractmethod
    async def subscribe(self, filters: Sequence[tuple[str, int]]) -> list[int]:
        """SUBSCRIBE and wait for SUBACK; one granted QoS (or 0x80 failure) per filter."""

    @abstractmethod
    async def unsubscribe(self, filters: Sequence[str]) -> None:
        """UNSUBSCRIBE and wait for UNSUBACK."""

    @property
    @abstractmethod
    def write_buffer_size(self) -> int:
        """Bytes queued but not yet accepted by the socket."""

    @abstractmethod
    async def drain(self) -> None:
        """Wait until the write buffer is below its low-water mark."""

    @abstractmethod
    def unacknowledged(self) -> int:
        """QoS 1/2 publishes queued or in flight that the broker has not acknowledged yet."""

    async def flush(self, timeout: float) -> bool:
        """Wait (at most ``timeout`` s) until the broker has acknowledged every QoS 1/2 publish.

        True when nothing is left; False on timeout or when the connection ends first.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.unacknowledged():
            if loop.time() >= deadline or self.closed:
                return False
            await asyncio.sleep(_FLUSH_POLL)
        return True

    @property
    @abstractmethod
    def closed(self) -> bool:
        """Whether the connection has ended."""

    @abstractmethod
    async def wait_closed(self) -> BaseException | None:
        """Return when the connection has ended: ``None`` after our DISCONNECT, else the cause."""

    @abstractmethod
    async def disconnect(self) -> None:
        """Send DISCONNECT (the will is discarded) and close."""

    @abstractmethod
    def abort(self) -> None:
        """Close the socket at once, as a crash would (the broker publishes the will)."""


class Transport(ABC):
    """Makes connections; one per bus, so it may keep state between them (a session, a choice)."""

    @property
    @abstractmethod
    def name(self) -> str:
        """``mqtt5`` or ``paho``: which client the connections are made with."""

    @abstractmethod
    async def connect(self, options: ConnectOptions, on_message: MessageHandler) -> Connection:
        """Open a socket, send CONNECT, return after a successful CONNACK.

        Raises :class:`~edge.errors.ConnectError` when the broker refuses or is unreachable.
        """
