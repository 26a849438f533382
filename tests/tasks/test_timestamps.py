"""Synchronizer, time buffer and timestamp updater on real brokers."""

from __future__ import annotations

import time

import pytest
from task_harness import running

from edge.errors import ConfigError
from edge.frames import now_ms
from edge.merge import Merger
from tasks.timestamps import Synchronizer, TimeBuffer, TimestampUpdater


async def test_synchronizer_releases_in_timestamp_order(broker):
    merged = f"test/sync/{time.monotonic_ns()}"  # every output also on one topic, whose order MQTT keeps
    extra = {f"out{k}": merged for k in range(3)}
    async with running(Synchronizer, broker.url, {"timeout_ms": 5000}, wired=["in0", "in1", "in2"],
                       extra_targets=extra) as h:
        for port, ts in [("in1", 300), ("in0", 200), ("in2", 100), ("in1", 400), ("in0", 500), ("in2", 600)]:
            await h.feed(port, f"{port}@{ts}", ts=ts)
            await h.processed(port, 1 + (ts > 300))
        got = [(await h.next(merged)) for _ in range(4)]
        assert [f.value for f in got] == ["in2@100", "in0@200", "in1@300", "in1@400"]
        assert [(await h.next("out1")).ts for _ in range(2)] == [300, 400]  # each on its own output too
        assert (await h.next("out0")).ts == 200  # in0@500 waits: in1 has nothing buffered, the timeout is long


async def test_synchronizer_does_not_stall_on_a_quiet_input(broker):
    async with running(Synchronizer, broker.url, {"timeout_ms": 50}, wired=["in0", "in1"]) as h:
        await h.feed("in0", "alone", ts=1)
        sent = time.monotonic()
        out = await h.next("out0")
        assert out.value == "alone" and time.monotonic() - sent >= 0.04


def test_merger_rules():
    merger = Merger(["a", "b"], timeout=1.0, maxlen=3, priority={"b": -1})

    def push(port, ts, now=0.0):
        merger.push(port, ts, f"{port}{ts}", now)

    push("a", 10)
    assert merger.pop(0.5) is None  # b may still bring something older
    assert merger.pop(1.0).item == "a10"  # waited its timeout
    push("a", 20)
    push("b", 20)  # same timestamp: b has priority
    assert [merger.pop(1.0).item for _ in range(2)] == ["b20", "a20"]
    push("b", 5)  # older than what was released: at once
    assert merger.pop(1.0).item == "b5"
    for ts in (30, 40, 50):
        push("a", ts, now=1.0)
    assert merger.full("a") and merger.pop(1.0).item == "a30"  # a full buffer releases
    assert merger.deadline() == 2.0


async def test_time_buffer_delays_by_the_clock(broker):
    async with running(TimeBuffer, broker.url, {"delay_ms": 150}) as h:
        sent = time.monotonic()
        for i in range(3):
            await h.feed("in", i, ts=now_ms())
        frames = [await h.next() for _ in range(3)]
        assert time.monotonic() - sent >= 0.14
        assert [f.value for f in frames] == [0, 1, 2]
        old = now_ms() - 10_000  # already older than the delay: out at once
        sent = time.monotonic()
        await h.feed("in", "old", ts=old)
        out = await h.next()
        assert (out.value, out.ts) == ("old", old) and time.monotonic() - sent < 0.14 + 5


async def test_time_buffer_by_message_time(broker):
    async with running(TimeBuffer, broker.url, {"delay_ms": 100, "reference": "message"}) as h:
        for ts in (1000, 1050, 1099):
            await h.feed("in", ts, ts=ts)
        await h.feed("in", 1100, ts=1100)  # 100 ms newer than the first: the first goes
        assert await h.values(1) == [1000]
        await h.feed("in", 1200, ts=1200)
        assert await h.values(3) == [1050, 1099, 1100]
        await h.feed("in", None, paused=True, ts=1201)  # a pause flushes, then passes
        assert await h.values(2) == [1200, None]


async def test_time_buffer_full_releases_the_oldest(broker):
    async with running(TimeBuffer, broker.url, {"delay_ms": 3_600_000, "reference": "message", "max_frames": 2}) as h:
        for ts in (1, 2, 3, 4):
            await h.feed("in", ts, ts=ts)
        assert await h.values(2) == [1, 2]


async def test_time_buffer_puts_frames_back_in_timestamp_order(broker):
    """The stream of a task with replicas comes in the order the replicas finish: order: timestamp mends it."""
    async with running(TimeBuffer, broker.url, {"delay_ms": 300, "order": "timestamp"}) as h:
        base = now_ms()
        for offset in (20, 0, 40, 10, 30):  # two replicas' frames, interleaved out of order
            await h.feed("in", offset, ts=base + offset)
        assert await h.values(5) == [0, 10, 20, 30, 40]
    async with running(TimeBuffer, broker.url, {"delay_ms": 100, "reference": "message", "order": "timestamp"}) as h:
        for ts in (1050, 1000, 1099, 1020):
            await h.feed("in", ts, ts=ts)
        await h.feed("in", 1120, ts=1120)  # 100 ms newer than 1000 and 1020: both go, oldest first
        assert await h.values(2) == [1000, 1020]
        await h.feed("in", None, paused=True, ts=1121)  # a pause flushes, in order, then passes
        assert await h.values(4) == [1050, 1099, 1120, None]
    async with running(TimeBuffer, broker.url, {"delay_ms": 3_600_000, "reference": "message", "max_frames": 2,
                                               "order": "timestamp"}) as h:
        for ts in (4, 2, 3, 1):
            await h.feed("in", ts, ts=ts)
        assert await h.values(2) == [2, 1]  # full: the oldest held goes out early


async def test_timestamp_updater(broker):
    async with running(TimestampUpdater, broker.url, {"reference": "message", "offset_ms": -500}) as h:
        await h.feed("in", "x", ts=10_000)
        out = await h.next()
        assert (out.value, out.ts) == ("x", 9_500)
        await h.feed("in", None, ts=20_000, paused=True)
        out = await h.next()
        assert (out.ts, out.extra) == (19_500, {"paused": True})
    async with running(TimestampUpdater, broker.url, {"offset_ms": 1000}) as h:
        before = now_ms()
        await h.feed("in", "y", ts=5)
        out = await h.next()
        assert before + 1000 <= out.ts <= now_ms() + 1000


def test_configs_are_checked():
    for task_type, bad in [(TimeBuffer, {"delay_ms": -1}), (TimeBuffer, {"reference": "wall"}),
                           (TimeBuffer, {"order": "random"}), (TimeBuffer, {"order": 1}),
                           (TimestampUpdater, {"offset_ms": 10**12}), (Synchronizer, {"timeout_ms": 0})]:
        with pytest.raises(ConfigError):
            task_type.validate_config(bad)
