"""Running a program's main coroutine so that SIGTERM stops it as Ctrl+C does: cleanly.

A container stop, systemd and ``kill`` send SIGTERM; without a handler Python dies at once, so
an agent's context managers never run (no offline state published, statuses left behind, QoS 1
publishes not flushed). With this, SIGTERM cancels the main task and every ``async with`` unwinds.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["run_until_signal"]

T = TypeVar("T")


async def run_until_signal(coro: Coroutine[Any, Any, T]) -> T | None:
    """Await ``coro``; SIGTERM cancels it like Ctrl+C does. ``None`` when it was stopped that way."""
    task = asyncio.ensure_future(coro)
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError, RuntimeError):  # no signal handlers here (Windows, a thread)
        loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        return await task
    except asyncio.CancelledError:
        if not task.cancelled():
            raise
        return None
    finally:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.remove_signal_handler(signal.SIGTERM)
