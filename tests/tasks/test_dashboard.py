"""Dashboard controls and displays on real brokers, through the panel's side of the contract:
frames on the panel topic in, the retained view out."""

from __future__ import annotations

import math
import time

import pytest
from task_harness import running

from edge.bus import Bus
from edge.errors import ConfigError
from edge.frames import decode_frame, encode_frame
from tasks.controls import RadioButtons, Slider, TextInput, Toggle
from tasks.displays import Plot, StatusDisplay, TextDisplay, ValueBar


async def panel_set(h, value) -> None:
    """What the panel does: a frame on the control's panel topic."""
    await h.bus.publish(h.topics.stream("d", "t", "set"), encode_frame(value))


async def probe_round_trip(bus, topic: str) -> None:
    """After this, the broker has sent this connection everything it queued before (retained messages too)."""
    async with bus.subscribe(topic) as sub:
        await bus.publish(topic, b"probe", qos=1)
        await sub.get()


async def view_where(h, predicate) -> dict:
    """The first live view that satisfies ``predicate`` (views are throttled: some states are skipped)."""
    while not predicate(view := (await h.next("view")).value):
        pass
    return view


async def reloaded_view(h) -> dict:
    """What a panel that (re)loads gets: the retained view."""
    async with Bus(str(h.bus.url)) as bus, bus.subscribe(h.topics.stream("d", "t", "view")) as sub:
        message = await sub.get()
        assert message.retain
        return decode_frame(message.payload).value


async def test_slider_from_the_panel(broker):
    config = {"label": "speed", "min_value": -1, "max_value": 1, "step": 0.25, "default": 0.5, "repeat_ms": 0}
    async with running(Slider, broker.url, config, wired=[]) as h:
        assert h.sources["set"] == h.topics.stream("d", "t", "set")  # unwired: the panel topic
        assert (await h.next()).value == 0.5
        assert (await h.next("view")).value == {"kind": "slider", "label": "speed", "value": 0.5, "min": -1,
                                                "max": 1, "step": 0.25}
        for sent, expected in [(0.3, 0.25), (-0.9, -1.0), (7, 1.0), (0.13, 0.25), (False, 0.0)]:
            await panel_set(h, sent)
            assert (await h.next()).value == expected
        await view_where(h, lambda v: v["value"] == 0.0)
        assert (await reloaded_view(h))["value"] == 0.0
        await panel_set(h, "fast")  # counted, ignored
        await panel_set(h, float("inf"))
        await h.errors("set", 2)
        await panel_set(h, -0.5)
        assert (await h.next()).value == -0.5
    async with Bus(str(broker.url)) as bus, bus.subscribe(h.topics.stream("d", "t", "view")) as sub:
        await probe_round_trip(bus, h.topics.stream("d", "t", "probe"))
        assert sub.queued == 0  # cleared when the task stopped: nothing retained


async def test_a_wired_set_replaces_the_panel_topic_and_values_repeat(broker):
    async with running(Toggle, broker.url, {"repeat_ms": 20}) as h:
        assert h.sources["set"] == h.topics.stream("d", "src", "set")
        assert await h.values(3) == [0, 0, 0]  # repeated
        await h.feed("set", 1)
        while (await h.next()).value == 0:
            pass
        assert await h.values(2) == [1, 1]
        await view_where(h, lambda v: v["value"])
        view = await reloaded_view(h)
        assert view == {"kind": "toggle", "label": "", "value": True}
        await h.feed("set", "on")
        await h.errors("set", 1)


async def test_radio_buttons(broker):
    config = {"label": "mode", "options": ["off", "auto", "manual"], "default": 1, "repeat_ms": 0}
    async with running(RadioButtons, broker.url, config, wired=[]) as h:
        assert [(await h.next(p)).value for p in ("index", "label", "opt0", "opt1", "opt2")] == [1, "auto", 0, 1, 0]
        assert "opt3" not in h.task.out_metrics  # an output per option
        await panel_set(h, "manual")
        assert [(await h.next(p)).value for p in ("index", "label", "opt2", "opt1")] == [2, "manual", 1, 0]
        await panel_set(h, 0)
        assert (await h.next("label")).value == "off"
        for bad in (3, 1.5, "none", -1):
            await panel_set(h, bad)
        await h.errors("set", 4)
        await view_where(h, lambda v: v["selected"] == 0)
        assert (await reloaded_view(h)) == {"kind": "radio_buttons", "label": "mode",
                                            "options": ["off", "auto", "manual"], "selected": 0}


