"""The inputs of one task instance: a bounded queue per port that remembers arrival order.

Messages of all inputs arrive on one connection in one order. Each port keeps its own bounded
queue (oldest dropped first when full, counted per port), and every message carries its
arrival number, so a task can read one port (``get(port)``) or all of them in the order they
arrived (``get_any()``) from the same queues.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import Iterable

from edge.bus import Message

__all__ = ["Inbox"]


class Inbox:
    def __init__(self, ports: Iterable[str], *, maxsize: int) -> None:
        self._queues: dict[str, deque[tuple[int, Message]]] = {port: deque() for port in ports}
        self.dropped = dict.fromkeys(self._queues, 0)
        self._maxsize = max(maxsize, 1)
        self._counter = itertools.count()
        self._waiter: asyncio.Future[None] | None = None
        self._only = next(iter(self._queues.items())) if len(self._queues) == 1 else None

    def push(self, port: str, message: Message) -> None:
        queue = self._queues[port]
        if len(queue) >= self._maxsize:
            queue.popleft()
            self.dropped[port] += 1
        queue.append((next(self._counter), message))
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    @property
    def queued(self) -> int:
        """Messages waiting, on all ports."""
        return sum(map(len, self._queues.values()))

    async def wait(self) -> None:
        """Until the next push. Look at the queues first: a push while nobody waits wakes nobody later."""
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    async def get(self, port: str) -> Message:
        queue = self._queues[port]
        while not queue:
            await self.wait()
        return queue.popleft()[1]

    def pop_any(self) -> tuple[str, Message] | None:
        """The earliest arrival among all ports, or None if all are empty (readers drain batches with it)."""
        if self._only is not None:  # one input, the common case: no need to compare arrivals
            queue = self._only[1]
            return (self._only[0], queue.popleft()[1]) if queue else None
        first: tuple[int, str] | None = None
        for port, queue in self._queues.items():
            if queue and (first is None or queue[0][0] < first[0]):
                first = (queue[0][0], port)
        return None if first is None else (first[1], self._queues[first[1]].popleft()[1])

    async def get_any(self) -> tuple[str, Message]:
        """The earliest arrival among all ports."""
        while (item := self.pop_any()) is None:
            await self.wait()
        return item
