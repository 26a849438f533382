"""The ``synchronized`` option of tasks with several inputs: frames handled in timestamp order.

MQTT keeps the order of one topic, not across topics, so two inputs fed by one producer can
arrive interleaved differently from how they were made. :func:`handle_inputs` hands every input
frame to a task's handler either in arrival order, or (``synchronized``) merged in timestamp
order with a bounded wait. The merge rule is the one ``@fn_task`` uses (``docs/tasks.md``): the
oldest buffered frame of all is released as soon as

1. every connected input has a frame buffered (nothing older can come, if each input's own
   timestamps increase), or
2. some buffered frame has waited ``timeout_ms`` since it arrived (a quiet input holds the others
   back at most that long), or
3. some input's buffer is full (``queue_size`` frames), or
4. it is older than a frame already released (it came too late to be put in order).

Ties in timestamp go by ``priority`` (lower first), then arrival order.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Annotated

from pydantic import Field

from edge.frames import Frame
from edge.task import Task

__all__ = ["Merger", "SyncFlag", "SyncTimeoutMs", "handle_inputs"]

#: The config fields of a task whose inputs can be handled in timestamp order (with their
#: defaults, ``synchronized: SyncFlag = False`` and ``sync_timeout_ms: SyncTimeoutMs = 500``).
SyncFlag = Annotated[bool, Field(description="handle frames in timestamp order across inputs (see docs/tasks.md)")]
SyncTimeoutMs = Annotated[int, Field(ge=1, le=60_000,
                                     description="with synchronized: the longest a frame waits for the other inputs")]

Handler = Callable[[str, Frame], Awaitable[None]]


@dataclass(slots=True)
class _Pending:
    key: tuple[int, int, int]  # ts, priority, arrival
    port: str
    frame: Frame
    arrived: float
    done: bool = False


class Merger:
    """Per-input buffers sorted by timestamp, released oldest first by the rule above."""

    def __init__(self, ports: Iterable[str], *, timeout: float, maxlen: int,
                 priority: Mapping[str, int] | None = None) -> None:
        self._buffers: dict[str, list[_Pending]] = {port: [] for port in ports}
        self._arrivals: deque[_Pending] = deque()
        self._timeout = timeout
        self._maxlen = max(1, maxlen)
        self._priority = dict(priority or {})
        self._order = itertools.count()
        self._released: int | None = None

    def full(self, port: str) -> bool:
        return len(self._buffers[port]) >= self._maxlen

    def push(self, port: str, frame: Frame, now: float) -> None:
        item = _Pending((frame.ts, self._priority.get(port, 0), next(self._order)), port, frame, now)
        bisect.insort(self._buffers[port], item, key=lambda p: p.key)
        self._arrivals.append(item)

    def deadline(self) -> float | None:
        """When the longest-waiting buffered frame will have waited ``timeout`` (None: nothing buffered)."""
        while self._arrivals and self._arrivals[0].done:
            self._arrivals.popleft()
        return self._arrivals[0].arrived + self._timeout if self._arrivals else None

    def pop(self, now: float) -> tuple[str, Frame] | None:
        """The next frame to release at ``now``, or None if it must wait."""
        heads = [buffer[0] for buffer in self._buffers.values() if buffer]
        if not heads:
            return None
        oldest = min(heads, key=lambda p: p.key)
        deadline = self.deadline()
        ready = (len(heads) == len(self._buffers)
                 or (deadline is not None and deadline <= now)
                 or any(len(buffer) >= self._maxlen for buffer in self._buffers.values())
                 or (self._released is not None and oldest.frame.ts < self._released))
        if not ready:
            return None
        self._buffers[oldest.port].pop(0)
        oldest.done = True
        ts = oldest.frame.ts
        self._released = ts if self._released is None else max(self._released, ts)
        return oldest.port, oldest.frame


async def handle_inputs(task: Task, handler: Handler, *, synchronized: bool = False, timeout_ms: int = 500,
                        priority: Mapping[str, int] | None = None) -> None:
    """Call ``handler(port, frame)`` for every frame on the task's inputs, one call at a time; runs until
    cancelled. Arrival order, or timestamp order among the connected inputs when ``synchronized``."""
    context = task.context
    connected = [port for port in task.inputs if context is not None and port in context.sources]
    await task.open_inputs()
    if not synchronized or len(connected) < 2:
        async for port, frame in task.receive_any():
            await handler(port, frame)
        return
    assert context is not None
    merger = Merger(connected, timeout=timeout_ms / 1000, maxlen=context.queue_size, priority=priority)
    changed = asyncio.Condition()
    loop = asyncio.get_running_loop()

    async def read() -> None:
        async for port, frame in task.receive_any():
            async with changed:
                await changed.wait_for(lambda port=port: not merger.full(port))  # type: ignore[misc]
                merger.push(port, frame, loop.time())
                changed.notify_all()

    async def release() -> None:
        while True:
            async with changed:
                while (item := merger.pop(loop.time())) is None:
                    try:
                        async with asyncio.timeout_at(merger.deadline()):
                            await changed.wait()
                    except TimeoutError:
                        pass
                changed.notify_all()
            await handler(*item)

    try:
        async with asyncio.TaskGroup() as group:
            group.create_task(read(), name=f"{context.instance_id}.read")
            group.create_task(release(), name=f"{context.instance_id}.merge")
    except BaseExceptionGroup as failed:
        if len(failed.exceptions) == 1:  # the handler's own exception is what the runtime should show
            raise failed.exceptions[0] from None
        raise
