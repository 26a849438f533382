"""Two small task types for agents whose catalogs the tests compare (shared catalogs)."""

from __future__ import annotations

from edge.task import Port, Task


class Double(Task):
    """Doubles numbers."""

    inputs = {"in": Port(content="number")}
    outputs = {"out": Port(content="number")}

    async def run(self) -> None:
        async for frame in self.receive("in"):
            await self.send("out", frame.value * 2)


class Negate(Double):
    """Negates numbers."""

    async def run(self) -> None:
        async for frame in self.receive("in"):
            await self.send("out", -frame.value)
