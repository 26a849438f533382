"""Frames of several inputs handled in timestamp order, with a bounded wait: the ``synchronized`` rule.

MQTT keeps the order of one topic, not across topics, so two inputs fed by one producer can
arrive interleaved differently from how they were made. A :class:`Merger` buffers what the
inputs bring and releases the oldest buffered item of all (smallest timestamp) as soon as

1. every input has an item buffered (nothing older can come, if each input's own timestamps
   increase), or
2. some buffered item has waited ``timeout`` seconds since it arrived (a quiet input holds the
   others back at most that long; older items go first, so order among the buffered ones is kept), or
3. some input's buffer is full (``maxlen`` items), or
4. it is older than an item already released (it came too late to be put in order).

Ties in timestamp go by ``priority`` (lower first), then arrival order. ``@fn_task``'s
``synchronized`` option and the built-in tasks' (``tasks.ordering``) both use it, through
:func:`merge`; the rule is documented for users in ``docs/tasks.md``.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
from collections import deque
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

from edge._groups import one_failure

__all__ = ["Merger", "Pending", "merge"]

T = TypeVar("T")


@dataclass(slots=True)
class Pending(Generic[T]):
    """An item waiting in the merger: what an input brought, with its timestamp."""

    key: tuple[int, int, int]  # ts, priority, arrival
    port: str
    item: T
    arrived: float
    done: bool = False

    @property
    def ts(self) -> int:
        return self.key[0]


def _key(pending: Pending[T]) -> tuple[int, int, int]:
    return pending.key


class Merger(Generic[T]):
    """Per-input buffers sorted by timestamp, released oldest first by the rule above."""

    def __init__(self, ports: Iterable[str], *, timeout: float, maxlen: int,
                 priority: Mapping[str, int] | None = None) -> None:
        self._buffers: dict[str, list[Pending[T]]] = {port: [] for port in ports}
        self._arrivals: deque[Pending[T]] = deque()  # arrival order, released ones skipped lazily
        self._timeout = timeout
        self._maxlen = max(1, maxlen)
        self._priority = dict(priority or {})
        self._order = itertools.count()
        self._released: int | None = None

    def full(self, port: str) -> bool:
        return len(self._buffers[port]) >= self._maxlen

    def push(self, port: str, ts: int, item: T, now: float) -> None:
        pending = Pending((ts, self._priority.get(port, 0), next(self._order)), port, item, now)
        bisect.insort(self._buffers[port], pending, key=_key)
        self._arrivals.append(pending)

    def deadline(self) -> float | None:
        """When the longest-waiting buffered item will have waited ``timeout`` (None: nothing buffered)."""
        while self._arrivals and self._arrivals[0].done:
            self._arrivals.popleft()
        return self._arrivals[0].arrived + self._timeout if self._arrivals else None

    def pop(self, now: float) -> Pending[T] | None:
        """The next item to release at ``now``, or None if the rule says wait."""
        heads = [buffer[0] for buffer in self._buffers.values() if buffer]
        if not heads:
            return None
        oldest = min(heads, key=_key)
        deadline = self.deadline()
        ready = (len(heads) == len(self._buffers)
                 or (deadline is not None and deadline <= now)
                 or any(len(buffer) >= self._maxlen for buffer in self._buffers.values())
                 or (self._released is not None and oldest.ts < self._released))
        if not ready:
            return None
        self._buffers[oldest.port].pop(0)
        oldest.done = True
        ts = oldest.ts
        self._released = ts if self._released is None else max(self._released, ts)
        return oldest


async def merge(items: AsyncIterable[tuple[str, int, T]], merger: Merger[T],
                handler: Callable[[Pending[T]], Awaitable[None]], *, name: str) -> None:
    """Push every ``(port, ts, item)`` of ``items`` into ``merger`` and call ``handler`` with each item it
    releases, one call at a time; runs until cancelled. A full buffer stops the reading until the
    merge loop has released from it (the inputs' bounded inboxes hold the rest meanwhile). ``name``
    (the instance id) names the two loops; the handler's own exception is what this raises."""
    changed = asyncio.Condition()
    loop = asyncio.get_running_loop()

    async def read() -> None:
        async for port, ts, item in items:
            async with changed:
                await changed.wait_for(lambda port=port: not merger.full(port))  # type: ignore[misc]
                merger.push(port, ts, item, loop.time())
                changed.notify_all()

    async def release() -> None:
        while True:
            async with changed:
                while (pending := merger.pop(loop.time())) is None:
                    try:
                        async with asyncio.timeout_at(merger.deadline()):
                            await changed.wait()
                    except TimeoutError:
                        pass
                changed.notify_all()
            await handler(pending)

    with one_failure():
        async with asyncio.TaskGroup() as group:
            group.create_task(read(), name=f"{name}.read")
            group.create_task(release(), name=f"{name}.merge")
