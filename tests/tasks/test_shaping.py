"""Change, split, join and batch, in memory (edge.testing): fields by path, a value into frames and back."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from edge.errors import ConfigError
from edge.testing import run_task
from tasks.change import Change
from tasks.grouping import Batch, Join, Split
from tasks.parts import Held


# -- change -------------------------------------------------------------------------------------------
async def test_change_applies_set_move_delete_in_order():
    rules = [{"action": "set", "path": "unit", "value": "°C"},
             {"action": "move", "path": "sensor.temp", "to": "reading.value"},
             {"action": "delete", "path": "sensor"},
             {"action": "set", "path": "tags.0", "value": {"new": [1]}},
             {"action": "set", "path": "tags.2", "value": "appended"},
             {"action": "set", "path": "deep.a.b", "value": 1},
             {"action": "delete", "path": "missing.field"},
             {"action": "move", "path": "missing", "to": "elsewhere"},
             {"action": "set", "path": 'odd["x.y"]', "value": True},
             {"action": "set", "path": "fresh", "value": {}},
             {"action": "set", "path": "fresh.n", "value": 1}]
    async with run_task(Change, {"rules": rules}) as run:
        await run.feed("in", {"sensor": {"temp": 21.5, "id": 3}, "tags": ["old", "b"]}, ts=42)
        frame = await run.next("out")
        assert frame.ts == 42
        assert frame.value == {"unit": "°C", "reading": {"value": 21.5}, "tags": [{"new": [1]}, "b", "appended"],
                               "deep": {"a": {"b": 1}}, "odd": {"x.y": True},
                               "fresh": {"n": 1}}
        assert run.task.config.rules[-2].value == {}  # a set value is copied, never changed by later rules
        await run.feed("in", {"tags": []})  # tags.0 appends to an empty list; tags.2 is then beyond it
        await _until(lambda: run.task.in_metrics["in"].errors == 1, "an input error")


@pytest.mark.parametrize(("value", "rule", "message"), [
    (5, {"action": "set", "path": "a", "value": 1}, "the value is int, not a map"),
    ("text", {"action": "delete", "path": "a"}, "the value is text, not a map"),
    ({"a": 5}, {"action": "set", "path": "a.b", "value": 1}, "a is int, not a map or list"),
    ({"a": [1]}, {"action": "set", "path": "a.5", "value": 1}, "a.5: no item 5 in a list of 1"),
    ({"a": [1]}, {"action": "set", "path": "a.x", "value": 1}, "'x' is no index of a list"),
    ({"a": {"b": "s"}}, {"action": "set", "path": "a.b.c", "value": 1}, "a.b is text, not a map or list"),
    ({"a": 1, "t": "s"}, {"action": "move", "path": "a", "to": "t.x"}, "t is text, not a map or list"),
])
async def test_change_bad_paths_are_counted_input_errors(value, rule, message, caplog):
    async with run_task(Change, {"rules": [rule]}) as run:
        await run.feed("in", value)
        await run.feed("in", {"ok": 1})
        out = await run.next("out")
        assert out.value.get("ok") == 1
        assert run.task.in_metrics["in"].errors == 1
    assert message in caplog.text


async def test_change_keeps_pause_frames_and_the_part_field():
    async with run_task(Change, {"rules": [{"action": "set", "path": "x", "value": 1}]}) as run:
        await run.feed("in", None, paused=True)
        assert (await run.next("out")).paused
    async with run_task(Split) as split, run_task(Change, {"rules": [{"action": "delete", "path": "key"}]}) as change:
        await split.feed("in", {"a": 1})
        item = await split.next("out")
        await change.bus.publish(change.sources["in"], _payload(item))
        changed = await change.next("out")
        assert changed.value == {"value": 1} and changed.extra["part"] == item.extra["part"]


def _payload(frame) -> bytes:
    from edge.frames import encode_frame

    return encode_frame(frame.value, ts=frame.ts, extra=dict(frame.extra))


def test_change_config_errors_name_the_rule():
    assert Change.check({"rules": [{"action": "move", "path": "a"}]}) == [
        "config.rules.0: a move rule needs 'to', the path the field moves to"]
    assert Change.check({"rules": [{"action": "set", "path": "a..b["}]})[0].startswith("config.rules.0.path: invalid")
    assert Change.check({"rules": [{"action": "set", "path": ""}]})[0].startswith("config.rules.0.path: the path")
    assert Change.check({"rules": [{"action": "copy", "path": "a"}]})[0].startswith("config.rules.0.action:")


# -- split and join -----------------------------------------------------------------------------------
async def _through(value, split_config=None, join_config=None):
    """``value`` through a split and a join (mode parts), frame by frame, as the bus would carry them."""
    async with run_task(Split, split_config) as split, run_task(Join, join_config) as join:
        await split.feed("in", value, ts=7)
        count = None
        frames = []
        while count is None or len(frames) < count:
            frames.append(await split.next("out"))
            count = frames[-1].extra["part"]["count"]
        assert all(f.ts == 7 for f in frames)
        for frame in reversed(frames):  # any order
            await join.bus.publish(join.sources["in"], _payload(frame))
        return frames, await join.next("out")


@pytest.mark.parametrize("value", [[1, "a", None, [2]], "line 1\nline 2\n", {"a": 1, "b": [2]}, ["only"]],
                         ids=["list", "text", "map", "one"])
async def test_split_and_join_round_trip(value):
    frames, joined = await _through(value)
    assert joined.value == value
    kinds = {f.extra["part"]["kind"] for f in frames}
    assert kinds == {"list" if isinstance(value, list) else "text" if isinstance(value, str) else "map"}


async def test_split_items_carry_index_count_and_map_entries_as_pairs():
    frames, _ = await _through({"x": 1, "y": 2})
    assert [f.value for f in frames] == [{"key": "x", "value": 1}, {"key": "y", "value": 2}]
    assert [(f.extra["part"]["index"], f.extra["part"]["count"]) for f in frames] == [(0, 2), (1, 2)]
    frames, joined = await _through("a;b;c", {"separator": ";"})
    assert [f.value for f in frames] == ["a", "b", "c"] and joined.value == "a;b;c"


async def test_split_an_array_along_its_first_axis():
    async with run_task(Split) as run:
        await run.feed("in", np.arange(6, dtype=np.int16).reshape(3, 2))
        rows = [(await run.next("out")).value for _ in range(3)]
        assert [row.tolist() for row in rows] == [[0, 1], [2, 3], [4, 5]]


async def test_split_bounds_and_input_errors():
    async with run_task(Split, {"max_items": 3}) as run:
        await run.feed("in", list(range(10)))
        frames = [await run.next("out") for _ in range(3)]
        assert [f.value for f in frames] == [0, 1, 2] and frames[-1].extra["part"]["count"] == 3
        assert run.task.dropped() == 7
        for bad in (5, None, b"x"):
            await run.feed("in", bad)
        await run.feed("in", [])  # nothing to send, no error
        await run.feed("in", ["x"])
        assert (await run.next("out")).value == "x"
        assert run.task.in_metrics["in"].errors == 3


async def test_join_parts_drops_an_incomplete_value_or_sends_it_after_the_timeout():
    async with run_task(Split) as split:
        await split.feed("in", [1, 2, 3])
        first = [await split.next("out") for _ in range(3)]
        await split.feed("in", ["a", "b"])
        second = [await split.next("out") for _ in range(2)]
    async with run_task(Join) as join:
        for frame in [first[0], first[1], *second]:  # item 3 of the first value never comes
            await join.bus.publish(join.sources["in"], _payload(frame))
        assert (await join.next("out")).value == ["a", "b"]
        assert join.task.dropped() == 2
        await join.feed("in", "no part")
        await _until(lambda: join.task.in_metrics["in"].errors == 1, "an input error")
    async with run_task(Join, {"timeout_ms": 30}) as join:
        for frame in first[:2]:
            await join.bus.publish(join.sources["in"], _payload(frame))
        assert (await join.next("out")).value == [1, 2]


async def test_join_by_count_with_a_timeout():
    async with run_task(Join, {"mode": "count", "count": 3, "timeout_ms": 300}) as run:
        start = time.monotonic()
        for value in range(7):
            await run.feed("in", value, ts=100 + value)
        lists = [await run.next("out") for _ in range(2)]
        assert [(f.value, f.ts) for f in lists] == [([0, 1, 2], 102), ([3, 4, 5], 105)]
        assert (await run.next("out")).value == [6]  # the rest, at the timeout
        assert time.monotonic() - start >= 0.295


async def test_join_by_time_window_from_the_first_frame():
    async with run_task(Join, {"mode": "time", "interval_ms": 300}) as run:
        start = time.monotonic()
        for value in "abc":
            await run.feed("in", value)
        assert (await run.next("out")).value == ["a", "b", "c"]
        assert time.monotonic() - start >= 0.295
        await run.feed("in", "d")
        assert (await run.next("out")).value == ["d"]


async def test_join_by_key_keeps_the_newest_value_per_key():
    async with run_task(Join, {"mode": "key", "key_field": "room", "value_field": "temp", "min_keys": 2}) as run:
        await run.feed("in", {"room": "kitchen", "temp": 20})
        await run.feed("in", {"room": "hall", "temp": 18})
        assert (await run.next("out")).value == {"kitchen": 20, "hall": 18}  # not before two keys
        await run.feed("in", {"room": "kitchen", "temp": 21})
        assert (await run.next("out")).value == {"kitchen": 21, "hall": 18}
        for bad in ({"temp": 1}, {"room": [1], "temp": 1}, {"room": "x"}, 5):
            await run.feed("in", bad)
        await run.feed("in", {"room": 7, "temp": None})
        assert (await run.next("out")).value == {"kitchen": 21, "hall": 18, 7: None}
        assert run.task.in_metrics["in"].errors == 4


async def test_join_by_key_whole_values_and_a_bounded_map():
    async with run_task(Join, {"mode": "key", "value_field": "", "max_items": 2}) as run:
        for key in "abc":
            await run.feed("in", {"key": key, "n": 1})
        values = [(await run.next("out")).value for _ in range(3)]
        assert list(values[-1]) == ["b", "c"]  # "a", updated longest ago, made room
        assert values[-1]["c"] == {"key": "c", "n": 1}
        assert run.task.dropped() == 1


def test_join_and_batch_config_errors():
    assert Join.check({"mode": "count", "count": 20, "max_items": 10}) == [
        "config: count (20) is more than max_items (10) holds"]
    assert Batch.check({"count": 3, "overlap": 3}) == ["config: overlap (3) must be less than count (3)"]
    with pytest.raises(ConfigError, match="mode"):
        Join.validate_config({"mode": "merge"})


# -- batch ----------------------------------------------------------------------------------------------
async def test_batch_by_count_with_overlap_is_a_sliding_window():
    async with run_task(Batch, {"count": 3, "overlap": 2}) as run:
        for value in range(5):
            await run.feed("in", value)
        assert [(await run.next("out")).value for _ in range(3)] == [[0, 1, 2], [1, 2, 3], [2, 3, 4]]
    async with run_task(Batch, {"count": 2}) as run:
        for value in range(5):
            await run.feed("in", value)
        assert [(await run.next("out")).value for _ in range(2)] == [[0, 1], [2, 3]]


async def test_batch_by_time_sends_each_interval_and_bounds_what_it_holds():
    async with run_task(Batch, {"mode": "time", "interval_ms": 300, "max_items": 3}) as run:
        for value in range(5):
            await run.feed("in", value)
        assert (await run.next("out")).value == [2, 3, 4]  # the oldest two made room
        assert run.task.dropped() == 2
    async with run_task(Batch, {"mode": "time", "interval_ms": 20, "send_empty": True}) as run:
        assert (await run.next("out")).value == []


def test_held_is_bounded_by_count_and_bytes():
    held = Held(max_items=10, max_bytes=100)
    for k in range(5):
        held.put(k, "x" * 40)  # 42 bytes each in CBOR
    assert held.values() == ["x" * 40] * 2 and held.overflowed == 3 and held.bytes == 84
    held.put("big", "y" * 500)  # larger than the bound: kept alone
    assert held.items() == [("big", "y" * 500)] and held.overflowed == 5
    held.clear()
    assert len(held) == 0 and held.bytes == 0


async def _until(predicate, what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout} s"
        await asyncio.sleep(0.002)


@pytest.mark.parametrize("part", [
    {"id": "a", "index": 2, "count": 2, "kind": "list"},
    {"id": "a", "index": 0, "count": 10**6, "kind": "list"},
    {"id": "a", "index": -1, "count": 2, "kind": "list"},
    {"id": "a", "index": 0, "count": 2, "kind": "set"},
    {"id": "a", "index": 0, "count": 2, "kind": "text", "sep": 5},
    {"id": 5, "index": 0, "count": 2, "kind": "list"},
    {"id": "a", "index": True, "count": 2, "kind": "list"},
    [0, 2],
], ids=["index-beyond", "count-huge", "index-negative", "kind", "sep", "id", "bool-index", "not-a-map"])
async def test_join_refuses_a_malformed_part_field(part):
    from edge.frames import encode_frame

    async with run_task(Join) as run:
        await run.bus.publish(run.sources["in"], encode_frame(1, extra={"part": part}))
        await run.bus.publish(run.sources["in"], encode_frame("x", extra={"part": {"id": "b", "index": 0, "count": 1,
                                                                                     "kind": "list"}}))
        assert (await run.next("out")).value == ["x"]
        assert run.task.in_metrics["in"].errors == 1


@pytest.mark.parametrize(("kind", "items", "reason"), [
    ("text", ["a", 5], "the pieces of a split text are not all text"),
    ("map", [{"key": "a", "value": 1}, {"k": "b"}], "an item of a split map is not a {key, value} map"),
])
async def test_join_counts_items_that_do_not_make_the_value(kind, items, reason, caplog):
    from edge.frames import encode_frame

    async with run_task(Join) as run:
        for index, item in enumerate(items):
            extra = {"part": {"id": "g", "index": index, "count": len(items), "kind": kind, "sep": ","}}
            await run.bus.publish(run.sources["in"], encode_frame(item, extra=extra))
        await _until(lambda: run.task.in_metrics["in"].errors == 1, "an input error")
        assert run.frames("out") == []
    assert reason in caplog.text
