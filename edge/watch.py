"""Say that you look at streams, so agents that hand them over in-process also publish them.

An agent sends a stream between two of its own tasks without the broker (:mod:`edge.local`). Whoever
outside reads such a stream (the panel's inspector, debug sidebar and node status lines,
``edge sub``) holds a :class:`Watching` lease on its filter while it reads::

    async with Watching(bus, topics, pattern), bus.subscribe(pattern) as sub:
        ...

It publishes :class:`~edge.protocol.Watch` on ``{root}/watch`` at once and every ``lease / 3``
seconds; when it ends, the agents go back to in-process only ``lease`` seconds after the last one.
"""

from __future__ import annotations

import asyncio
import logging

from edge._cancel import cancel_and_wait
from edge.bus import Bus
from edge.errors import EdgeError
from edge.frames import encode_value
from edge.protocol import Watch
from edge.topics import Topics, validate_filter

__all__ = ["LEASE", "Watching"]

log = logging.getLogger("edge.watch")

LEASE = 15.0  # s a watch message buys; sent again every third of it


class Watching:
    """A watch lease on ``pattern`` (a topic filter), renewed until closed: an async context manager,
    or :meth:`start` and :meth:`aclose` for an owner that is not a block (a page's inspector)."""

    def __init__(self, bus: Bus, topics: Topics, pattern: str, *, lease: float = LEASE) -> None:
        self.bus, self.topics, self.pattern, self.lease = bus, topics, pattern, lease
        self._payload = encode_value(Watch(filter=validate_filter(pattern), lease=lease).dump())
        self._renewing: asyncio.Task[None] | None = None

    def start(self) -> Watching:
        """Publish the lease now and every ``lease / 3`` s (idempotent)."""
        if self._renewing is None:
            self._renewing = asyncio.get_running_loop().create_task(self._renew(), name=f"watch {self.pattern}")
        return self

    async def _renew(self) -> None:
        while True:
            if self.bus.is_connected:
                try:
                    await self.bus.publish(self.topics.watch, self._payload, qos=0)
                except EdgeError as exc:  # the next renewal tries again
                    log.debug("could not renew the watch on %s: %s", self.pattern, exc)
            await asyncio.sleep(self.lease / 3)

    async def aclose(self) -> None:
        """Stop renewing (idempotent); the agents stop publishing ``lease`` s after the last renewal."""
        renewing, self._renewing = self._renewing, None
        if renewing is not None:
            await cancel_and_wait(renewing)

    async def __aenter__(self) -> Watching:
        return self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

