"""Task types for the agent tests, loaded the way users load theirs (``--tasks file.py``)."""

from __future__ import annotations

import asyncio

from pydantic import BaseModel, Field

from edge.task import Port, Task


class Scale(Task):
    """Multiply numbers by a factor."""

    class Config(BaseModel):
        factor: float = Field(default=2.0, gt=0)

    inputs = {"in": Port(content="number")}
    outputs = {"out": Port(content="number")}

    async def run(self) -> None:
        async for frame in self.receive("in"):
            await self.send("out", frame.value * self.config.factor, ts=frame.ts)


class Crasher(Task):
    """Raises on every frame."""

    inputs = {"in": Port(content="number")}
    outputs = {"out": Port(content="number")}

    async def run(self) -> None:
        async for frame in self.receive("in"):
            raise RuntimeError(f"cannot handle {frame.value}")


class Counter(Task):
    """Counts up every interval."""

    class Config(BaseModel):
        interval_ms: int = Field(default=50, ge=1)

    outputs = {"out": Port(content="number")}

    async def run(self) -> None:
        n = 0
        while True:
            await self.send("out", n)
            n += 1
            await asyncio.sleep(self.config.interval_ms / 1000)


class Metronome(Task):
    """Sends ``rate`` frames a second on schedule (a late wake-up catches up): what it delivers per second
    measures the path to the broker and on, not the jitter of its timer."""

    class Config(BaseModel):
        rate: float = Field(default=20.0, gt=0)

    outputs = {"out": Port(content="number")}

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        start, n = loop.time(), 0
        while True:
            await self.send("out", n)
            n += 1
            await asyncio.sleep(max(0.0, start + n / self.config.rate - loop.time()))


class Ticker(Task):
    """Counts up every interval, at QoS 1: its frames survive a broker outage."""

    class Config(BaseModel):
        interval_ms: int = Field(default=20, ge=1)

    outputs = {"out": Port(content="number", qos=1)}

    async def run(self) -> None:
        n = 0
        while True:
            await self.send("out", n)
            n += 1
            await asyncio.sleep(self.config.interval_ms / 1000)


class Flood(Task):
    """Publishes as fast as it can (1 KiB frames)."""

    outputs = {"out": Port(content="bytes")}

    async def run(self) -> None:
        payload = bytes(1024)
        while True:
            await self.send("out", payload)
            await asyncio.sleep(0)


class Sluggish(Task):
    """Takes 20 ms per frame."""

    inputs = {"in": Port(content="bytes")}

    async def run(self) -> None:
        async for _ in self.receive("in"):
            await asyncio.sleep(0.02)
