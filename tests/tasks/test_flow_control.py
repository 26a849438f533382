"""Filter, throttle and trigger, in memory (edge.testing): report by exception, rate limits, delays and a watchdog.

The timed ones keep their own time, so some checks need time to pass: intervals are tens of
milliseconds, bounds one-sided (a loaded machine is late, never early), and "nothing came" is
checked after a later frame proved the stream is flowing, wherever that can be.
"""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from edge.errors import ConfigError
from edge.testing import TaskRun, run_task
from tasks.flow import Filter, Throttle, Trigger, same_value

MARK = "mark"  # a value that always passes a filter after a number: what came before it is all there was


async def _passed(run: TaskRun[Filter], values: list[object]) -> list[object]:
    """What the filter lets through of ``values``, up to the marker fed after them."""
    for value in [*values, MARK]:
        await run.feed("in", value)
    out = []
    while (value := (await run.next("out")).value) != MARK:
        out.append(value)
    return out


async def test_filter_passes_changes_only():
    async with run_task(Filter) as run:
        assert await _passed(run, [1, 1, 1.0, True, 2, 2, "a", "a", None, None, [1, {"x": 2}], [1, {"x": 2}], 3]) \
            == [1, 2, "a", None, [1, {"x": 2}], 3]
        assert run.task.in_metrics["in"].errors == 0


async def test_filter_deadband_against_the_last_value_sent_lets_a_drift_through():
    async with run_task(Filter, {"mode": "deadband", "band": 1.0}) as run:
        # 20.0 sent; 20.4, 20.8 are within 1 of it; 21.2 is not (sent); then 21.9 is within 1 of 21.2
        assert await _passed(run, [20.0, 20.4, 20.8, 21.2, 21.9, 22.3, 10]) == [20.0, 21.2, 22.3, 10]


async def test_filter_deadband_against_the_last_value_received_needs_a_step():
    async with run_task(Filter, {"mode": "deadband", "band": 1.0, "compare": "received"}) as run:
        assert await _passed(run, [20.0, 20.4, 20.8, 21.2, 21.9, 23.0, 23.5]) == [20.0, 23.0]


async def test_filter_relative_band_inclusive_and_skipping_the_first():
    async with run_task(Filter, {"mode": "deadband", "band_percent": 10, "inclusive": True,
                                 "initial": "skip"}) as run:
        # 100 is the reference, not sent; 110 changed by exactly 10 % (inclusive): sent; 120 is 9.1 % of 110
        assert await _passed(run, [100, 105, 110, 120, 121.0, -5]) == [110, 121.0, -5]


async def test_filter_deadband_treats_non_numbers_as_changed_when_not_equal():
    async with run_task(Filter, {"mode": "deadband", "band": 5}) as run:
        out = await _passed(run, [1, 2, "on", "on", 3, float("nan"), float("nan"), 3, 10**400, 10**400])
        assert [repr(v) for v in out] == ["1", "'on'", "3", "nan", "3", repr(10**400)]  # NaN equals NaN here


async def test_filter_pause_frame_passes_and_forgets_the_reference():
    async with run_task(Filter) as run:
        await run.feed("in", 5)
        await run.feed("in", None, paused=True)
        await run.feed("in", 5)
        frames = [await run.next("out") for _ in range(3)]
        assert [(f.value, f.paused) for f in frames] == [(5, False), (None, True), (5, False)]


def test_filter_config_errors_name_the_field():
    assert Filter.check({"band": 1, "band_percent": 2}) == ["config: set band or band_percent, not both"]
    assert Filter.check({"band": -1})[0].startswith("config.band:")
    with pytest.raises(ConfigError, match="mode"):
        Filter.validate_config({"mode": "rbe"})


def test_same_value_compares_arrays_and_maps_by_content():
    a = np.arange(6, dtype=np.int16).reshape(2, 3)
    assert same_value(a, a.copy()) and not same_value(a, a.astype(np.int32)) and not same_value(a, a.T)
    assert same_value({"a": [1, 2]}, {"a": [1, 2]}) and not same_value({"a": 1}, {"a": "1"})
    assert same_value(1, 1.0) and same_value(True, 1) and not same_value(1, "1") and not same_value(None, 0)


async def _until(predicate, what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout} s"
        await asyncio.sleep(0.002)


async def test_throttle_first_passes_count_per_interval_and_counts_the_rest():
    async with run_task(Throttle, {"count": 2, "interval_ms": 300}) as run:
        start = time.monotonic()
        for value in range(6):
            await run.feed("in", value)
        assert [(await run.next("out")).value for _ in range(2)] == [0, 1]
        await _until(lambda: run.task.dropped() == 4, "4 frames dropped")
        assert run.task.throttled == 4
        await _until(lambda: time.monotonic() - start > 0.35, "the interval to end")
        await run.feed("in", "next")  # a new interval
        assert (await run.next("out")).value == "next"
        assert run.frames("out") == [] and run.task.dropped() == 4


