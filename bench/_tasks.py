"""A task type for the benchmarks that needs nothing beyond edge (loaded with ``--tasks``)."""

from __future__ import annotations

import asyncio

from pydantic import BaseModel, Field

from edge.task import Port, Task


class BenchCounter(Task):
    """Counts up every interval."""

    class Config(BaseModel):
        interval_ms: int = Field(default=100, ge=1)

    outputs = {"out": Port(content="number")}

    async def run(self) -> None:
        n = 0
        while True:
            await self.send("out", n)
            n += 1
            await asyncio.sleep(self.config.interval_ms / 1000)
