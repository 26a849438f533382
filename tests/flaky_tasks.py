"""A task type for the crash-notice tests (controller views, panel pages): its first run crashes after a
few frames, later runs do not. Loaded by path (an agent's task source) or imported (``Host(types=...)``)."""

from __future__ import annotations

import asyncio
from typing import ClassVar

from pydantic import BaseModel

from edge.task import Port, Task


class Flaky(Task):
    """Counts up; crashes once per ``name`` (its first run), then runs on."""

    class Config(BaseModel):
        name: str = "flaky"
        interval_ms: int = 50
        crash_after: int = 3  # frames sent before the first run crashes

    outputs = {"out": Port(content="number")}
    crashed: ClassVar[set[str]] = set()

    async def run(self) -> None:
        n = 0
        while True:
            await self.send("out", n)
            n += 1
            if n == self.config.crash_after and self.config.name not in Flaky.crashed:
                Flaky.crashed.add(self.config.name)
                raise RuntimeError("flaky on purpose")
            await asyncio.sleep(self.config.interval_ms / 1000)