async def test_throttle_latest_sends_the_newest_when_the_interval_ends():
    async with run_task(Throttle, {"count": 1, "interval_ms": 80, "keep": "latest"}) as run:
        start = time.monotonic()
        for value in range(5):
            await run.feed("in", value, ts=1000 + value)
        first = await run.next("out")
        assert first.value == 0
        last = await run.next("out")
        assert (last.value, last.ts) == (4, 1004)  # the newest, with its own timestamp
        assert time.monotonic() - start >= 0.075  # not before the interval's end
        assert run.task.dropped() == 3  # 1, 2, 3 were replaced
        await run.feed("in", None, paused=True)  # passes at once
        assert (await run.next("out")).paused


async def test_throttle_latest_drops_a_held_frame_on_pause():
    async with run_task(Throttle, {"count": 1, "interval_ms": 5000, "keep": "latest"}) as run:
        await run.feed("in", 1)
        await run.feed("in", 2)  # held for the interval's end
        await run.feed("in", None, paused=True)
        assert [(await run.next("out")).value for _ in range(2)] == [1, None]
        assert run.task.dropped() == 1


async def test_trigger_sends_first_then_second_after_the_delay():
    async with run_task(Trigger, {"delay_ms": 200}) as run:
        start = time.monotonic()
        await run.feed("in", "go", ts=5)
        first = await run.next("out")
        assert (first.value, first.ts) == (1, 5)
        await run.feed("in", "again")  # ignored while the delay runs
        second = await run.next("out")
        assert second.value == 0 and time.monotonic() - start >= 0.195
        assert run.frames("out") == []


async def test_trigger_extend_restarts_the_delay_on_every_frame():
    async with run_task(Trigger, {"delay_ms": 300, "retrigger": "extend", "send_first": "frame",
                                  "send_second": "frame"}) as run:
        await run.feed("in", "a")
        assert (await run.next("out")).value == "a"
        for value in ("b", "c"):
            await asyncio.sleep(0.1)  # within the delay: time has to pass for this
            await run.feed("in", value)
        start = time.monotonic()
        second = await run.next("out")
        assert second.value == "c"  # the newest frame's value
        assert time.monotonic() - start >= 0.29  # the delay counted from the last frame
        assert run.frames("out") == []  # "b" and "c" sent no first


async def test_trigger_restart_sends_first_again():
    async with run_task(Trigger, {"delay_ms": 50, "retrigger": "restart", "first": {"on": True},
                                  "second": "off"}) as run:
        await run.feed("in", 1)
        await run.feed("in", 2)
        assert [(await run.next("out")).value for _ in range(3)] == [{"on": True}, {"on": True}, "off"]


async def test_trigger_reset_stops_the_delay():
    async with run_task(Trigger, {"delay_ms": 200}) as run:
        await run.feed("in", 1)
        assert (await run.next("out")).value == 1
        await run.feed("reset", "stop")
        await asyncio.sleep(0.3)  # the delay would have passed: time has to pass to show nothing came
        assert run.frames("out") == []
        await run.feed("in", 1)  # a new trigger after the reset
        assert [(await run.next("out")).value for _ in range(2)] == [1, 0]


async def test_watchdog_reports_a_quiet_stream_once_and_its_return():
    async with run_task(Trigger, {"mode": "watchdog", "delay_ms": 200, "first": "alive", "second": "quiet"}) as run:
        start = time.monotonic()
        assert (await run.next("out")).value == "quiet"  # nothing ever came
        assert time.monotonic() - start >= 0.195
        await run.feed("in", 1)
        assert (await run.next("out")).value == "alive"
        for _ in range(4):  # a stream that keeps coming is alive: nothing sent
            await asyncio.sleep(0.02)
            await run.feed("in", 1)
        assert run.frames("out") == []
        assert (await run.next("out")).value == "quiet"
        await asyncio.sleep(0.3)  # quiet stays quiet: reported once
        assert run.frames("out") == []


async def test_trigger_send_nothing_first():
    async with run_task(Trigger, {"delay_ms": 20, "send_first": "nothing"}) as run:
        await run.feed("in", 7, ts=1)
        frame = await run.next("out")
        assert frame.value == 0 and frame.ts != 1


def test_trigger_output_metadata_follows_what_it_sends():
    def meta(config: dict[str, object]) -> dict[str, object]:
        return Trigger.ports(Trigger.validate_config(config)).outputs["out"].metadata()

    assert meta({}) == {"content": "number"}  # 1 then 0
    assert meta({"first": "ON", "second": "OFF"}) == {"content": "text"}
    assert meta({"first": "ON", "send_second": "nothing"}) == {"content": "text"}
    assert meta({"first": "ON", "second": 0}) == {"any": True}
    assert meta({"send_first": "frame"}) == {"any": True}
