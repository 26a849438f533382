"""A deadline that the coroutines of one task share: handlers set or clear it, a timer waits for it.

Tasks that send on their own time as well as on input (a throttle's held frame, a trigger's
second value, a join's window) run a reader and a timer side by side; the reader moves the
deadline, the timer wakes when it passes. Nothing is sent from a callback: the timer is a
coroutine of the task's own task group, so a send that fails fails the task's run as any other.
"""

from __future__ import annotations

import asyncio

__all__ = ["Deadline"]


class Deadline:
    """A point in the event loop's time (``loop.time()``), or none."""

    def __init__(self) -> None:
        self.at: float | None = None
        self._moved = asyncio.Event()

    @property
    def pending(self) -> bool:
        return self.at is not None

    def set(self, at: float) -> None:
        self.at = at
        self._moved.set()

    def after(self, seconds: float) -> None:
        """Set the deadline ``seconds`` from now."""
        self.set(asyncio.get_running_loop().time() + seconds)

    def clear(self) -> None:
        self.at = None
        self._moved.set()

    async def passed(self) -> None:
        """Wait until the deadline passes (however often it moves meanwhile), then clear it."""
        loop = asyncio.get_running_loop()
        while True:
            self._moved.clear()
            if self.at is not None and loop.time() >= self.at:
                self.at = None
                return
            try:
                async with asyncio.timeout_at(self.at):
                    await self._moved.wait()
            except TimeoutError:
                pass
