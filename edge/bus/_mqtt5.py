"""The MQTT 5 transport: an asyncio ``Protocol`` around the sans-I/O machine of ``_mqtt5_session``.

Where the paho transport spends ~12 µs of paho's own Python per relayed message, this one
spends ~1.3 µs (``bench/cpu.py``): it parses packets with the ``mqtt5`` codec (Rust) straight
out of ``data_received``, and

* every complete packet of a chunk is parsed and dispatched in one go, and everything the
  handlers wrote (acknowledgements, the publishes of a relay) leaves in **one**
  ``transport.write`` at the end of the batch; publishes made elsewhere are coalesced into one
  write per loop iteration (``call_soon``);
* **back-pressure**: when the socket's write buffer passes its high-water mark asyncio calls
  ``pause_writing``; we then stop reading (a relay cannot produce more than one input chunk
  ahead) and ``drain()`` waits until ``resume_writing`` (while it waits, the high-water mark
  drops to the low one, so a publish-only bus that never paused is told when it has drained);
* TCP_QUICKACK after every read (Linux), so a broker that leaves Nagle on (Mosquitto does)
  does not hold small messages back for our delayed ACKs: p50 at 1k msgs/s 1.2 → 0.05 ms;
* **keep-alive**: a PINGREQ when nothing came in, or nothing went out, for 3/4 of the
  keep-alive (the broker's, if its CONNACK says so), and the connection is closed when no
  PINGRESP follows within as long again: a silent broker is noticed after 1.5 keep-alives,
  even by a client that keeps publishing.

TLS is asyncio's (``mqtts://``). WebSockets are not spoken here: ``ws://`` and ``wss://`` use
the paho transport.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import socket
import ssl
from collections.abc import Callable, Sequence

from mqtt5 import DisconnectReasonCode, QoS, Will

from edge.bus._mqtt5_session import BrokerDisconnect, ClientMachine, ProtocolError, ProtocolRefused, Session
from edge.bus._transport import Connection, ConnectOptions, MessageHandler, TLSOptions, Transport
from edge.errors import BusError, ConfigError, ConnectError, NotConnectedError

__all__ = ["Mqtt5Connection", "Mqtt5Transport"]

log = logging.getLogger("edge.bus")

WRITE_HIGH_WATER = 1024 * 1024
WRITE_LOW_WATER = 256 * 1024
_ACK_TIMEOUT = 10.0
_CLOSE_TIMEOUT = 2.0
_PING_FRACTION = 0.75  # of the keep-alive: idle time before a PINGREQ, and the wait for its PINGRESP
# Linux: acknowledge what we read at once (set again after every read: the kernel drops it).
# A broker with Nagle on (Mosquitto's default) otherwise holds each small message until the
# previous one is acknowledged, which a delayed ACK defers to our next write: ~1 ms a message
# at 1k msgs/s. Measured in docs/benchmarks.md.
_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)


class Mqtt5Connection(Connection, asyncio.Protocol):
    """One MQTT 5 connection: the asyncio protocol and the bus's :class:`Connection` in one object."""

    def __init__(self, loop: asyncio.AbstractEventLoop, machine: ClientMachine, *, keepalive: int) -> None:
        self._loop = loop
        self._machine = machine
        machine.on_ack = self._on_ack
        machine.on_output = self._schedule_flush
        self._transport: asyncio.Transport | None = None
        self.connack: asyncio.Future[None] = loop.create_future()
        self._closed: asyncio.Future[BaseException | None] = loop.create_future()
        self._lost: asyncio.Future[None] = loop.create_future()
        self._acks: dict[int, asyncio.Future[list[int]]] = {}
        self._flush_pending = False
        self._paused = False
        self._drain_waiters: list[asyncio.Future[None]] = []
        self._keepalive = keepalive
        self._timer: asyncio.TimerHandle | None = None
        self._last_in = self._last_out = self._ping_sent = loop.time()
        self._received_any = False
        self._quickack: Callable[[], None] | None = None

    # -- asyncio.Protocol ---------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        transport.set_write_buffer_limits(high=WRITE_HIGH_WATER, low=WRITE_LOW_WATER)
        sock = transport.get_extra_info("socket")
        if _QUICKACK is not None and sock is not None:
            self._quickack = functools.partial(sock.setsockopt, socket.IPPROTO_TCP, _QUICKACK, 1)
        self._flush()  # CONNECT

    def data_received(self, data: bytes) -> None:
        if self._quickack is not None:
            try:
                self._quickack()
            except OSError:  # not a TCP socket after all: never mind
                self._quickack = None
        self._flush_pending = True  # what the handlers publish now joins this batch's write
        self._received_any = True
        machine = self._machine
        try:
            machine.receive(data)
        except BusError as exc:
            self._fail(exc)
            return
        except Exception as exc:  # a bug here or in a handler: end this connection, never the loop
            log.exception("%s: error while handling packets from the broker", machine.session.client_id)
            self._fail(ProtocolError(f"internal error while handling packets: {exc!r}",
                                     reason=DisconnectReasonCode.IMPLEMENTATION_SPECIFIC_ERROR))
            return
        finally:
            self._last_in = self._loop.time()
        if not self.connack.done() and machine.connected:
            self._on_connected()
        self._flush()
        if self._drain_waiters and not self._paused and self.write_buffer_size <= WRITE_LOW_WATER:
            self._release_drain_waiters()

    def eof_received(self) -> bool:
        return False  # close our side too; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.connack.done():
            if self._received_any or (exc is not None and not isinstance(exc, ConnectionError)):
                self.connack.set_exception(ConnectError(f"connection lost before CONNACK: {exc}"))
            else:  # hung up on our CONNECT without a word: a broker that does not take MQTT 5 here
                self.connack.set_exception(ProtocolRefused(f"the broker closed the connection before CONNACK"
                                                           f"{f' ({exc})' if exc else ''}"))
        self._set_closed(exc or ConnectionResetError("the broker closed the connection"))
        if not self._lost.done():
            self._lost.set_result(None)

    def pause_writing(self) -> None:
        self._paused = True
        if self._transport is not None and not self._transport.is_closing():
            self._transport.pause_reading()

    def resume_writing(self) -> None:
        self._paused = False
        if self._transport is not None and not self._transport.is_closing():
            self._transport.resume_reading()
        if self.write_buffer_size <= WRITE_LOW_WATER:
            self._release_drain_waiters()

    # -- our side -----------------------------------------------------------------------------
    def _flush(self) -> None:
        self._flush_pending = False
        machine = self._machine
        transport = self._transport
        if machine.out and transport is not None and not transport.is_closing():
            data = machine.out
            machine.out = bytearray()  # a fresh one: the transport may keep a view of what it got
            transport.write(data)
            self._last_out = self._loop.time()
        # a bus that only publishes gets no data_received: release drain() here too
        if self._drain_waiters and not self._paused and self.write_buffer_size <= WRITE_LOW_WATER:
            self._release_drain_waiters()

    def _schedule_flush(self) -> None:
        """Write what the machine queued at the end of this loop turn (in data_received: with its batch)."""
        if not self._flush_pending:
            self._flush_pending = True
            self._loop.call_soon(self._flush)

    def _on_connected(self) -> None:
        connack = self._machine.connack
        assert connack is not None
        if connack.server_keep_alive is not None:
            self._keepalive = connack.server_keep_alive
        if self._keepalive > 0:
            self._timer = self._loop.call_later(self._keepalive * _PING_FRACTION, self._tick)
        self.connack.set_result(None)

    def _tick(self) -> None:
        """Keep-alive: ping when idle, close when the broker does not answer."""
        self._timer = None
        if self._closed.done():
            return
        now = self._loop.time()
        wait = self._keepalive * _PING_FRACTION
        if self._machine.ping_outstanding:
            if now - self._ping_sent >= wait:
                self._fail(TimeoutError(f"no PINGRESP within {wait:g} s: the broker is gone"), send=False)
                return
            at = self._ping_sent + wait
        else:
            at = min(self._last_in, self._last_out) + wait
            if now >= at:
                self._machine.ping()
                self._ping_sent = now
                self._flush()
                at = now + wait
        self._timer = self._loop.call_at(at, self._tick)

    def _on_ack(self, packet_id: int, codes: list[int]) -> None:
        fut = self._acks.pop(packet_id, None)
        if fut is not None and not fut.done():
            fut.set_result(codes)

    def _fail(self, cause: BaseException, *, send: bool = True) -> None:
        """End the connection because of ``cause``: DISCONNECT with a reason where one fits, then close."""
        machine = self._machine
        if not self.connack.done():
            if machine.connected:  # CONNACK came in the batch that failed: connected, then lost
                self.connack.set_result(None)
            else:
                self.connack.set_exception(cause if isinstance(cause, ConnectError)
                                           else ConnectError(f"connection failed before CONNACK: {cause}"))
        if self._closed.done():
            return
        if isinstance(cause, BrokerDisconnect):
            log.warning("%s: %s", machine.session.client_id, cause)
        elif isinstance(cause, ProtocolError) and send and machine.connected:
            machine.disconnect(cause.reason)
            self._flush()
        self._set_closed(cause)
        if self._transport is not None:
            self._transport.abort()

    def _set_closed(self, cause: BaseException | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._machine.connection_lost()
        if not self._closed.done():
            self._closed.set_result(cause)
        acks, self._acks = self._acks, {}
        for fut in acks.values():
            if not fut.done():
                fut.set_exception(NotConnectedError("connection lost while waiting for the broker"))
        self._release_drain_waiters()

    def _release_drain_waiters(self) -> None:
        waiters, self._drain_waiters = self._drain_waiters, []
        transport = self._transport
        if waiters and transport is not None and not transport.is_closing():
            transport.set_write_buffer_limits(high=WRITE_HIGH_WATER, low=WRITE_LOW_WATER)
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    # -- Connection ---------------------------------------------------------------------------
    def publish(self, topic: str, payload: bytes, qos: int, retain: bool) -> None:
        self._machine.publish(topic, payload, qos, retain)
        if not self._flush_pending:
            self._flush_pending = True
            self._loop.call_soon(self._flush)

    async def _request(self, packet_id: int) -> list[int]:
        if not self._flush_pending:
            self._flush_pending = True
            self._loop.call_soon(self._flush)
        fut: asyncio.Future[list[int]] = self._loop.create_future()
        self._acks[packet_id] = fut
        try:
            async with asyncio.timeout(_ACK_TIMEOUT):
                return await fut
        finally:
            self._acks.pop(packet_id, None)
            self._machine.forget_ack(packet_id)

    async def subscribe(self, filters: Sequence[tuple[str, int]]) -> list[int]:
        if self._closed.done():
            raise NotConnectedError("the broker connection is closed")
        return await self._request(self._machine.subscribe(filters))

    async def unsubscribe(self, filters: Sequence[str]) -> None:
        if self._closed.done():
            raise NotConnectedError("the broker connection is closed")
        await self._request(self._machine.unsubscribe(filters))

    @property
    def write_buffer_size(self) -> int:
        transport = self._transport
        size = self._machine.pending_bytes
        return size + transport.get_write_buffer_size() if transport is not None else size

    async def drain(self) -> None:
        if self._closed.done() or (not self._paused and self.write_buffer_size <= WRITE_LOW_WATER):
            return
        fut = self._loop.create_future()
        self._drain_waiters.append(fut)
        transport = self._transport
        if not self._paused and transport is not None and not transport.is_closing():
            # asyncio calls resume_writing only after a pause, and a bus that only publishes gets
            # no data_received to look again: while someone waits, pause as soon as more than the
            # low-water mark is buffered, so that resume_writing tells us when it has drained
            transport.set_write_buffer_limits(high=WRITE_LOW_WATER, low=WRITE_LOW_WATER)
        await fut

    def unacknowledged(self) -> int:
        session = self._machine.session
        return len(session.queue) + len(session.inflight)

    @property
    def closed(self) -> bool:
        return self._closed.done()

    async def wait_closed(self) -> BaseException | None:
        return await asyncio.shield(self._closed)

    async def disconnect(self) -> None:
        if self._closed.done():
            return
        self._set_closed(None)
        transport = self._transport
        if transport is None:
            return
        if not transport.is_closing():
            self._machine.disconnect()
            self._flush()
            transport.close()  # after what is buffered, DISCONNECT included: no will
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_CLOSE_TIMEOUT):
                await asyncio.shield(self._lost)
        if not self._lost.done():
            transport.abort()

    def abort(self) -> None:
        self._set_closed(ConnectionAbortedError("aborted"))
        if self._transport is not None:
            self._transport.abort()


