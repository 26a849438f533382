"""The paho-mqtt transport, driven from the asyncio loop without paho's own thread.

paho's ``loop_start()`` thread costs a wake-up byte and a select timeout per publish; here
the socket is registered with the event loop instead, and wrapped so that

* one ``recv`` of up to 256 KiB per readable event feeds paho's byte-at-a-time packet reader
  from memory (paho asks for the command byte and each length byte with its own ``recv``),
* everything paho writes during one loop iteration is coalesced into one ``send``,
* TCP_NODELAY is set, so small frames are not held back by Nagle, and TCP_QUICKACK after
  every read, so the broker's are not either (Linux).

See ``../shared/NOTES.md``: these took a paho relay from 18k to 29k msgs/s and its p50 latency
from 1.1 ms to 0.3 ms. The socket is opened by paho's blocking ``connect`` in a worker thread
(DNS, TCP, TLS and WebSocket handshakes), after which everything runs on the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import socket
import ssl
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge.bus._transport import Connection, ConnectOptions, MessageHandler, Transport
from edge.errors import ConnectError, NotConnectedError

__all__ = ["PahoTransport"]

log = logging.getLogger("edge.bus")

READ_CHUNK = 256 * 1024
# Linux: acknowledge what we read at once. A broker that leaves Nagle on (Mosquitto's default)
# holds each small message back until the previous one is acknowledged, and delayed ACKs
# otherwise wait for our next write: ~1 ms per message at 1k msgs/s (docs/benchmarks.md).
# Not sticky in the kernel, hence set again after every read.
_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)
WRITE_HIGH_WATER = 1024 * 1024
WRITE_LOW_WATER = 256 * 1024
_SUBACK_TIMEOUT = 10.0


class _BufferedSocket:
    """Wraps paho's socket: reads served from one big ``recv``, writes coalesced per loop turn."""

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self._rbuf = b""
        self._rpos = 0
        self._eof = False
        self._wbuf = bytearray()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._flush_scheduled = False
        self._writer_registered = False
        self._drain_waiters: list[asyncio.Future[None]] = []
        self.on_error: Any = None
        self._quickack: Callable[[], None] | None = None
        with contextlib.suppress(OSError, AttributeError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if _QUICKACK is not None:
                sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
                self._quickack = functools.partial(sock.setsockopt, socket.IPPROTO_TCP, _QUICKACK, 1)

    # -- what paho calls -----------------------------------------------------------------
    def recv(self, bufsize: int) -> bytes:
        pos = self._rpos
        if pos < len(self._rbuf):
            end = pos + bufsize
            self._rpos = end
            return self._rbuf[pos:end]
        if self._eof:
            return b""
        raise BlockingIOError

    def send(self, data: bytes | bytearray | memoryview) -> int:
        if self._loop is None:  # still in the connect handshake, on the worker thread
            return int(self._sock.send(data))
        self._wbuf += data
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)
        return len(data)

    def write(self, *parts: bytes) -> None:
        """Queue bytes of our own (QoS 0 PUBLISH packets), in order with paho's."""
        wbuf = self._wbuf
        for part in parts:
            wbuf += part
        if not self._flush_scheduled and self._loop is not None:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def close(self) -> None:
        if self._loop is not None:
            fd = self._sock.fileno()
            if fd >= 0:
                self._loop.remove_reader(fd)
                self._loop.remove_writer(fd)
        if self._wbuf:  # a DISCONNECT may still be here: without it the broker fires our will
            with contextlib.suppress(OSError, ValueError):
                self._sock.send(self._wbuf)
            self._wbuf.clear()
        self._release_drain_waiters()
        self._sock.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)

    # -- what the transport calls --------------------------------------------------------
    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def fill(self) -> bool:
        """Read what the socket has (one ``recv``; TLS records drained); False at end of stream."""
        chunks: list[bytes] = []
        try:
            data = self._sock.recv(READ_CHUNK)
            if not data:
                self._eof = True
            else:
                if self._quickack is not None:
                    with contextlib.suppress(OSError):
                        self._quickack()
                chunks.append(data)
                pending = getattr(self._sock, "pending", None)
                while pending is not None and pending() > 0:
                    more = self._sock.recv(READ_CHUNK)
                    if not more:
                        break
                    chunks.append(more)
        except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError, InterruptedError):
            pass
        except OSError:
            self._eof = True
        if chunks:
            rest = self._rbuf[self._rpos :]
            self._rbuf = b"".join([rest, *chunks]) if rest or len(chunks) > 1 else chunks[0]
            self._rpos = 0
        return not self._eof

    @property
    def has_data(self) -> bool:
        return self._rpos < len(self._rbuf) or self._eof

    @property
    def write_buffer_size(self) -> int:
        return len(self._wbuf)

    async def drain(self) -> None:
        if len(self._wbuf) <= WRITE_LOW_WATER or self._loop is None:
            return
        fut = self._loop.create_future()
        self._drain_waiters.append(fut)
        await fut

    def _flush(self) -> None:
        self._flush_scheduled = False
        if not self._wbuf:
            return
        try:
            sent = self._sock.send(self._wbuf)
        except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError, InterruptedError):
            sent = 0
        except OSError as exc:
            self._wbuf.clear()
            self._release_drain_waiters()
            if self.on_error is not None:
                self.on_error(exc)
            return
        del self._wbuf[:sent]
        assert self._loop is not None
        fd = self._sock.fileno()
        if self._wbuf and not self._writer_registered:
            self._writer_registered = True
            self._loop.add_writer(fd, self._flush)
        elif not self._wbuf and self._writer_registered:
            self._writer_registered = False
            self._loop.remove_writer(fd)
        if len(self._wbuf) <= WRITE_LOW_WATER:
            self._release_drain_waiters()

    def _release_drain_waiters(self) -> None:
        waiters, self._drain_waiters = self._drain_waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)


