"""Task types for the panel tests, loaded by agents the way users load theirs (``--tasks file.py``)."""

from __future__ import annotations

import asyncio
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field

from edge.task import Port, Task


class Numbers(Task):
    """Counts up every interval."""

    class Config(BaseModel):
        interval_ms: int = Field(default=100, ge=10, le=60_000, description="time between two numbers")
        start: int = 0

    outputs = {"out": Port(content="number")}

    async def run(self) -> None:
        n = self.config.start
        while True:
            await self.send("out", n)
            n += 1
            await asyncio.sleep(self.config.interval_ms / 1000)


class Double(Task):
    """Doubles numbers."""

    class Config(BaseModel):
        factor: float = Field(default=2.0, gt=0, le=1000)
        mode: Literal["multiply", "add"] = "multiply"
        enabled: bool = True
        tags: list[str] = Field(default_factory=list, max_length=3)
        note: str | None = None

    inputs = {"in": Port(content="number")}
    outputs = {"out": Port(content="number")}

    async def run(self) -> None:
        async for frame in self.receive("in"):
            value = frame.value * self.config.factor if self.config.mode == "multiply" else frame.value + 2
            await self.send("out", value, ts=frame.ts)


class Words(Task):
    """Says a word every interval."""

    class Config(BaseModel):
        interval_ms: int = Field(default=100, ge=10)
        word: str = "hello"

    outputs = {"out": Port(content="text")}

    async def run(self) -> None:
        n = 0
        while True:
            await self.send("out", f"{self.config.word} {n}")
            n += 1
            await asyncio.sleep(self.config.interval_ms / 1000)


class Pictures(Task):
    """A small moving gradient, as an RGB image."""

    class Config(BaseModel):
        interval_ms: int = Field(default=200, ge=10)

    outputs = {"out": Port(content="video", pixel_format="rgb24")}

    async def run(self) -> None:
        n = 0
        while True:
            image = np.zeros((48, 64, 3), dtype=np.uint8)
            image[:, :, 0] = (np.arange(64) * 4 + n) % 256
            image[:, :, 2] = 200
            await self.send("out", image)
            n += 8
            await asyncio.sleep(self.config.interval_ms / 1000)


class Records(Task):
    """Sends maps (decoded CBOR in the inspector), with text that looks like HTML."""

    class Config(BaseModel):
        interval_ms: int = Field(default=100, ge=10)

    outputs = {"out": Port(content="record")}

    async def run(self) -> None:
        n = 0
        while True:
            await self.send("out", {"n": n, "html": "<img src=x onerror=alert(1)>", "raw": b"\x00\x01"})
            n += 1
            await asyncio.sleep(self.config.interval_ms / 1000)


class Broken(Task):
    """Crashes at once."""

    outputs = {"out": Port(content="number")}

    async def run(self) -> None:
        raise RuntimeError("broken on purpose <b>bold</b>")