async def test_text_input(broker):
    async with running(TextInput, broker.url, {"max_length": 5}, wired=[]) as h:
        assert (await h.next("view")).value["value"] == ""  # the empty default is not sent on out
        await panel_set(h, "   ")
        await panel_set(h, "hello")
        assert (await h.next()).value == "hello"
        await panel_set(h, "too long")
        await panel_set(h, 5)
        await h.errors("set", 2)
        await panel_set(h, "bye")
        assert (await h.next()).value == "bye"
        await view_where(h, lambda v: v["value"] == "bye")
        assert (await reloaded_view(h))["value"] == "bye"


async def test_status_display(broker):
    levels = [{"min": 0, "text": "low", "color": "#ff0"}, {"min": 10, "text": "ok", "color": "green"}]
    config = {"levels": levels, "below_text": "negative", "below_color": "#f00", "refresh_ms": 10}
    async with running(StatusDisplay, broker.url, config) as h:
        assert (await h.next("view")).value == {"kind": "status_display", "label": "", "value": None, "text": "",
                                                "color": None}
        for value, text, color in [(5, "low", "#ff0"), (10, "ok", "green"), (-1, "negative", "#f00")]:
            await h.feed("in", value)
            view = await view_where(h, lambda v, value=value: v["value"] == value)
            assert (view["text"], view["color"]) == (text, color)
        await h.feed("in", "high")
        await h.errors("in", 1)


async def test_text_display(broker):
    async with running(TextDisplay, broker.url, {"separator": " | ", "max_length": 12, "refresh_ms": 10}) as h:
        await h.next("view")
        for i, text in enumerate(["one", "two", "three"]):
            await h.feed("in", text)
            await h.processed("in", i + 1)
        await view_where(h, lambda v: v["text"] == " two | three")  # "one | two | three", the last 12
        assert (await reloaded_view(h))["text"] == " two | three"
        await h.feed("in", 3)
        await h.errors("in", 1)
    async with running(TextDisplay, broker.url, {"append": False, "refresh_ms": 10}) as h:
        await h.feed("in", "a")
        await h.processed("in", 1)
        await h.feed("in", "b")
        await h.until(lambda: h.task.shown == "b", "the latest text")


async def test_value_bar(broker):
    config = {"min_value": 10, "max_value": 20, "default": 15, "color": "orange", "refresh_ms": 10}
    async with running(ValueBar, broker.url, config) as h:
        assert (await h.next("view")).value["fraction"] == 0.5
        for value, fraction in [(12.5, 0.25), (30, 1.0), (0, 0.0)]:
            await h.feed("in", value)
            view = await view_where(h, lambda v, value=value: v["value"] == value)
            assert (view["fraction"], view["color"], view["direction"]) == (fraction, "orange", "vertical")


async def test_plot_keeps_a_bounded_window(broker):
    config = {"labels": {"a": "temperature"}, "window_s": 1, "max_points": 3, "refresh_ms": 10}
    async with running(Plot, broker.url, config, wired=["a", "b"]) as h:
        first = (await h.next("view")).value
        assert [s["input"] for s in first["series"]] == ["a", "b"] and first["window_ms"] == 1000
        for ts, value in [(1000, 1), (1500, 2), (1700, 3), (1800, 4)]:
            await h.feed("a", value, ts=ts)
        await h.processed("a", 4)
        await h.feed("b", 9, ts=2600)  # 1 s after 1600: a's points before 1600 go
        await h.processed("b", 1)
        await view_where(h, lambda v: len(v["series"][1]["points"]) == 1)
        view = await reloaded_view(h)
        series = {s["input"]: s for s in view["series"]}
        # 1 s in 3 slices of 333 ms: 1700 and 1800 fall in one, which holds their mean at the newer time
        assert series["a"]["label"] == "temperature" and series["a"]["points"] == [[1800, 3.5]]
        assert series["b"]["points"] == [[2600, 9.0]]
        await h.feed("a", float("nan"))
        await h.errors("a", 1)


