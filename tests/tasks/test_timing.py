"""Pulse generator, repeater and message detector on real brokers.

These tasks keep their own time, so some checks need time to pass; bounds are one-sided (a loaded
machine is late, never early) and short.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from task_harness import running

from edge.errors import ConfigError
from edge.frames import now_ms
from tasks.timing import MessageDetector, PulseGenerator, Repeater


@pytest.mark.parametrize("message", ["timestamp", "count", "id"])
async def test_pulses(broker, message):
    start = now_ms()
    async with running(PulseGenerator, broker.url, {"interval_ms": 20, "message": message}) as h:
        frames = [await h.next() for _ in range(4)]
    stamps = [f.ts for f in frames]
    assert stamps == sorted(stamps) and stamps[0] >= start
    assert stamps[-1] - stamps[0] >= 3 * 20 - 5  # never early (a few ms of clock granularity)
    values = [f.value for f in frames]
    if message == "timestamp":
        assert values == stamps
    elif message == "count":
        assert values == [0, 1, 2, 3]
    else:
        assert len(set(values)) == 4 and all(isinstance(v, str) and len(v) == 32 for v in values)
    expected = "text" if message == "id" else "number"
    assert PulseGenerator({"message": message}).output_metadata("out") == {"content": expected}


async def test_repeater_resends_the_latest_value(broker):
    async with running(Repeater, broker.url, {"rate": 50}) as h:
        await h.feed("in", "a", ts=1)
        first = await h.next()
        assert first.value == "a" and first.ts > 1  # restamped: a repeated frame is a new sample
        assert await h.values(3) == ["a", "a", "a"]
        await h.feed("in", "b")
        while (await h.next()).value == "a":
            pass
        assert await h.values(2) == ["b", "b"]
        await h.feed("in", None, paused=True)
        while not (await h.next()).extra.get("paused"):
            pass
        await h.silence(seconds=0.15)  # stopped until the next value
        await h.feed("in", "c")
        assert await h.values(2) == ["c", "c"]


async def test_repeater_stops_on_stale_values(broker):
    async with running(Repeater, broker.url, {"rate": 100, "max_age_ms": 60}) as h:
        await h.feed("in", 1)
        await h.next()
        deadline = time.monotonic() + 5
        while True:  # until the repeats stop
            try:
                async with asyncio.timeout(0.1):
                    await h.outputs["out"].get()
            except TimeoutError:
                break
            assert time.monotonic() < deadline, "the repeats never stopped"
        await h.silence(seconds=0.2)
        # ticks 10 ms apart while the value is at most 60 ms old: 7 at most, however late they ran
        assert 1 <= h.task.out_metrics["out"].frames <= 7


async def test_message_detector(broker):
    async with running(MessageDetector, broker.url, {"timeout_ms": 100}) as h:
        assert (await h.next()).value == 0
        await h.feed("in", "anything")
        assert (await h.next()).value == 1
        sent = time.monotonic()
        assert (await h.next()).value == 0  # nothing for 100 ms
        assert time.monotonic() - sent >= 0.09
        await h.feed("in", 1)
        assert (await h.next()).value == 1
        await h.feed("in", None, paused=True)
        assert (await h.next()).value == 0


async def test_message_detector_repeats(broker):
    async with running(MessageDetector, broker.url, {"timeout_ms": 60_000, "repeat_ms": 20}) as h:
        assert await h.values(3) == [0, 0, 0]
        await h.feed("in", "x")
        while (await h.next()).value == 0:
            pass
        assert await h.values(2) == [1, 1]


async def test_pulse_schedule_does_not_drift(broker):
    async with running(PulseGenerator, broker.url, {"interval_ms": 10, "message": "count"}) as h:
        started = time.monotonic()
        await h.until(lambda: h.task.out_metrics["out"].frames >= 30, "30 pulses")
        elapsed = time.monotonic() - started
    assert elapsed >= 0.28  # never faster than the schedule


def test_configs_are_checked():
    for task_type, bad in [(PulseGenerator, {"interval_ms": 0}), (PulseGenerator, {"message": "uuid"}),
                           (Repeater, {"rate": 0}), (Repeater, {"max_age_ms": -1}),
                           (MessageDetector, {"timeout_ms": 0}), (MessageDetector, {"repeat_ms": -5})]:
        with pytest.raises(ConfigError):
            task_type.validate_config(bad)
