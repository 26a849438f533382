"""Being connected, and hooks run on connecting: what :class:`edge.bus.Bus` and
:class:`edge.testing.MemoryBus` share."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

__all__ = ["Hooks"]

B = TypeVar("B")


class Hooks(Generic[B]):
    """A connection's state (``_connected``) and its on-connect hooks (``_hooks``), set up by the subclass."""

    _connected: asyncio.Event
    _hooks: list[Callable[[B], Awaitable[None]]]

    @property
    def is_connected(self) -> bool:
        return self._connected.is_set()

    async def wait_connected(self, timeout: float | None = None) -> None:
        """Wait until connected (:class:`TimeoutError` after ``timeout`` seconds)."""
        async with asyncio.timeout(timeout):
            await self._connected.wait()

    def on_connect(self, hook: Callable[[B], Awaitable[None]]) -> Callable[[B], Awaitable[None]]:
        """Run ``hook(bus)`` on every connect (a Bus: after each reconnect, once its subscriptions are
        restored; a MemoryBus: on entering)."""
        self._hooks.append(hook)
        return hook

    def remove_on_connect(self, hook: Callable[[B], Awaitable[None]]) -> None:
        """Stop running ``hook`` on connect (a component leaving a bus it shares with others)."""
        if hook in self._hooks:
            self._hooks.remove(hook)
