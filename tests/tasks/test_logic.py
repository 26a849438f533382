"""Gate, switch and SR latch on real brokers.

MQTT keeps order per topic only, so a test that changes a control and then sends data waits until
the control frame was taken (``processed``) before it sends, and proves that a frame was dropped
by sending a marker on the same topic after it: the next output must be the marker.
"""

from __future__ import annotations

import pytest
from task_harness import running

from edge.errors import ConfigError
from tasks.logic import Gate, SrLatch, Switch


async def control(h, port, value, count):
    await h.feed(port, value)
    await h.processed(port, count)


async def test_gate_passes_while_on_and_pauses_when_it_closes(broker):
    async with running(Gate, broker.url) as h:
        await h.feed("in", "a", ts=1)  # fail_mode open: passes before any control value
        assert (await h.next()).value == "a"
        await control(h, "control", 1, 1)
        await h.feed("in", "b", ts=2)
        out = await h.next()
        assert (out.value, out.ts, out.extra) == ("b", 2, {})
        await control(h, "control", 0, 2)
        pause = await h.next()
        assert pause.value is None and pause.extra == {"paused": True}
        await h.feed("in", "dropped")
        await control(h, "control", True, 3)
        await h.feed("in", "c")
        assert (await h.next()).value == "c"  # not "dropped"
        await h.feed("in", None, paused=True)  # pause frames pass while open
        assert (await h.next()).extra == {"paused": True}


async def test_gate_fail_mode_closed_and_a_bad_control(broker):
    async with running(Gate, broker.url, {"fail_mode": "closed", "pause_on_close": False}) as h:
        await h.feed("in", "dropped")
        await control(h, "control", 0.7, 1)
        await h.feed("in", "passes")
        assert (await h.next()).value == "passes"
        await control(h, "control", "on", 2)  # not a number: counted; the control is unknown: closed
        assert h.task.in_metrics["control"].errors == 1
        await h.feed("in", "dropped")
        await control(h, "control", None, 3)  # a pause frame: still unknown
        await h.feed("in", "dropped")
        await control(h, "control", 1, 4)
        await h.feed("in", "last")
        assert (await h.next()).value == "last"
        assert h.drain() == []


async def test_switch_selects_the_highest_control_above_half(broker):
    async with running(Switch, broker.url) as h:
        await h.feed("in0", "nothing selected")
        await control(h, "control0", 0.4, 1)  # not above 0.5: not selected
        await control(h, "control1", 1, 1)
        await control(h, "control2", 0.9, 1)
        await h.feed("in0", "x")
        await h.feed("in2", "x")
        await h.feed("in1", "one")
        assert (await h.next()).value == "one"
        await control(h, "control2", 2, 2)
        await h.feed("in1", "x")
        await h.feed("in2", "two")
        assert (await h.next()).value == "two"
        await control(h, "control2", None, 3)  # paused: out of the choice; in1 is back
        await h.feed("in1", "one again")
        assert (await h.next()).value == "one again"
        await control(h, "control1", "x", 2)  # bad: counted, out of the choice; nothing selected
        assert h.task.in_metrics["control1"].errors == 1
        pause = await h.next()
        assert pause.value is None and pause.extra == {"paused": True}
        await control(h, "control3", 1, 1)
        await h.feed("in1", "x")
        await h.feed("in3", "three")
        assert (await h.next()).value == "three"


async def test_switch_ties_go_to_the_lowest_input(broker):
    async with running(Switch, broker.url, {"pause_on_none": False}) as h:
        await control(h, "control3", 1, 1)
        await control(h, "control1", 1, 1)
        await h.feed("in3", "x")
        await h.feed("in1", "one")
        assert (await h.next()).value == "one"


async def test_sr_latch_sets_resets_and_holds(broker):
    async with running(SrLatch, broker.url) as h:
        steps = [("set", 1, 1), ("set", 0, 1), ("reset", 1, 0), ("set", 1, 0), ("reset", 0, 1), ("reset", 0.2, 1),
                 ("set", 0, 1), ("reset", 1, 0)]
        for port, value, expected in steps:  # one at a time: the order across the two inputs matters
            await h.feed(port, value, ts=5)
            out = await h.next()
            assert (out.value, out.ts) == (expected, 5), (port, value)
        await h.feed("set", "high")
        await h.errors("set", 1)
        await h.feed("set", None, paused=True)
        await h.feed("set", 1)
        assert (await h.next()).value == 0  # still running; set and reset both on: it holds


async def test_sr_latch_emits_changes_only(broker):
    async with running(SrLatch, broker.url, {"initial": True, "emit": "changes"}) as h:
        await h.feed("set", 1)
        await h.processed("set", 1)
        await h.feed("reset", 1)
        await h.processed("reset", 1)
        await h.feed("set", 0)
        await h.processed("set", 2)
        await h.feed("reset", 0)
        await h.processed("reset", 2)
        await h.feed("set", 1)
        assert await h.values(2) == [0, 1]


def test_configs_are_checked():
    with pytest.raises(ConfigError, match="fail_mode"):
        Gate.validate_config({"fail_mode": "ajar"})
    with pytest.raises(ConfigError, match="emit"):
        SrLatch.validate_config({"emit": "sometimes"})
    assert SrLatch.type_name == "sr_latch" and Switch.describe()["inputs"]["control3"] == {"content": "number"}
