"""Bursts are absorbed, not dropped: an agent's input queue holds a burst of thousands of small
frames (MQTT delivers in bursts), and drops, counted in the status, only when a task really
falls behind (its queue's byte bound is reached).

An agent (``Host``, default settings) runs a task whose reading is held back while a burst of
5,000 frames of 64 B arrives, the worst a burst can be: nothing of it is read before it all
arrived. Before, an input held 1,000 frames (``EDGE_QUEUE_SIZE``) and this lost 4,000.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

from edge.bus import Bus
from edge.frames import encode_frame
from edge.graph import encode_spec, parse_spec
from edge.host import Host
from edge.settings import load_settings
from edge.task import Port, Task
from edge.topics import Topics

TIMEOUT = 15.0
BURST = 5000
FRAME = 64  # bytes
FIRST = 1000  # the first frame's n and seq: 1000 to 5999 all take 3 bytes of CBOR


class Held(Task):
    """Reads its input only once ``release`` is set; records every value's ``n``."""

    inputs = {"in": Port(content="any")}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.release = asyncio.Event()
        self.seen: list[int] = []

    async def run(self) -> None:
        await self.release.wait()
        async for frame in self.receive("in"):
            self.seen.append(frame.value["n"])


async def until(predicate: Callable[[], bool], what: str) -> None:
    async with asyncio.timeout(TIMEOUT):
        while not predicate():
            await asyncio.sleep(0.02)
    assert predicate(), what


def frames(count: int) -> list[bytes]:
    """``count`` frames of ``FRAME`` bytes; value ``n`` is ``FIRST + i`` (so every frame encodes alike)."""
    pad = next(b"." * k for k in range(FRAME) if len(encode_frame({"n": FIRST, "pad": b"." * k}, seq=FIRST, ts=1))
               == FRAME)
    return [encode_frame({"n": FIRST + i, "pad": pad}, seq=FIRST + i, ts=1) for i in range(count)]


@contextlib.asynccontextmanager
async def burst_into_held_task(broker: Any, tmp_path: Any, **settings: Any) -> AsyncIterator[tuple[Held, Any]]:
    """Deploy a Held task on an in-process agent, send it the burst, wait until all of it arrived;
    gives the task and its instance, reading still held back."""
    topics = Topics(f"bu{uuid.uuid4().hex[:8]}")
    config = load_settings(broker=broker.url.geturl(), namespace=topics.namespace, agent_id="a1",
                           data_dir=tmp_path / "a1", **settings)
    source = f"{topics.namespace}/burst"
    spec = parse_spec({"id": "d", "tasks": [{"id": "held", "type": "held", "agent": "a1"}],
                       "edges": [{"from": f"topic:{source}", "to": "held.in"}]})
    payloads = frames(BURST)
    assert {len(p) for p in payloads} == {FRAME}
    async with Host(config, types=[Held], persist=False) as host, Bus(broker.url) as bus:
        await bus.publish(topics.deployment("d"), encode_spec(spec), qos=1, retain=True)
        await until(lambda: (i := host.instances.get(("d", "held"))) is not None and i.state == "running",
                    "the task to run")
        instance = host.instances[("d", "held")]
        task = instance.task
        assert isinstance(task, Held)
        inbox = await task.open_inputs()
        for payload in payloads:
            bus.publish_nowait(source, payload)
        await until(lambda: inbox.queued + task.dropped() == BURST, "the whole burst to arrive")
        yield task, instance


async def test_a_burst_of_small_frames_into_a_task_that_keeps_up_loses_nothing(broker, tmp_path):
    async with burst_into_held_task(broker, tmp_path) as (task, instance):
        assert task.dropped() == 0, f"{task.dropped()} of a {BURST}-frame burst dropped"
        task.release.set()
        await until(lambda: len(task.seen) == BURST, "the task to read the burst")
        assert task.seen == list(range(FIRST, FIRST + BURST))
        metrics = instance.metrics()
        assert metrics["dropped"] == 0 and metrics["inputs"]["in"]["frames"] == BURST


async def test_a_task_that_really_falls_behind_drops_the_oldest_and_counts(broker, tmp_path):
    limit = 64 * 1024  # EDGE_QUEUE_BYTES: 1,024 of the burst's frames
    async with burst_into_held_task(broker, tmp_path, queue_bytes=limit) as (task, instance):
        inbox = await task.open_inputs()
        kept = limit // FRAME
        assert (inbox.queued, inbox["in"].bytes) == (kept, limit)
        assert task.dropped() == instance.metrics()["dropped"] == BURST - kept
        task.release.set()
        await until(lambda: len(task.seen) == kept, "the task to read what was kept")
        assert task.seen == list(range(FIRST + BURST - kept, FIRST + BURST))  # the newest kept, the oldest dropped
