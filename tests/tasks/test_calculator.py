"""The calculator task on real brokers: results, defaults, bad input, evaluation errors, synchronized order."""

from __future__ import annotations

import pytest
from task_harness import running

from edge.errors import ConfigError
from tasks.calculator import Calculator


async def test_computes_once_every_variable_has_a_value(broker):
    async with running(Calculator, broker.url, {"formula": "a > 0 ? a * b : -1"}, wired=["a", "b"]) as h:
        await h.feed("a", 3, ts=1000)
        await h.processed("a", 1)
        await h.feed("b", 2, ts=2000)  # MQTT orders one topic, not two: one at a time
        out = await h.next()
        assert (out.value, out.ts) == (6.0, 2000)  # the newest timestamp among the values used
        await h.feed("a", -5, ts=1500)
        out = await h.next()
        assert (out.value, out.ts) == (-1.0, 2000)
        await h.feed("b", True, ts=3000)  # a bool is 1
        assert (await h.next()).value == -1.0


async def test_defaults_and_unused_inputs(broker):
    config = {"formula": "a + b * 10", "defaults": {"b": 1}}
    async with running(Calculator, broker.url, config, wired=["a", "b", "c"]) as h:
        await h.feed("c", 99)  # not in the formula, so no input: a wire to it is never subscribed
        await h.feed("a", 1)
        assert (await h.next()).value == 11.0
        await h.feed("b", 2)
        assert (await h.next()).value == 21.0
        assert list(h.task.in_metrics) == ["a", "b"]


async def test_bad_values_and_evaluation_errors_are_counted_and_skipped(broker):
    async with running(Calculator, broker.url, {"formula": "a / b"}, wired=["a", "b"]) as h:
        await h.feed("a", 1)
        await h.processed("a", 1)
        await h.feed("b", "two")  # not a number: an input error on b
        await h.errors("b", 1)
        await h.feed("b", 0)  # a / 0: an error on b, whose frame triggered it; no output
        await h.errors("b", 2)
        await h.feed("b", 4)
        assert (await h.next()).value == 0.25  # still running
        await h.feed("a", [1, 2])
        await h.errors("a", 1)
        await h.feed("a", 2)
        assert (await h.next()).value == 0.5
        assert h.drain() == []


async def test_a_constant_formula_sends_once(broker):
    async with running(Calculator, broker.url, {"formula": "round(pi * 100) / 100"}, wired=[]) as h:
        assert (await h.next()).value == 3.14


async def test_pause_frames_are_ignored(broker):
    async with running(Calculator, broker.url, {"formula": "a * 2"}, wired=["a"]) as h:
        await h.feed("a", None, paused=True)
        await h.feed("a", 4)
        assert (await h.next()).value == 8.0
        assert h.task.in_metrics["a"].errors == 0


@pytest.mark.parametrize(("synchronized", "expected"), [(False, [-3.0, 7.0]), (True, [10.0, 7.0])])
async def test_synchronized_takes_frames_in_timestamp_order(broker, synchronized, expected):
    config = {"formula": "a - b", "defaults": {"a": 0, "b": 0}, "synchronized": synchronized, "sync_timeout_ms": 5000}
    async with running(Calculator, broker.url, config, wired=["a", "b"]) as h:
        await h.feed("b", 3, ts=2000)  # arrives first, but is the newer frame
        await h.processed("b", 1)
        await h.feed("a", 10, ts=1000)
        await h.feed("a", 10, ts=3000)  # with both inputs buffered again, b's frame goes without a timeout
        assert await h.values(2) == expected


def test_config_is_checked():
    for bad, message in [({"formula": "a +"}, "expected a number"), ({"formula": "e + sin"}, "sin is a function"),
                         ({"formula": "nope(a)"}, "unknown function 'nope'"),
                         ({"defaults": {"pi": 1}}, "not a variable"), ({"defaults": {"a-b": 1}}, "not a variable"),
                         ({"formula": "v" * 65}, "longer than 64"), ({"defaults": {"a": float("nan")}}, "finite"),
                         ({"formula": "__import__('os')"}, "unexpected character"), ({"nope": 1}, "Extra inputs"),
                         ({"sync_timeout_ms": 0}, "greater than or equal to 1")]:
        with pytest.raises(ConfigError, match=message):
            Calculator.validate_config(bad)
    assert Calculator.validate_config({"formula": "sin(x) + cos(y) + z * w + a + b + c + d"})
