"""Opening a device that may not be there yet (a USB adapter unplugged, a bus not turned on).

The task keeps running and tries again with a growing delay; meanwhile the reason is its
:attr:`~edge.task.Task.problem`, which the agent shows as the running task's ``error``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from edge.task import Task

__all__ = ["BACKOFF_MAX", "BACKOFF_MIN", "open_device"]

T = TypeVar("T")
BACKOFF_MIN = 0.5
BACKOFF_MAX = 30.0


async def open_device(task: Task, open_: Callable[[], Awaitable[T]], what: str, *,
                      errors: tuple[type[Exception], ...] = (OSError,)) -> T:
    """``await open_()`` until it succeeds; while it fails, ``task.problem`` says why and when it tries again."""
    delay = BACKOFF_MIN
    while True:
        try:
            result = await open_()
        except errors as exc:
            task.problem = f"cannot open {what}: {exc} (trying again in {delay:g} s)"
            task.warn(f"open {what}", "%s", task.problem)
            await asyncio.sleep(delay)
            delay = min(delay * 2, BACKOFF_MAX)
            continue
        task.problem = None
        return result
