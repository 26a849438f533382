"""The ``synchronized`` option of tasks with several inputs: frames handled in timestamp order.

MQTT keeps the order of one topic, not across topics, so two inputs fed by one producer can
arrive interleaved differently from how they were made. :func:`handle_inputs` hands every input
frame to a task's handler either in arrival order, or (``synchronized``) merged in timestamp
order with a bounded wait. The merge is :mod:`edge.merge`, the one ``@fn_task`` uses too (its
rule in ``docs/tasks.md``): ``timeout_ms`` bounds how long a quiet input holds the others back, an input's buffer holds
``queue_size`` frames, and ties in timestamp go by ``priority`` (lower first), then arrival order.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Annotated

from pydantic import Field

from edge.frames import Frame
from edge.merge import Merger, Pending, merge
from edge.task import Task

__all__ = ["Merger", "SyncFlag", "SyncTimeoutMs", "handle_inputs"]

#: The config fields of a task whose inputs can be handled in timestamp order (with their
#: defaults, ``synchronized: SyncFlag = False`` and ``sync_timeout_ms: SyncTimeoutMs = 500``).
SyncFlag = Annotated[bool, Field(description="handle frames in timestamp order across inputs (see docs/tasks.md)")]
SyncTimeoutMs = Annotated[int, Field(ge=1, le=60_000,
                                     description="with synchronized: the longest a frame waits for the other inputs")]

Handler = Callable[[str, Frame], Awaitable[None]]


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
    merger: Merger[Frame] = Merger(connected, timeout=timeout_ms / 1000, maxlen=context.queue_size,
                                   priority=priority)

    async def frames() -> AsyncIterator[tuple[str, int, Frame]]:
        async for port, frame in task.receive_any():
            yield port, frame.ts, frame

    async def handle(pending: Pending[Frame]) -> None:
        await handler(pending.port, pending.item)

    await merge(frames(), merger, handle, name=context.instance_id)
