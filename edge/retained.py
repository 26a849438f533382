"""Fetching retained topics one by one, for what a wildcard subscription did not bring.

Brokers bound what one SUBSCRIBE brings back: rumqttd (the embedded broker) sends at most 100
retained messages for a QoS 1 subscription (``max_outgoing_packet_count`` at QoS 0) and drops
the rest. A reader that knows a topic it lacks (the controller's :class:`~edge.controller.fleet.Fleet`:
the catalog of an agent whose state came; an agent: a deployment it holds on disk) fetches it
alone: the bus subscribes and unsubscribes that exact topic (see ``edge.bus._filters``: it probes
a topic its wildcards cover), and the broker sends its retained message with the SUBACK. A round
trip on the reader's own sync topic then says that whatever those topics held has arrived.

The reader owns the sync subscription and hands its messages to :meth:`Prober.received`.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence

from edge.bus import Bus, Message

__all__ = ["PROBE_BATCH", "Prober"]

log = logging.getLogger("edge.retained")

PROBE_BATCH = 50  # fetched concurrently: over a slow link each costs two round trips


class Prober:
    """Fetches retained topics one by one on ``bus``; round trips go through ``sync_topic``."""

    def __init__(self, bus: Bus, sync_topic: str) -> None:
        self.bus = bus
        self.sync_topic = sync_topic
        #: retained topics fetched one by one so far
        self.fetched = 0
        self._round_trips: dict[bytes, asyncio.Future[None]] = {}
        self._lock = asyncio.Lock()

    def received(self, payload: bytes) -> bool:
        """Hand over a message of the sync topic; True when it ended one of our round trips."""
        waiter = self._round_trips.get(payload)
        if waiter is None:
            return False
        if not waiter.done():
            waiter.set_result(None)
        return True

    async def fetch(self, topics: Sequence[str], *, qos: int = 1) -> None:
        """Fetch each retained topic alone, then a round trip: what they held has arrived on return.

        ``qos``: that of the wildcard subscription covering the topics; a higher one would have the
        bus subscribe that wildcard again at the higher QoS (and back), and Mosquitto sends every
        retained message of a filter again on each such SUBSCRIBE."""
        async with self._lock:
            for start in range(0, len(topics), PROBE_BATCH):  # in flight together: one round trip per batch
                await asyncio.gather(*(self._fetch(t, qos) for t in topics[start : start + PROBE_BATCH]))
            self.fetched += len(topics)
            log.debug("fetched %d retained topics one by one", len(topics))
            await self.round_trip()

    async def _fetch(self, topic: str, qos: int) -> None:
        sub = await self.bus.subscribe(topic, qos=qos, callback=_ignore)
        await sub.aclose()

    async def round_trip(self) -> None:
        """Publish a fresh token on the sync topic and wait until it comes back."""
        token = uuid.uuid4().hex.encode()
        waiter = asyncio.get_running_loop().create_future()
        self._round_trips[token] = waiter
        try:
            await self.bus.publish(self.sync_topic, token, qos=1)
            await waiter
        finally:
            del self._round_trips[token]


def _ignore(_message: Message) -> None:
    """A fetched topic's message reaches the reader's own wildcard subscription too."""