def test_a_plot_keeps_an_hour_whole_in_bounded_points():
    """An hour at 10 values a second: 300 points span the whole hour, each the mean of its slice."""
    from edge.frames import Frame

    plot = Plot({"window_s": 3600, "max_points": 300})
    for i in range(36_000):
        assert plot.update("a", Frame(value=float(i % 2), ts=1_000_000 + i * 100))
    points = plot.view().series[0].points
    assert 299 <= len(points) <= 300
    assert points[0][0] - 1_000_000 <= 2 * 12_000 and points[-1][0] == 1_000_000 + 35_999 * 100
    assert all(p[1] == 0.5 for p in points[1:-1])  # 120 alternating 0 and 1 per slice of 12 s
    assert [p[0] for p in points] == sorted(p[0] for p in points)


async def test_views_are_rate_limited(broker):
    async with running(ValueBar, broker.url, {"refresh_ms": 200}) as h:
        await h.next("view")
        started = time.monotonic()
        for i in range(50):
            await h.feed("in", i / 100)
        await h.processed("in", 50)
        await h.until(lambda: h.task.value == 0.49, "the last value")
        # the first view, then one per 200 ms at most, however long the 50 inputs took to arrive
        assert h.task.out_metrics["view"].frames <= 2 + math.ceil((time.monotonic() - started) / 0.2)


def test_catalog_marks_dashboard_types():
    for task_type, kind in [(Slider, "slider"), (Toggle, "toggle"), (RadioButtons, "radio_buttons"),
                            (TextInput, "text_input"), (StatusDisplay, "status_display"),
                            (TextDisplay, "text_display"), (ValueBar, "value_bar"), (Plot, "plot")]:
        entry = task_type.describe()
        assert entry["dashboard"] == kind == task_type.type_name
        assert entry["outputs"]["view"] == {"content": "view", "retained": True}


def test_configs_are_checked():
    for task_type, bad, message in [
        (Slider, {"min_value": 1, "max_value": 1}, "below max_value"), (Slider, {"default": 5}, "between"),
        (Slider, {"step": -1}, "step"), (RadioButtons, {"options": []}, "at least 1"),
        (RadioButtons, {"options": ["a", "a"]}, "distinct"), (RadioButtons, {"options": ["a"], "default": 1}, "index"),
        (RadioButtons, {"options": [f"o{k}" for k in range(33)]}, "at most 32"),
        (StatusDisplay, {"below_color": "red;"}, "color"),
        (ValueBar, {"color": "url(x)"}, "color"), (Plot, {"labels": {"q": "x"}}, "unknown inputs"),
        (Plot, {"series": ["a", "a"]}, "distinct"), (Plot, {"series": ["a b"]}, "a name is"),
        (Toggle, {"repeat_ms": -1}, "repeat_ms"), (TextDisplay, {"refresh_ms": 1}, "refresh_ms"),
        # what a view could not carry (edge.protocol.PlotView) is refused here, not when the view goes out
        (Plot, {"labels": {"a": "x" * 201}}, "200 characters"), (Plot, {"y_min": math.inf}, "finite"),
    ]:
        with pytest.raises(ConfigError, match=message):
            task_type.validate_config(bad)


def test_views_are_their_kinds_models_at_the_bounds_their_configs_allow():
    """publish_view sends ``view().dump()``: each kind's model of edge.protocol, valid at the largest configs."""
    from edge.frames import decode_value
    from edge.protocol import ViewFrame

    biggest = [(Slider, {"label": "l" * 200, "min_value": -1e308, "max_value": 1e308, "default": 1e308}),
               (RadioButtons, {"options": [f"{k}" * 200 for k in range(10)] + [f"o{k}" for k in range(22)],
                               "default": 31}),
               (TextInput, {"default": "t" * 10_000}), (Toggle, {}),
               (StatusDisplay, {"levels": [{"min": 0, "text": "s" * 200, "color": "#abcdef"}]}),
               (TextDisplay, {"max_length": 100_000}), (ValueBar, {"min_value": -1e308, "max_value": 1e308}),
               (Plot, {"series": [f"s{k}" for k in range(32)], "labels": {"s0": "p" * 200}, "max_points": 10_000,
                       "y_min": -1e308})]
    for task_type, config in biggest:
        task = task_type(config)
        if isinstance(task, StatusDisplay | ValueBar):
            task.value = 1e308
        if isinstance(task, Plot):
            task.points["s0"].extend((t, 1.0, 1) for t in range(10_000))
        view = task.view()
        frame = decode_value(encode_frame(view.dump(), ts=1, seq=0))
        assert ViewFrame.model_validate(frame).value == view, task_type.kind
