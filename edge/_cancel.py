"""Stopping a task we own without swallowing our own cancellation.

``task.cancel(); with suppress(CancelledError): await task`` is a trap: if the *caller* is
cancelled while it waits, the suppress eats that cancellation too, and the caller carries on
as if nothing happened (a loop that never ends, a shutdown that hangs). This helper swallows
only the child's cancellation.
"""

from __future__ import annotations

import asyncio

__all__ = ["cancel_and_wait"]


async def cancel_and_wait(task: asyncio.Task[object] | asyncio.Task[None]) -> None:
    current = asyncio.current_task()
    # compare, not test: in the cleanup after our own cancellation, cancelling() is already 1
    before = current.cancelling() if current is not None else 0
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        if current is not None and current.cancelling() > before:
            raise  # we were cancelled while waiting: pass it on
