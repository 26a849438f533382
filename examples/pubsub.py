"""Publish frames and read them back through the bus: the smallest edgetasks program.

    python examples/pubsub.py                       # against the broker the settings name
    python examples/pubsub.py mqtt://127.0.0.1:1883 # against this one
"""

from __future__ import annotations

import asyncio
import sys

from edge.bus import Bus
from edge.frames import decode_frame, encode_frame
from edge.settings import load_settings


async def main(url: str, count: int = 5) -> list[float]:
    received = []
    async with Bus(url) as bus, bus.subscribe("examples/temperature") as sub:
        for seq in range(count):
            await bus.publish("examples/temperature", encode_frame(20.0 + seq / 10, seq=seq))
        for _ in range(count):
            frame = decode_frame((await sub.get()).payload)
            print(f"seq={frame.seq} ts={frame.ts} value={frame.value}")
            received.append(frame.value)
    return received


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else str(load_settings().broker_url)))
