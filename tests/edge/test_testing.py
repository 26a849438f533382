"""edge.testing: the in-memory broker behaves as our brokers do for what tasks use, and runs a task."""

from __future__ import annotations

import asyncio
import re
import textwrap
import time
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel

from edge.bus import Message, Subscription
from edge.errors import BusError, ConfigError, TopicError
from edge.frames import encode_frame
from edge.task import Port, Task
from edge.testing import MemoryBus, run_task


async def test_filters_match_as_on_a_broker() -> None:
    async with MemoryBus() as bus:
        plus, hash_, exact, root = [await bus.subscribe(f) for f in ("a/+/c", "a/#", "a/b", "#")]
        for topic in ("a/b/c", "a/b", "a", "a/b/c/d", "x", "$SYS/load"):
            await bus.publish(topic, topic.encode())

        def got(sub: Subscription) -> list[str]:
            return [sub.get_nowait().topic for _ in range(sub.queued)]

        assert got(plus) == ["a/b/c"]
        assert got(hash_) == ["a/b/c", "a/b", "a", "a/b/c/d"]  # '#' also matches its parent level
        assert got(exact) == ["a/b"]
        assert got(root) == ["a/b/c", "a/b", "a", "a/b/c/d", "x"]  # never a $-topic
        assert bus.subscriptions == ["a/+/c", "a/#", "a/b", "#"]


async def test_retained_messages_reach_later_subscribers_and_an_empty_payload_clears_them() -> None:
    async with MemoryBus() as bus:
        await bus.publish("state/a", b"1", qos=1, retain=True)
        await bus.publish("state/b", b"2", retain=True)
        await bus.publish("state/b", b"", retain=True)
        assert bus.retained("state/a") == b"1" and bus.retained_topics == ["state/a"]
        async with bus.subscribe("state/+", qos=1) as sub:
            first = sub.get_nowait()
            assert (first.topic, first.payload, first.retain) == ("state/a", b"1", True)
            assert not sub.queued
            await bus.publish("state/a", b"3", qos=1, retain=True)
            live = sub.get_nowait()
            assert (live.payload, live.retain) == (b"3", False)  # live: not flagged retained


async def test_each_subscriber_gets_the_lower_qos_and_bad_messages_are_refused() -> None:
    async with MemoryBus(max_payload=10) as bus:
        low, high = await bus.subscribe("t", qos=0), await bus.subscribe("t", qos=2)
        await bus.publish("t", b"x", qos=1)
        assert (low.get_nowait().qos, high.get_nowait().qos) == (0, 1)
        with pytest.raises(ConfigError, match="qos must be 0, 1 or 2"):
            await bus.publish("t", b"x", qos=3)
        with pytest.raises(TopicError):
            await bus.publish("t/+", b"x")
        with pytest.raises(BusError, match="exceeds max_payload 10"):
            await bus.publish("t", b"x" * 11)
        assert bus.stats.published == 1


async def test_a_shared_group_gets_each_message_once_in_turn() -> None:
    async with MemoryBus() as bus:
        await bus.publish("jobs/0", b"old", retain=True)
        one, two = await bus.subscribe("$share/g/jobs/+"), await bus.subscribe("$share/g/jobs/+")
        everyone = await bus.subscribe("jobs/+")
        for i in range(1, 5):
            await bus.publish(f"jobs/{i}", b"")
        assert (one.queued, two.queued) == (2, 2)  # and no retained message for a shared subscription
        assert everyone.queued == 5


@pytest.mark.expect_errors("callback of subscription \'t\' failed")
async def test_a_failing_callback_is_logged_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    def broken(message: Message) -> None:
        raise ValueError(message.topic)

    async with MemoryBus() as bus:
        sub = await bus.subscribe("t", callback=broken)
        await bus.publish("t", b"")
        await bus.publish("t", b"")
    assert sub.errors == 2
    assert [r.levelname for r in caplog.records if r.name == "edge.testing"] == ["ERROR", "ERROR"]


async def test_leaving_closes_every_subscription() -> None:
    bus = MemoryBus()
    async with bus:
        sub = await bus.subscribe("t")
        assert bus.is_connected
    assert not bus.is_connected and bus.subscriptions == []
    with pytest.raises(StopAsyncIteration):
        await sub.get()


class Scale(Task):
    class Config(BaseModel):
        factor: float = 2.0

    inputs: ClassVar = {"in": Port(content="number")}
    outputs: ClassVar = {"out": Port(content="number")}

    async def run(self) -> None:
        async for frame in self.receive("in"):
            if frame.value < 0:
                raise ValueError(f"negative: {frame.value}")
            await self.send("out", frame.value * self.config.factor, ts=frame.ts)


async def test_run_task_feeds_inputs_and_reads_outputs_in_milliseconds() -> None:
    started = time.perf_counter()
    async with run_task(Scale, {"factor": 3}) as run:
        for i in range(1000):
            await run.feed("in", i, ts=i)
        values = [(await run.next("out")).value for _ in range(1000)]
        assert values == [3.0 * i for i in range(1000)]
        assert run.task.in_metrics["in"].frames == 1000 and run.frames("out") == []
        assert run.sources == {"in": "edge/v1/test/streams/test/src/in"}
        assert run.targets == {"out": "edge/v1/test/streams/test/task/out"}
    assert time.perf_counter() - started < 2.0  # 1000 frames through a task, no broker: typically ~0.1 s


async def test_run_task_raises_what_run_raised() -> None:
    with pytest.raises(ValueError, match="negative: -1"):
        async with run_task(Scale) as run:
            await run.feed("in", -1)
            await run.next("out")
    with pytest.raises(ValueError, match="negative: -2"):  # also when nobody waits on an output
        async with run_task(Scale) as run:
            await run.feed("in", -2)
            await asyncio.sleep(0)


async def test_run_task_waits_a_bounded_time_and_names_its_ports() -> None:
    async with run_task(Scale) as run:
        with pytest.raises(TimeoutError, match=r"no frame on output .out. of scale within 0\.05 s"):
            await run.next("out", timeout=0.05)
        with pytest.raises(ConfigError, match="has no input 'nope'"):
            await run.feed("nope", 1)
        with pytest.raises(ConfigError, match="has no output 'nope'"):
            run.frames("nope")
        # a frame a task could not decode is counted, as on a real bus
        await run.bus.publish(run.sources["in"], b"not cbor")
        await run.feed("in", 1)
        assert (await run.next("out")).value == 2.0
        assert run.task.in_metrics["in"].errors == 1
    assert run.bus.subscriptions == []  # the task's and the outputs' subscriptions are closed


async def test_a_frame_fed_by_hand_is_the_same_as_feed() -> None:
    async with MemoryBus() as bus, run_task(Scale, bus=bus) as run:
        await bus.publish(run.sources["in"], encode_frame(5, ts=7))
        frame = await run.next("out")
        assert (frame.value, frame.ts) == (10.0, 7)


async def test_the_task_modules_example_of_an_in_memory_test_runs() -> None:
    import edge.task

    assert edge.task.__doc__ is not None
    blocks = [textwrap.dedent(b) for b in re.findall(r"::\n\n((?:    .*\n|[ \t]*\n)+)", edge.task.__doc__)]
    namespace: dict[str, Any] = {"__name__": "edge_task_docstring"}
    for block in blocks:  # the Scale task, then its test
        exec(compile(block, "edge/task.py docstring", "exec"), namespace)
    await namespace["test_scale"]()