def _remaining_length(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


class _Client(paho.Client):
    """paho's client with our buffered socket in place of its own, and manual acknowledgements for
    QoS 1 only (``manual_ack``): QoS 2 messages are never held, and paho's own PUBREL handling
    also answers a PUBREL it has no message for (a kept session's, after a restart) only when it
    acknowledges by itself."""

    def _handle_pubrel(self) -> MQTTErrorCode:
        self._manual_ack = False
        try:
            return super()._handle_pubrel()
        finally:
            self._manual_ack = True

    def _create_socket(self) -> Any:
        return _BufferedSocket(super()._create_socket())

    def _ssl_wrap_socket(self, tcp_sock: socket.socket) -> ssl.SSLSocket:
        # paho's own leaves the TLS socket open when the handshake fails. Our contexts check
        # the host name themselves (tls_set) or were told not to (tls_insecure_set).
        assert self._ssl_context is not None
        ssl_sock = self._ssl_context.wrap_socket(tcp_sock, server_hostname=self._host, do_handshake_on_connect=False)
        try:
            ssl_sock.settimeout(self._connect_timeout)
            ssl_sock.do_handshake()
        except BaseException:
            ssl_sock.close()
            raise
        return ssl_sock


class _PahoConnection(Connection):
    def __init__(self, client: _Client, loop: asyncio.AbstractEventLoop) -> None:
        self._client = client
        self._loop = loop
        self._closed: asyncio.Future[BaseException | None] = loop.create_future()
        self.connack: asyncio.Future[None] = loop.create_future()
        self._acks: dict[int, asyncio.Future[list[int]]] = {}
        self._sock: _BufferedSocket | None = None
        self._misc: asyncio.TimerHandle | None = None
        # QoS 0 PUBLISH packets are framed here: paho's publish() costs ~10 us each (a
        # message-info object with a Condition, locks, its queue); ours is a few dict and
        # bytes operations. Everything else (CONNECT, SUBSCRIBE, QoS 1, keep-alive) stays paho's.
        self._v5 = client.protocol == paho.MQTTv5
        self._topic_heads: dict[str, bytes] = {}
        # QoS 1/2 publishes in the order made, until the broker acknowledges them (for flush())
        self._unacked: deque[paho.MQTTMessageInfo] = deque()

    # -- paho's callbacks ----------------------------------------------------------------
    def bind(self, on_message: MessageHandler) -> None:
        """Point the client's callbacks at this connection (a client outlives its connections)."""
        client = self._client

        def on_msg(_c: Any, _u: Any, msg: Any) -> None:
            qos = msg.qos
            held = on_message(msg.topic, msg.payload, qos, msg.retain)
            # the client runs with manual_ack for QoS 1: we send the PUBACK, now or, for a message
            # a holding subscription keeps, when it lets go (QoS 2 stays paho's: _Client._handle_pubrel)
            if qos == 1 and (held is None or not held.defer(functools.partial(self._ack, msg.mid))):
                client.ack(msg.mid, 1)

        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_ack
        client.on_unsubscribe = self._on_ack
        client.on_message = on_msg
        client.on_socket_close = self._on_socket_close

    def _on_connect(self, _c: Any, _u: Any, _flags: Any, reason: Any, _p: Any) -> None:
        if self.connack.done():
            return
        if reason.is_failure:
            self.connack.set_exception(
                ConnectError(f"the broker refused the connection: {reason}", reason=str(reason)))
        else:
            self.connack.set_result(None)

    def _on_disconnect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        self.set_closed(ConnectionResetError(f"connection lost: {reason}") if reason.is_failure else None)
        if not self.connack.done():
            self.connack.set_exception(
                ConnectError(f"connection closed before CONNACK: {reason}", reason=str(reason)))

    def _on_ack(self, _c: Any, _u: Any, mid: int, reasons: Any, _p: Any) -> None:
        self.suback(mid, [r.value if hasattr(r, "value") else int(r) for r in (reasons or [])])

    def _on_socket_close(self, _c: Any, _u: Any, _s: Any) -> None:
        self.set_closed(ConnectionResetError("socket closed"))

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> None:
        sock = self._client.socket()
        assert isinstance(sock, _BufferedSocket)
        self._sock = sock
        sock.attach(self._loop)
        sock.on_error = self._on_socket_error
        self._loop.add_reader(sock.fileno(), self._on_readable)
        if self._client.want_write():
            self._client.loop_write()
        self._schedule_misc()

    def _schedule_misc(self) -> None:
        self._misc = self._loop.call_later(1.0, self._on_misc)

    def _on_misc(self) -> None:
        if self._closed.done():
            return
        self._client.loop_misc()
        if not self._closed.done():
            self._schedule_misc()

    def _on_readable(self) -> None:
        sock = self._sock
        client = self._client
        if sock is None:
            return
        sock.fill()
        while sock.has_data and self._owns_socket():
            if client.loop_read() != MQTTErrorCode.MQTT_ERR_SUCCESS:
                break
        if self._owns_socket() and client.want_write():
            client.loop_write()

    def _owns_socket(self) -> bool:
        """Whether paho still uses our socket (it drops it when the connection ends)."""
        return self._sock is not None and self._client.socket() is self._sock

    def _on_socket_error(self, exc: BaseException) -> None:
        self.set_closed(exc)
        self._client._sock_close()

    def set_closed(self, cause: BaseException | None) -> None:
        if self._misc is not None:
            self._misc.cancel()
        if not self._closed.done():
            self._closed.set_result(cause)
        for fut in self._acks.values():
            if not fut.done():
                fut.set_exception(NotConnectedError("connection lost while waiting for the broker"))
        self._acks.clear()

    def suback(self, mid: int, granted: list[int]) -> None:
        fut = self._acks.pop(mid, None)
        if fut is not None and not fut.done():
            fut.set_result(granted)

    def _ack(self, mid: int) -> None:
        """The deferred PUBACK of a held message; on this connection only (a later one's broker sends
        the message again, and its ids mean other messages)."""
        if not self._closed.done() and self._owns_socket():
            self._client.ack(mid, 1)

    # -- Connection API ------------------------------------------------------------------

    def publish(self, topic: str, payload: bytes, qos: int, retain: bool) -> None:
        sock = self._sock
        if qos or sock is None:
            info = self._client.publish(topic, payload, qos, retain)
            if qos:
                pending = self._unacked
                while pending and pending[0].is_published():
                    pending.popleft()
                pending.append(info)
            return
        head = self._topic_heads.get(topic)
        if head is None:
            encoded = topic.encode()
            head = len(encoded).to_bytes(2, "big") + encoded + (b"\x00" if self._v5 else b"")
            if len(self._topic_heads) > 4096:
                self._topic_heads.clear()
            self._topic_heads[topic] = head
        size = len(head) + len(payload)
        fixed = (b"\x31" if retain else b"\x30") + (
            size.to_bytes(1, "big") if size < 128 else _remaining_length(size))
        sock.write(fixed, head, payload)

    async def _await_ack(self, result: tuple[MQTTErrorCode, int | None]) -> list[int]:
        rc, mid = result
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS or mid is None:
            raise NotConnectedError(f"the broker connection is not usable ({paho.error_string(rc)})")
        fut: asyncio.Future[list[int]] = self._loop.create_future()
        self._acks[mid] = fut
        async with asyncio.timeout(_SUBACK_TIMEOUT):
            return await fut

    async def subscribe(self, filters: Sequence[tuple[str, int]]) -> list[int]:
        return await self._await_ack(self._client.subscribe(list(filters)))

    async def unsubscribe(self, filters: Sequence[str]) -> None:
        await self._await_ack(self._client.unsubscribe(list(filters)))

    @property
    def write_buffer_size(self) -> int:
        return self._sock.write_buffer_size if self._sock is not None else 0

    async def drain(self) -> None:
        if self._sock is not None:
            await self._sock.drain()

    async def wait_closed(self) -> BaseException | None:
        return await asyncio.shield(self._closed)

    def unacknowledged(self) -> int:
        pending = self._unacked
        while pending and pending[0].is_published():
            pending.popleft()
        return sum(1 for info in pending if not info.is_published())

    @property
    def closed(self) -> bool:
        return self._closed.done()

    async def disconnect(self) -> None:
        if self._closed.done():
            return
        self._client.disconnect()
        self.set_closed(None)

    def abort(self) -> None:
        sock = self._sock
        if sock is not None and not self._closed.done():
            sock._wbuf.clear()
            with contextlib.suppress(OSError):
                sock._sock.shutdown(socket.SHUT_RDWR)
            self.set_closed(ConnectionAbortedError("aborted"))
            self._client._sock_close()


class PahoTransport(Transport):
    """MQTT 3.1.1 or 5 through paho-mqtt; the choice for brokers the fast transport cannot use."""

    @property
    def name(self) -> str:
        return "paho"

    def __init__(self) -> None:
        self._client: _Client | None = None
        self._client_key: tuple[Any, ...] | None = None
        self._conn: _PahoConnection | None = None

    def _make_client(self, options: ConnectOptions) -> _Client:
        url = options.url
        v5 = options.protocol == "5"
        client = _Client(
            CallbackAPIVersion.VERSION2,
            client_id=options.client_id,
            clean_session=None if v5 else options.clean_start,
            protocol=paho.MQTTv5 if v5 else paho.MQTTv311,
            transport=url.transport,
            reconnect_on_failure=False,
            manual_ack=True,  # see bind(): a held QoS 1 message is acknowledged when its holders let go
        )
        client.suppress_exceptions = True
        client.connect_timeout = options.connect_timeout
        client.max_inflight_messages_set(1000)
        client.max_queued_messages_set(0)
        if url.transport == "websockets":
            client.ws_set_options(path=url.path)
        if url.username is not None:
            client.username_pw_set(url.username, url.password)
        if url.tls:
            tls = options.tls
            if tls is not None:
                client.tls_set(
                    ca_certs=str(tls.ca) if tls.ca else None,
                    certfile=str(tls.cert) if tls.cert else None,
                    keyfile=str(tls.key) if tls.key else None,
                )
                client.tls_insecure_set(tls.insecure)
            else:
                client.tls_set()
        return client

    async def connect(self, options: ConnectOptions, on_message: MessageHandler) -> Connection:
        loop = asyncio.get_running_loop()
        key = (options.url, options.client_id, options.protocol, options.tls, options.clean_start)
        if self._client is None or self._client_key != key:
            self._client = self._make_client(options)
            self._client_key = key
        client = self._client
        if client.socket() is not None:  # a previous session's socket, still with its own callbacks
            client._sock_close()
        conn = _PahoConnection(client, loop)
        self._conn = conn
        conn.bind(on_message)
        will = options.will
        if will is not None:
            client.will_set(will.topic, will.payload, will.qos, will.retain)
        else:
            client.will_clear()
        url = options.url
        kwargs: dict[str, Any] = {}
        if options.protocol == "5":
            kwargs["clean_start"] = options.clean_start
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.ReceiveMaximum = options.receive_maximum
            if not options.clean_start:
                props.SessionExpiryInterval = options.session_expiry
            kwargs["properties"] = props
        port = url.v5_port if options.protocol == "5" and url.v5_port is not None else url.port
        connecting = asyncio.ensure_future(asyncio.to_thread(client.connect, url.host, port, options.keepalive,
                                                             **kwargs))
        try:
            rc = await asyncio.shield(connecting)
        except (OSError, ssl.SSLError, ValueError) as exc:
            raise ConnectError(f"cannot connect to {url}: {exc}") from exc
        except asyncio.CancelledError:
            # the thread cannot be interrupted: let it finish (bounded by paho's connect_timeout) and
            # close the socket it may have opened, or it stays connected to the broker, unowned
            await asyncio.wait({connecting})
            if not connecting.cancelled() and connecting.exception() is None:
                client._sock_close()
            raise
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise ConnectError(f"cannot connect to {url}: {paho.error_string(rc)}")
        conn.start()
        try:
            async with asyncio.timeout(options.connect_timeout):
                await conn.connack
        except TimeoutError:
            conn.abort()
            raise ConnectError(f"no CONNACK from {url} within {options.connect_timeout} s") from None
        except BaseException:  # refused, or cancelled by the caller: never leave the socket open
            conn.abort()
            raise
        return conn
