"""Publishing retained messages in a test and knowing the broker holds them all before going on."""

from __future__ import annotations

import asyncio

from edge.bus import Bus

__all__ = ["publish_retained"]


async def publish_retained(bus: Bus, messages: list[tuple[str, bytes]], *, marker: str,
                           timeout: float = 10.0) -> None:
    """Publish each ``(topic, payload)`` retained at QoS 1, then a round trip on ``marker``: once it
    is back, the broker has them all (a bus that leaves at once may drop queued QoS 1 publishes)."""
    async with bus.subscribe(marker, qos=1) as sub:
        for topic, payload in messages:
            await bus.publish(topic, payload, qos=1, retain=True)
        await bus.publish(marker, b"done", qos=1)
        async with asyncio.timeout(timeout):
            await anext(aiter(sub))
