"""One subscription of a bus: a topic filter and where its messages go.

Messages go either into a **bounded** queue read with ``async for`` (drop-oldest by default,
every drop counted) or, on the hot path, straight to a callback that must not block.

A subscription opened with ``hold=True`` may keep the broker waiting: its QoS 1 messages arrive
as :class:`~edge.bus._message.HeldMessage`, whose PUBACK goes only once the subscription (and
every other holding one the message reached) called ``ack()``. A callback acks when it is done
with the message (at once, or later: a task input's lane acks when the task takes it); a queue
acks when the reader takes the message, and a full queue keeps held messages instead of
dropping them (it grows by at most the connection's in-flight window, the broker sending no
more meanwhile) while QoS 0 ones follow ``overflow``, or are dropped themselves when the oldest
queued message is a held one.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable, Generator
from types import TracebackType
from typing import Any, Protocol

from edge.bus._message import Message, Overflow
from edge.errors import ConfigError
from edge.topics import matches, validate_filter

__all__ = ["Subscription", "SubscriptionOwner"]


class SubscriptionOwner(Protocol):
    """What a subscription asks of the bus it belongs to (:class:`~edge.bus.Bus`, or
    :class:`edge.testing.MemoryBus`): this module needs no bus, so the two do not import each other."""

    async def _add_subscription(self, sub: Subscription, /) -> None: ...

    async def _remove_subscription(self, sub: Subscription, /) -> None: ...

    def _log_callback_error(self, sub: Subscription, message: Message, /) -> None: ...


def _compile(pattern: str) -> Callable[[str], bool]:
    """A matcher for one filter; exact filters compare strings, others match by levels."""
    if "+" not in pattern and "#" not in pattern:
        return pattern.__eq__
    if pattern.endswith("/#") and "+" not in pattern:
        prefix = pattern[:-1]
        exact = pattern[:-2]
        return lambda topic: topic.startswith(prefix) or topic == exact
    return lambda topic: matches(pattern, topic)


class Subscription:
    """A topic filter on a bus. Use as ``async with bus.subscribe(f) as sub`` or ``sub = await bus.subscribe(f)``."""

    def __init__(self, bus: SubscriptionOwner, pattern: str, *, qos: int = 0, maxsize: int = 1000,
                 overflow: Overflow = Overflow.DROP_OLDEST,
                 callback: Callable[[Message], Any] | None = None, hold: bool = False) -> None:
        self.filter = validate_filter(pattern)
        if qos not in (0, 1, 2):
            raise ConfigError(f"qos must be 0, 1 or 2, not {qos!r}", field="qos")
        if maxsize < 1:
            raise ConfigError(f"maxsize must be at least 1, not {maxsize!r}", field="maxsize")
        self.qos = qos
        self.maxsize = maxsize
        self.overflow = overflow
        self.callback = callback
        #: whether QoS 1 messages wait for this subscription's ack before the broker gets their PUBACK
        self.hold = hold
        #: Messages handed to this subscription, and how many its full queue dropped.
        self.received = 0
        self.dropped = 0
        #: Callback failures (each logged); the callback keeps being called.
        self.errors = 0
        self.matches: Callable[[str], bool] = _compile(self.filter[len("$share/"):].split("/", 1)[1]
                                                       if self.filter.startswith("$share/") else self.filter)
        self._bus = bus
        self._queue: deque[Message] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._active = False
        self._closed = False

    def __repr__(self) -> str:
        return f"<Subscription {self.filter!r} qos={self.qos} queued={len(self._queue)} dropped={self.dropped}>"

    # -- opening and closing ------------------------------------------------------------
    async def open(self) -> Subscription:
        if not self._active:
            self._active = True
            await self._bus._add_subscription(self)
        return self

    def __await__(self) -> Generator[Any, None, Subscription]:
        return self.open().__await__()

    async def __aenter__(self) -> Subscription:
        return await self.open()

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Unsubscribe; iteration ends once the queue is empty."""
        if self._closed:
            return
        self._closed = True
        self._wake()
        if self._active:
            self._active = False
            await self._bus._remove_subscription(self)

    # -- delivery (called by the bus) ------------------------------------------------------
    def deliver(self, message: Message) -> None:
        self.received += 1
        if self.callback is not None:
            try:
                self.callback(message)
            except Exception:
                self.errors += 1
                self._bus._log_callback_error(self, message)
            return
        queue = self._queue
        if len(queue) >= self.maxsize:
            hold = self.hold
            if not (hold and message.held):  # a held message waits past maxsize: the broker is stopped
                self.dropped += 1
                # a QoS 0 one behind held ones goes itself: they are older and must not be lost
                if self.overflow is Overflow.DROP_NEWEST or (hold and queue[0].held):
                    return
                queue.popleft()
        queue.append(message)
        if self._waiter is not None:
            self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    # -- reading ----------------------------------------------------------------------------
    @property
    def queued(self) -> int:
        return len(self._queue)

    def get_nowait(self) -> Message:
        """The oldest queued message; :class:`asyncio.QueueEmpty` when there is none."""
        if not self._queue:
            raise asyncio.QueueEmpty
        message = self._queue.popleft()
        if self.hold:
            message.ack()
        return message

    async def get(self) -> Message:
        """Wait for the next message; :class:`StopAsyncIteration` once closed and drained."""
        while not self._queue:
            if self._closed:
                raise StopAsyncIteration
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        message = self._queue.popleft()
        if self.hold:
            message.ack()
        return message

    def __aiter__(self) -> AsyncIterator[Message]:
        return self

    async def __anext__(self) -> Message:
        return await self.get()
