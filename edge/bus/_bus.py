"""The bus: the one MQTT connection class every component uses.

A :class:`Bus` is an async context manager. Entering starts its connection loop in a task
group (and by default waits for the first CONNACK); leaving sends DISCONNECT and cancels the
loop. The loop reconnects with exponential backoff, re-subscribes every open subscription,
flushes the bounded offline buffer of QoS>0 publishes and runs the ``on_connect`` hooks (this
is where agents re-publish their births). Incoming messages are routed to the subscriptions
whose filter matches; anything matching none of them is dropped and counted.

With ``clean_start=False`` the broker keeps the session (subscriptions, and the QoS 1 messages
they take while the bus is away) for ``session_expiry`` seconds after a connection ends, across
restarts of the process too. Its queued messages arrive right after the connect, possibly before
whoever wants them has subscribed again: QoS 1/2 messages matching no subscription are held for
:data:`HOLD_AFTER_CONNECT` seconds (bounded) and handed to a subscription opened meanwhile. What
nobody claims is dropped and counted, and its topic unsubscribed at the broker (a subscription of
an earlier run that this one no longer has). :meth:`Bus.keep_session` makes closing
subscriptions local, so a process that stops leaves its subscriptions queuing for its next run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Literal

from edge._cancel import cancel_and_wait
from edge.bus._choose import make_transport
from edge.bus._filters import FilterSet, Plan
from edge.bus._hooks import Hooks
from edge.bus._message import BusStats, HeldMessage, Message, Overflow, Will
from edge.bus._subscription import Subscription
from edge.bus._transport import RECEIVE_MAXIMUM, Connection, ConnectOptions, TLSOptions
from edge.errors import BusError, ConfigError, ConnectError, EdgeError
from edge.settings import BrokerURL, Settings, parse_broker_url
from edge.topics import matches, validate_topic

__all__ = ["Bus"]

log = logging.getLogger("edge.bus")

ConnectHook = Callable[["Bus"], Awaitable[None]]
# topics whose matching subscriptions are kept: a controller of 10,000 agents reads 20,000-30,000 topics
# (their states, catalogs, metrics); at 4,096 the cache was cleared every few hundred messages and each
# message matched every subscription again (6.7 us -> 0.7 us a message); ~150 B an entry
_ROUTE_CACHE_SIZE = 65_536
_TOPIC_CACHE_SIZE = 4096
_SUBSCRIBE_BATCH = 64
# A packet carries its topic (up to 64 KiB) and properties besides the payload.
_PACKET_HEADROOM = 128 * 1024
#: s after a persistent session's connect during which unclaimed QoS 1/2 messages are held
HOLD_AFTER_CONNECT = 10.0
_HOLD_MAX_MESSAGES = 10_000
_HOLD_MAX_BYTES = 32 * 1024 * 1024
_STALE_TOPICS_KEPT = 4096


class Bus(Hooks["Bus"]):
    """A connection to an MQTT broker that survives the broker going away.

    ::

        async with Bus("mqtt://127.0.0.1:1883") as bus:
            async with bus.subscribe("sensors/#") as sub:
                await bus.publish("sensors/a", b"1")
                message = await sub.get()
    """

    def __init__(
        self,
        url: str | BrokerURL,
        *,
        client_id: str | None = None,
        will: Will | Callable[[], Will] | None = None,
        keepalive: int = 15,
        clean_start: bool = True,
        session_expiry: int = 0xFFFFFFFF,
        protocol: Literal["3.1.1", "5"] | None = None,
        tls: TLSOptions | None = None,
        transport: Literal["auto", "mqtt5", "paho"] = "auto",
        max_payload: int = 16 * 1024 * 1024,
        queue_size: int = 1000,
        offline_buffer: int = 1000,
        wait_connected: bool = True,
        connect_timeout: float = 10.0,
        reconnect_delay: tuple[float, float] = (0.1, 10.0),
        flush_timeout: float = 5.0,
        receive_maximum: int = RECEIVE_MAXIMUM,
    ) -> None:
        self.url = parse_broker_url(url) if isinstance(url, str) else url
        self.client_id = client_id or f"edge-{uuid.uuid4().hex[:12]}"
        if keepalive < 1:
            raise ConfigError(f"keepalive must be at least 1 s, not {keepalive!r}", field="keepalive")
        if protocol not in (None, "3.1.1", "5"):
            raise ConfigError(f"protocol must be '3.1.1' or '5', not {protocol!r}", field="protocol")
        self._will = will
        self._keepalive = keepalive
        self._clean_start = clean_start
        if not 0 <= session_expiry <= 0xFFFFFFFF:
            raise ConfigError(f"session_expiry must be 0 to {0xFFFFFFFF} s, not {session_expiry!r}",
                              field="session_expiry")
        self._session_expiry = session_expiry
        if not 1 <= receive_maximum <= 65535:
            raise ConfigError(f"receive_maximum must be 1 to 65535, not {receive_maximum!r}",
                              field="receive_maximum")
        self.receive_maximum = receive_maximum
        self._protocol = protocol
        self._tls = tls
        self._transport = make_transport(transport, protocol, self.url)
        self.max_payload = max_payload
        self.queue_size = queue_size
        self._wait_connected = wait_connected
        self._connect_timeout = connect_timeout
        self._flush_timeout = flush_timeout
        self._delay_min, self._delay_max = reconnect_delay
        self.stats = BusStats()
        #: Number of the current connection (0 before the first); it changes before the bus
        #: resubscribes, so a message can be told to belong to this session or an earlier one.
        self.session = 0

        self._subs: list[Subscription] = []
        self._holding = 0  # open subscriptions with hold=True: QoS 1 messages to them may wait for an ack
        self._filters = FilterSet()
        self._routes: dict[str, list[Subscription]] = {}
        # covered filters being probed for retained messages -> live messages seen meanwhile
        self._probes: dict[str, set[tuple[str, bytes]]] = {}
        self._valid_topics: set[str] = set()
        # QoS>0 messages published while disconnected, per topic (so per task output), bounded
        self._offline: dict[str, deque[tuple[bytes, int, bool]]] = {}
        self._offline_limit = max(offline_buffer, 1)
        self._offline_dropped: dict[str, int] = {}
        self._hooks: list[ConnectHook] = []
        self._conn: Connection | None = None
        self._connected = asyncio.Event()
        self._first: asyncio.Future[None] | None = None
        self._runner: asyncio.Task[None] | None = None
        self._entered = False
        # a persistent session's messages that arrived before anyone subscribed again (see module doc)
        self._held: deque[Message] = deque()
        self._held_bytes = 0
        self._hold_until = 0.0  # loop time; inf while connecting
        self._hold_timer: asyncio.TimerHandle | None = None
        self._stale: set[str] = set()  # topics unsubscribed as an earlier run's, this session
        self._keep_session = False
        self._chores: set[asyncio.Task[None]] = set()

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: object) -> Bus:
        """A bus for the broker, credentials, TLS and limits the settings name."""
        tls = None
        if settings.tls_ca or settings.tls_cert or settings.tls_insecure:
            tls = TLSOptions(ca=settings.tls_ca, cert=settings.tls_cert, key=settings.tls_key,
                             insecure=settings.tls_insecure)
        options: dict[str, object] = {
            "keepalive": settings.keepalive,
            "protocol": settings.mqtt_version,
            "tls": tls,
            "transport": settings.transport,
            "max_payload": settings.max_payload,
            "queue_size": settings.queue_size,
            "offline_buffer": settings.offline_buffer,
            "receive_maximum": settings.receive_maximum,
        }
        options.update(kwargs)
        return cls(settings.broker_url, **options)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        state = "connected" if self.is_connected else "disconnected"
        return f"<Bus {self.url} {self.client_id} {state}>"

    # -- lifecycle ---------------------------------------------------------------------------
    async def __aenter__(self) -> Bus:
        if self._entered:
            raise BusError("a Bus cannot be entered twice")
        self._entered = True
        loop = asyncio.get_running_loop()
        self._first = loop.create_future()
        self._runner = loop.create_task(self._run(), name=f"edge-bus-{self.client_id}")
        if self._wait_connected:
            try:
                async with asyncio.timeout(self._connect_timeout):
                    await asyncio.shield(self._first)
            except BaseException as exc:
                await self._stop()
                if isinstance(exc, TimeoutError):
                    raise ConnectError(
                        f"could not connect to {self.url} within {self._connect_timeout} s"
                        + (f": {self.stats.last_error}" if self.stats.last_error else "")
                    ) from None
                raise
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self._stop()

    async def _stop(self) -> None:
        if self._hold_timer is not None:
            self._hold_timer.cancel()
        for chore in list(self._chores):
            await cancel_and_wait(chore)
        conn = self._conn
        if conn is not None:
            # QoS 1 publishes still queued behind the broker's in-flight limit (or not yet
            # acknowledged) would be lost with the connection: give them a bounded moment
            if not conn.closed and conn.unacknowledged() and not await conn.flush(self._flush_timeout):
                log.warning("%s: leaving with %d QoS 1 publishes the broker has not acknowledged",
                            self.client_id, conn.unacknowledged())
            with contextlib.suppress(EdgeError, OSError):
                await conn.disconnect()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await cancel_and_wait(runner)
        for sub in list(self._subs):
            sub._closed = True
            sub._wake()

    @property
    def transport(self) -> str:
        """The MQTT client in use: ``mqtt5`` or ``paho`` (``auto`` until ``auto`` has chosen)."""
        return self._transport.name

    def _options(self) -> ConnectOptions:
        will = self._will() if callable(self._will) else self._will
        return ConnectOptions(url=self.url, client_id=self.client_id, clean_start=self._clean_start,
                              session_expiry=self._session_expiry, keepalive=self._keepalive, will=will,
                              tls=self._tls, protocol=self._protocol or "3.1.1",
                              connect_timeout=self._connect_timeout,
                              max_packet_size=self.max_payload + _PACKET_HEADROOM,
                              receive_maximum=self.receive_maximum)

    async def _run(self) -> None:
        delay = self._delay_min
        while True:
            self._hold_until = float("inf")  # a kept session's queued messages may come with the CONNACK
            try:
                conn = await self._transport.connect(self._options(), self._on_message)
            except ConnectError as exc:
                self.stats.connect_failures += 1
                self.stats.last_error = str(exc)
                # a caller waiting in __aenter__ gets the last error in its ConnectError: a one-shot
                # command then says it once; a bus that runs on (agents, the panel) warns at each try
                waited = self._first is not None and not self._first.done() and self._wait_connected
                log.log(logging.INFO if waited else logging.WARNING, "%s: %s; retrying in %.1f s",
                        self.client_id, exc, delay)
                if exc.reason is not None and self._first is not None and not self._first.done():
                    self._first.set_exception(exc)  # refused (bad credentials...): tell the caller now
            except Exception:  # a bug, not a network fault: log it and keep the bus alive
                self.stats.connect_failures += 1
                log.exception("%s: unexpected error while connecting to %s", self.client_id, self.url)
            else:
                delay = self._delay_min
                await self._serve(conn)
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, self._delay_max)

    async def _serve(self, conn: Connection) -> None:
        self._conn = conn
        self.session += 1  # before resubscribing: retained messages of this session carry it
        try:
            # until connected, a new subscription only joins the filter set (_apply): those added while
            # these SUBSCRIBEs wait for their acks are sent in the next round, not left for the next connect
            sent: set[tuple[str, int]] = set()
            while filters := sorted(set(self._filters.broker.items()) - sent):
                for i in range(0, len(filters), _SUBSCRIBE_BATCH):
                    await conn.subscribe(filters[i : i + _SUBSCRIBE_BATCH])
                sent.update(filters)
            offline, self._offline = self._offline, {}
            for topic, queue in offline.items():
                for payload, qos, retain in queue:
                    try:
                        conn.publish(topic, payload, qos, retain)
                    except BusError as exc:  # too big for this broker: drop that one, not the connection
                        self._count_offline_drop(topic)
                        log.warning("%s: dropped a buffered message to %r: %s", self.client_id, topic, exc)
            self.stats.connects += 1
            self._connected.set()
            log.info("%s connected to %s", self.client_id, self.url)
            if self._first is not None and not self._first.done():
                self._first.set_result(None)
            for hook in self._hooks:
                try:
                    await hook(self)
                except EdgeError as exc:
                    log.error("%s: on_connect hook %r failed: %s", self.client_id, hook, exc)
            self._start_hold()
            cause = await conn.wait_closed()
        except (EdgeError, OSError, TimeoutError) as exc:
            cause = exc
            conn.abort()
        finally:
            self._conn = None
            self._connected.clear()
        if cause is not None:
            self.stats.connection_losses += 1
            self.stats.last_error = str(cause)
            log.warning("%s lost its connection to %s: %s", self.client_id, self.url, cause)

    # -- publishing -------------------------------------------------------------------------------
    def _check(self, topic: str, payload: bytes, qos: int) -> None:
        if topic not in self._valid_topics:
            validate_topic(topic)
            if len(self._valid_topics) >= _TOPIC_CACHE_SIZE:
                self._valid_topics.clear()
            self._valid_topics.add(topic)
        if len(payload) > self.max_payload:
            raise BusError(f"payload of {len(payload)} bytes for {topic!r} exceeds max_payload {self.max_payload}")
        if qos not in (0, 1, 2):
            raise ConfigError(f"qos must be 0, 1 or 2, not {qos!r}", field="qos")

    def publish_nowait(self, topic: str, payload: bytes, *, qos: int = 0, retain: bool = False) -> None:
        """Queue a message without waiting. While disconnected, QoS 0 is dropped and counted and
        QoS 1/2 waits in a buffer of ``offline_buffer`` messages per topic (oldest dropped first,
        counted; a retained message replaces what waits for its topic) until the next connect."""
        self._check(topic, payload, qos)
        conn = self._conn
        if conn is not None and self._connected.is_set():
            conn.publish(topic, payload, qos, retain)
            self.stats.published += 1
        elif qos == 0:
            self._count_offline_drop(topic)
        else:
            queue = self._offline.get(topic)
            if queue is None:
                queue = self._offline[topic] = deque()
            if retain:
                queue.clear()  # a retained message is state: only the latest matters
            elif len(queue) >= self._offline_limit:
                queue.popleft()
                self._count_offline_drop(topic)
            queue.append((bytes(payload), qos, retain))

    def _count_offline_drop(self, topic: str) -> None:
        self.stats.dropped_offline += 1
        self._offline_dropped[topic] = self._offline_dropped.get(topic, 0) + 1

    def dropped_offline(self, topic: str) -> int:
        """Messages to ``topic`` lost while disconnected: QoS 0 ones, and QoS 1/2 ones pushed out
        of the full offline buffer (``offline_buffer`` per topic, oldest first)."""
        return self._offline_dropped.get(topic, 0)

    async def publish(self, topic: str, payload: bytes, *, qos: int = 0, retain: bool = False) -> None:
        """Publish; waits only while the socket's write buffer is over its high-water mark."""
        self.publish_nowait(topic, payload, qos=qos, retain=retain)
        conn = self._conn
        if conn is not None and conn.write_buffer_size > 1024 * 1024:
            await conn.drain()

    # -- subscribing ------------------------------------------------------------------------------
    def subscribe(self, pattern: str, *, qos: int = 0, maxsize: int | None = None,
                  overflow: Overflow = Overflow.DROP_OLDEST,
                  callback: Callable[[Message], object] | None = None, hold: bool = False) -> Subscription:
        """A subscription to ``pattern``: ``async with bus.subscribe(...) as sub`` or ``await``.

        With ``callback`` every message is handed to it at once (it must not block); otherwise
        messages wait in a queue of ``maxsize`` (default: the bus's ``queue_size``). With ``hold``
        the PUBACK of each QoS 1 message waits for the subscription's ``message.ack()`` (the queue
        calls it when the reader takes the message): see :class:`~edge.bus._message.HeldMessage`.
        """
        return Subscription(self, pattern, qos=qos, maxsize=maxsize or self.queue_size,
                            overflow=overflow, callback=callback, hold=hold)

    async def _add_subscription(self, sub: Subscription) -> None:
        self._subs.append(sub)
        self._holding += sub.hold
        self._routes.clear()
        if self._held:
            self._claim_held(sub)
        plan = self._filters.add(sub.filter, sub.qos)
        try:
            await self._apply(plan)
        except BusError:
            await self._remove_subscription(sub)
            raise

    async def _remove_subscription(self, sub: Subscription) -> None:
        if sub not in self._subs:
            return
        self._subs.remove(sub)
        self._holding -= sub.hold
        self._routes.clear()
        plan = self._filters.remove(sub.filter)
        if self._keep_session:
            return  # the broker keeps it for our next run
        with contextlib.suppress(EdgeError, TimeoutError):
            await self._apply(plan)

    def keep_session(self) -> None:
        """From now on, closing a subscription does not unsubscribe at the broker.

        For an owner that is stopping with a persistent session (``clean_start=False``): the
        broker keeps the subscriptions and queues their QoS 1 messages until the next run."""
        self._keep_session = True

    async def _apply(self, plan: Plan) -> None:
        """Send the broker a change of filters: new ones first, so no message falls in between."""
        conn = self._conn
        if conn is None or not self._connected.is_set():
            return  # the next connect subscribes the current set
        if plan.subscribe:
            granted = await conn.subscribe(plan.subscribe)
            refused = [f for (f, _), code in zip(plan.subscribe, granted, strict=False) if code >= 0x80]
            if refused:
                raise BusError(f"the broker refused the subscription to {', '.join(map(repr, refused))}")
        if plan.unsubscribe:
            await conn.unsubscribe(plan.unsubscribe)
        if plan.probe is not None:
            pattern = plan.probe[0]
            self._probes[pattern] = set()
            try:
                await conn.subscribe([plan.probe])
                await conn.unsubscribe([pattern])
            finally:
                del self._probes[pattern]

    def _on_message(self, topic: str, payload: bytes, qos: int, retain: bool) -> HeldMessage | None:
        self.stats.received += 1
        subs = self._routes.get(topic)
        if subs is None:
            subs = [s for s in self._subs if s.matches(topic)]
            if len(self._routes) >= _ROUTE_CACHE_SIZE:
                self._routes.clear()
            self._routes[topic] = subs
        if not subs:
            if qos and not self._clean_start:
                self._unclaimed(Message(topic, payload, qos, retain))
            else:
                self.stats.unmatched += 1
            return None
        if len(payload) > self.max_payload:
            self.stats.oversize += 1
            log.warning("%s: dropped %d-byte message on %r (max_payload %d)", self.client_id, len(payload),
                        topic, self.max_payload)
            return None
        if self._probes and not retain and self._is_probe_copy(topic, payload):
            return None
        if qos == 1 and self._holding:
            holders = sum(sub.hold for sub in subs)
            if holders:  # the transport offers it the PUBACK to send once every holder lets go
                held = HeldMessage(topic, payload, qos, retain, holders=holders)
                for sub in subs:
                    sub.deliver(held)
                return held
        message = Message(topic, payload, qos, retain)
        for sub in subs:
            sub.deliver(message)
        return None

    # -- a kept session's messages for subscriptions not opened yet ------------------------------
    def _unclaimed(self, message: Message) -> None:
        """A QoS 1/2 message of a persistent session that no subscription takes (see module doc)."""
        loop = asyncio.get_running_loop()
        size = len(message.payload)
        if (loop.time() < self._hold_until and len(self._held) < _HOLD_MAX_MESSAGES
                and self._held_bytes + size <= _HOLD_MAX_BYTES):
            self._held.append(message)
            self._held_bytes += size
            return
        self.stats.unmatched += 1
        if loop.time() >= self._hold_until:
            self._drop_stale([message.topic])

    def _claim_held(self, sub: Subscription) -> None:
        """Hand ``sub`` the held messages it matches, in the order they came (before any later one)."""
        kept: deque[Message] = deque()
        for message in self._held:
            if sub.matches(message.topic):
                self._held_bytes -= len(message.payload)
                sub.deliver(message)
            else:
                kept.append(message)
        self._held = kept

    def _start_hold(self) -> None:
        loop = asyncio.get_running_loop()
        self._hold_until = loop.time() + HOLD_AFTER_CONNECT
        self._stale.clear()
        if self._hold_timer is not None:
            self._hold_timer.cancel()
        self._hold_timer = loop.call_at(self._hold_until, self._end_hold)

    def _end_hold(self) -> None:
        self._hold_timer = None
        held, self._held, self._held_bytes = self._held, deque(), 0
        if not held:
            return
        self.stats.unmatched += len(held)
        log.info("%s: dropped %d queued messages of the kept session that no subscription took", self.client_id,
                 len(held))
        self._drop_stale(list(dict.fromkeys(m.topic for m in held)))

    def _drop_stale(self, topics: list[str]) -> None:
        """Unsubscribe topics an earlier run subscribed in the kept session (exact topic filters, such
        as task inputs); a wildcard of an earlier run stays until the session expires."""
        fresh = [t for t in topics if t not in self._stale]
        if not fresh or self._keep_session or len(self._stale) >= _STALE_TOPICS_KEPT:
            return
        self._stale.update(fresh)
        chore = asyncio.get_running_loop().create_task(self._unsubscribe_stale(fresh))
        self._chores.add(chore)
        chore.add_done_callback(self._chores.discard)

    async def _unsubscribe_stale(self, topics: list[str]) -> None:
        conn = self._conn
        # checked and sent in one step: a subscription opened after this goes to the broker after it
        stale = [t for t in topics if not any(s.matches(t) for s in self._subs)]
        if conn is None or not stale or not self._connected.is_set():
            return
        try:
            await conn.unsubscribe(stale)
        except (EdgeError, TimeoutError) as exc:
            log.info("%s: could not unsubscribe %d topics of an earlier run: %s", self.client_id, len(stale),
                     exc or type(exc).__name__)
        else:
            log.info("%s: unsubscribed %d topics an earlier run of the kept session subscribed", self.client_id,
                     len(stale))

    def _is_probe_copy(self, topic: str, payload: bytes) -> bool:
        """Whether a live message is the second copy a probed filter brought (brokers that send one
        copy per matching filter, as rumqttd does); frames carry seq and ts, so equal means copy."""
        for pattern, seen in self._probes.items():
            if matches(pattern, topic):
                key = (topic, bytes(payload))
                if key in seen:
                    seen.discard(key)
                    self.stats.duplicates += 1
                    return True
                seen.add(key)
        return False

    def _log_callback_error(self, sub: Subscription, message: Message) -> None:
        log.exception("%s: callback of subscription %r failed on %r", self.client_id, sub.filter, message.topic)