def _ssl_context(tls: TLSOptions | None) -> ssl.SSLContext:
    """As paho's ``tls_set``: verify against ``ca`` (else the system's CAs); ``insecure`` skips the host name."""
    try:
        context = ssl.create_default_context(cafile=str(tls.ca) if tls is not None and tls.ca else None)
        if tls is not None and tls.cert is not None:
            context.load_cert_chain(tls.cert, tls.key)
    except (OSError, ValueError) as exc:
        raise ConnectError(f"cannot set up TLS: {exc}", reason="TLS setup") from exc
    if tls is not None and tls.insecure:
        context.check_hostname = False
    return context


class Mqtt5Transport(Transport):
    """MQTT 5 over TCP or TLS with the ``mqtt5`` codec; keeps the session between connections."""

    def __init__(self) -> None:
        self._session: Session | None = None
        self._session_key: tuple[object, ...] | None = None

    @property
    def name(self) -> str:
        return "mqtt5"

    @property
    def session(self) -> Session | None:
        return self._session

    async def connect(self, options: ConnectOptions, on_message: MessageHandler) -> Connection:
        url = options.url
        if url.transport != "tcp":
            raise ConfigError(f"the MQTT 5 transport speaks mqtt:// and mqtts://, not {url.scheme}://: "
                              "use transport='paho' (or 'auto') for WebSockets", field="transport")
        key = (url.geturl(), url.username, options.client_id)
        if self._session is None or self._session_key != key:
            self._session = Session(options.client_id)
            self._session_key = key
        machine = ClientMachine(self._session, on_message, max_packet_size=options.max_packet_size,
                                receive_maximum=options.receive_maximum)
        will = options.will
        machine.connect(clean_start=options.clean_start, keepalive=options.keepalive, username=url.username,
                        password=url.password, session_expiry=options.session_expiry,
                        will=None if will is None else Will(will.topic, payload=will.payload, qos=QoS(will.qos),
                                                            retain=will.retain))
        loop = asyncio.get_running_loop()
        context = _ssl_context(options.tls) if url.tls else None
        conn = Mqtt5Connection(loop, machine, keepalive=options.keepalive)
        port = url.v5_port or url.port
        try:
            async with asyncio.timeout(options.connect_timeout):
                await loop.create_connection(lambda: conn, url.host, port, ssl=context,
                                             server_hostname=url.host if context is not None else None)
                await conn.connack
        except TimeoutError:
            conn.abort()
            raise ConnectError(f"no CONNACK from {url} (MQTT 5 on port {port}) within {options.connect_timeout} s"
                               ) from None
        except ConnectError:
            conn.abort()
            raise
        except OSError as exc:  # refused, unreachable, TLS handshake failed
            conn.abort()
            raise ConnectError(f"cannot connect to {url} (MQTT 5 on port {port}): {exc}") from exc
        except BaseException:
            conn.abort()
            raise
        finally:
            if not conn.connack.done():
                conn.connack.cancel()
        return conn
