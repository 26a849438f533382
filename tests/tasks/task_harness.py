"""Run one task instance on a real broker, wired the way an agent wires it, and talk to it in frames.

Each instance gets a namespace of its own; its inputs read ``streams/d/src/<port>`` (as if a task
``src`` fed them) and its outputs publish on ``streams/d/<task>/<port>``, so tasks that derive
their namespace or panel topic from their wiring see what they would see on an agent. Waiting is
always on a condition with a deadline; a crash of the task fails the wait with the task's error.

``running(..., MEMORY)`` runs the task on an :class:`edge.testing.MemoryBus` instead: the same subscriptions
and payloads, handed over in-process (no broker, no sockets), for tests that feed thousands of
frames (the hostile-value property test).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from edge.bus import Bus, Subscription
from edge.frames import Frame, decode_frame, encode_frame
from edge.task import Task, TaskContext
from edge.testing import MEMORY_URL as MEMORY
from edge.testing import MemoryBus
from edge.topics import Topics

TIMEOUT = 10.0
@dataclass
class Harness:
    bus: Bus | MemoryBus
    task: Any
    topics: Topics
    sources: dict[str, str]
    targets: dict[str, list[str]]
    outputs: dict[str, Subscription]
    runner: asyncio.Task[None]
    extra: dict[str, Subscription] = field(default_factory=dict)

    def _check(self) -> None:
        if self.runner.done() and not self.runner.cancelled() and self.runner.exception() is not None:
            raise AssertionError(f"the task crashed: {self.runner.exception()!r}") from self.runner.exception()

    async def feed(self, port: str, value: Any, *, ts: int | None = None, paused: bool = False) -> None:
        extra = {"paused": True} if paused else None
        await self.bus.publish(self.sources[port], encode_frame(value, ts=ts, extra=extra))

    async def next(self, port: str = "out", timeout: float = TIMEOUT) -> Frame:
        sub = self.outputs.get(port) or self.extra[port]
        deadline = time.monotonic() + timeout
        while True:
            self._check()
            try:
                async with asyncio.timeout(min(0.5, max(deadline - time.monotonic(), 0.001))):
                    message = await sub.get()
            except TimeoutError:
                if time.monotonic() >= deadline:
                    raise AssertionError(f"no frame on {port!r} within {timeout} s") from None
                continue
            if not message.payload:  # a cleared retained view
                continue
            return decode_frame(message.payload)

    async def values(self, count: int, port: str = "out") -> list[Any]:
        return [(await self.next(port)).value for _ in range(count)]

    async def until(self, predicate: Callable[[], bool], what: str = "the condition", timeout: float = TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            self._check()
            if time.monotonic() >= deadline:
                raise AssertionError(f"{what} did not happen within {timeout} s")
            await asyncio.sleep(0.005)

    async def processed(self, port: str, count: int) -> None:
        """Wait until input ``port`` has taken ``count`` frames in all."""
        metrics = self.task.in_metrics[port]
        await self.until(lambda: metrics.frames + metrics.errors >= count, f"{count} frame(s) on {port!r}")
        await asyncio.sleep(0)  # let the handler of the last one run to its first await

    async def errors(self, port: str, count: int) -> None:
        metrics = self.task.in_metrics[port] if port in self.task.in_metrics else self.task.out_metrics[port]
        await self.until(lambda: metrics.errors >= count, f"{count} error(s) on {port!r}")

    def drain(self, port: str = "out") -> list[Frame]:
        sub = self.outputs[port]
        frames = []
        while sub.queued:
            message = sub.get_nowait()
            if message.payload:
                frames.append(decode_frame(message.payload))
        return frames

    async def silence(self, port: str = "out", seconds: float = 0.3) -> None:
        """Assert that nothing arrives on ``port`` for ``seconds`` (only for timers, which need time to pass)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                message = await self.outputs[port].get()
                raise AssertionError(f"unexpected frame on {port!r}: {decode_frame(message.payload)}")


def namespace() -> Topics:
    return Topics(f"t{uuid.uuid4().hex[:10]}")


@contextlib.asynccontextmanager
async def running(task_type: type[Task], url: Any, config: Mapping[str, Any] | None = None, *,
                  wired: Iterable[str] | None = None, task_id: str = "t", topics: Topics | None = None,
                  extra_targets: Mapping[str, str] | None = None,
                  context_attrs: Mapping[str, Any] | None = None) -> AsyncIterator[Harness]:
    """An instance of ``task_type`` running on ``url``; outputs are subscribed before it starts."""
    topics = topics or namespace()
    own = task_type.ports(task_type.validate_config(config))  # the instance's ports, from its config
    ports = list(own.inputs if wired is None else wired)
    sources = {port: topics.stream("d", "src", port) for port in ports}
    targets = {port: [topics.stream("d", task_id, port)] for port in own.outputs}
    for port, topic in (extra_targets or {}).items():
        targets[port].append(topic)
    async with (MemoryBus() if url == MEMORY else Bus(str(url))) as bus:
        outputs = {port: await bus.subscribe(topics_[0], maxsize=100_000) for port, topics_ in targets.items()}
        extra = {topic: await bus.subscribe(topic, maxsize=100_000) for topic in set((extra_targets or {}).values())}
        context = TaskContext(bus=bus, instance_id=f"d/{task_id}", sources=sources, targets=targets)
        for name, value in (context_attrs or {}).items():
            setattr(context, name, value)
        task = task_type(config, context=context)
        await task.open_inputs()
        runner = asyncio.create_task(task.run(), name=f"test-{task_type.type_name}")
        harness = Harness(bus, task, topics, dict(context.sources), targets, outputs, runner, extra)
        try:
            yield harness
            harness._check()
        finally:
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner
            await task.close()
            for sub in (*outputs.values(), *extra.values()):
                await sub.aclose()
