"""Text tasks on real brokers: number and time to text, templates, matching, concatenation."""

from __future__ import annotations

from datetime import datetime

import pytest
from task_harness import running

from edge.errors import ConfigError
from tasks.text import NumberToText, StringConcatenator, StringMatcher, TextFormatter, TimeToText


async def test_number_to_text(broker):
    async with running(NumberToText, broker.url) as h:
        for value in (3, 2.5, True):
            await h.feed("in", value, ts=7)
        frames = [await h.next() for _ in range(3)]
        assert [f.value for f in frames] == ["3", "2.5", "1"] and {f.ts for f in frames} == {7}
    async with running(NumberToText, broker.url, {"template": "{value:.1f} °C"}) as h:
        await h.feed("in", "warm")  # not a number
        await h.errors("in", 1)
        await h.feed("in", 21.46)
        assert (await h.next()).value == "21.5 °C"
    async with running(NumberToText, broker.url, {"template": "{value:d}"}) as h:
        await h.feed("in", 1.5)  # does not fit the spec: an input error
        await h.errors("in", 1)
        await h.feed("in", 2)
        assert (await h.next()).value == "2"


async def test_time_to_text(broker):
    ts = 1_700_000_000_123  # 2023-11-14 22:13:20 UTC
    async with running(TimeToText, broker.url, {"format": "%Y-%m-%d %H:%M:%S", "timezone": "UTC"}) as h:
        await h.feed("in", "anything", ts=ts)
        out = await h.next()
        assert (out.value, out.ts) == ("2023-11-14 22:13:20", ts)
    config = {"format": "%H:%M %Z", "timezone": "Europe/Berlin", "source": "value"}
    async with running(TimeToText, broker.url, config) as h:
        await h.feed("in", "noon")
        await h.errors("in", 1)
        await h.feed("in", 10**20)  # far out of range
        await h.errors("in", 2)
        await h.feed("in", ts)
        assert (await h.next()).value == "23:13 CET"
    async with running(TimeToText, broker.url, {"format": "%H:%M:%S"}) as h:  # the agent's local zone
        await h.feed("in", 0, ts=ts)
        assert (await h.next()).value == datetime.fromtimestamp(ts / 1000).strftime("%H:%M:%S")


async def test_text_formatter(broker):
    config = {"template": "{a} is {b:.1f} (was {x!r})", "defaults": {"x": "?"}}
    async with running(TextFormatter, broker.url, config, wired=["a", "b", "x", "c"]) as h:
        await h.feed("a", "temp", ts=1)
        await h.processed("a", 1)
        await h.feed("b", "hot", ts=2)  # .1f on text: an input error on b
        await h.errors("b", 1)
        await h.feed("b", 20.04, ts=3)
        assert [(await h.next()).value for _ in range(2)] == ["temp is  (was ?)", "temp is 20.0 (was ?)"]
        await h.feed("c", "not in the template")
        await h.feed("x", 19)
        out = await h.next()
        assert (out.value, out.ts) == ("temp is 20.0 (was 19)", out.ts)


async def test_text_formatter_waits_for_all(broker):
    async with running(TextFormatter, broker.url, {"template": "{a}{b}", "wait_for_all": True}, wired=["a", "b"]) as h:
        await h.feed("a", "x")
        await h.processed("a", 1)
        await h.feed("b", "y")
        assert (await h.next()).value == "xy"


async def test_string_matcher(broker):
    async with running(StringMatcher, broker.url, {"pattern": "Alarm"}) as h:
        for text in ("no ALARM here", "all fine", "alarm"):
            await h.feed("in", text)
        assert await h.values(3) == [1, 0, 1]
        await h.feed("in", 42)
        await h.errors("in", 1)
    async with running(StringMatcher, broker.url, {"pattern": r"^\d+ (ok|fine)$", "regex": True, "flags": ""}) as h:
        for text in ("200 ok", "200 OK", "x 200 ok", "7 fine"):
            await h.feed("in", text)
        assert await h.values(4) == [1, 0, 0, 1]
    async with running(StringMatcher, broker.url, {"pattern": "b.c", "regex": True}) as h:
        await h.feed("in", "xxBXCxx")  # search, not match; case-insensitive by default
        assert await h.values(1) == [1]


async def test_string_concatenator(broker):
    async with running(StringConcatenator, broker.url, {"separator": " ", "max_length": 12}) as h:
        await h.feed("control", 1)  # on, but nothing collected: nothing sent
        await h.processed("control", 1)
        for word in ("the", "quick", "brown"):
            await h.feed("in", word)
        await h.processed("in", 3)
        await h.feed("control", 1)  # still on: no edge
        await h.feed("control", 0)
        await h.feed("control", 1, ts=99)
        out = await h.next()
        assert (out.value, out.ts) == (" quick brown", 99)  # the last 12 characters of "the quick brown"
        await h.feed("in", "fox")
        await h.processed("in", 4)
        await h.feed("control", 0)
        await h.feed("control", 0.9)
        assert (await h.next()).value == "fox"


async def test_string_concatenator_synchronized_takes_text_first(broker):
    config = {"synchronized": True, "sync_timeout_ms": 5000}
    async with running(StringConcatenator, broker.url, config) as h:
        await h.feed("control", 1, ts=100)  # the trigger arrives first, with the same timestamp as the text
        await h.processed("control", 1)
        await h.feed("in", "same time", ts=100)
        await h.feed("in", "later", ts=200)
        await h.feed("control", 0, ts=300)
        assert await h.values(1) == ["same time"]


def test_configs_are_checked():
    for task_type, bad, message in [
        (NumberToText, {"template": "{value.real}"}, "unknown field"), (NumberToText, {"template": "{"}, "invalid"),
        (NumberToText, {"template": "{value:>5000}"}, "more than"), (TextFormatter, {"template": "{}"}, "not a name"),
        (TextFormatter, {"template": "{a[0]}"}, "not a name"), (TextFormatter, {"template": "{a!a}"}, "!a"),
        (TextFormatter, {"template": "{a:{b}}"}, "nests"), (TextFormatter, {"defaults": {"q-1": ""}}, "not a field"),
        (TextFormatter, {"template": "{" + "f" * 65 + "}"}, "at most 64"),
        (TimeToText, {"timezone": "Mars/Olympus"}, "unknown time zone"), (TimeToText, {"format": ""}, "at least 1"),
        (StringMatcher, {"pattern": "(", "regex": True}, "invalid regular expression"),
        (StringMatcher, {"flags": "iq"}, "flags"), (StringConcatenator, {"max_length": 0}, "max_length"),
    ]:
        with pytest.raises(ConfigError, match=message):
            task_type.validate_config(bad)
    assert StringMatcher.validate_config({"pattern": "(", "regex": False})  # a plain pattern is escaped
