"""Task types for the replica tests, loaded as users load theirs (``--tasks file.py``)."""

from __future__ import annotations

from edge.task import Port, Task


class Stamp(Task):
    """Answers each number with the number and the instance that took it: stateless, so replicable."""

    stateless = True
    inputs = {"in": Port(content="number", qos=1)}
    outputs = {"out": Port(qos=1)}

    async def run(self) -> None:
        async for frame in self.receive("in"):
            await self.send("out", {"n": frame.value, "by": self._ctx().instance_id}, ts=frame.ts)


class Tally(Task):
    """Counts the frames it took: a running state, so not replicable."""

    inputs = {"in": Port(content="number")}
    outputs = {"out": Port(content="number")}

    async def run(self) -> None:
        seen = 0
        async for _ in self.receive("in"):
            seen += 1
            await self.send("out", seen)
