"""The per-deployment dashboard: the task library's controls and displays as live widgets, driven
by their retained views; the panel keeps no state, so a reload shows the same values."""

from __future__ import annotations

import base64

import pytest
from conftest import agents, element, panel, until
from nicegui import ElementFilter

from edge.graph import parse_spec

pytestmark = pytest.mark.parametrize("broker", ["mosquitto"], indirect=True)

HTML = "<img src=x onerror=alert(1)>"
SPEC = {"id": "dash", "tasks": [
    {"id": "level", "type": "slider", "config": {"label": HTML, "min_value": 0, "max_value": 10, "step": 0.5,
                                                  "default": 3}},
    {"id": "power", "type": "toggle", "config": {"label": "Power"}},
    {"id": "mode", "type": "radio_buttons", "config": {"label": "Mode", "options": ["slow", "fast", "halt"]}},
    {"id": "msg", "type": "text_input", "config": {"label": "Message"}},
    {"id": "bar", "type": "value_bar", "config": {"label": "Bar", "min_value": 0, "max_value": 10}},
    {"id": "light", "type": "status_display", "config": {"label": "Light", "levels": [
        {"min": 5, "text": "high", "color": "orange"}], "below_text": "low"}},
    {"id": "log", "type": "text_display", "config": {"label": "Log"}},
    {"id": "chart", "type": "plot", "config": {"label": "Chart"}},
    {"id": "n", "type": "numbers", "config": {"interval_ms": 200}},
    {"id": "driven", "type": "slider", "config": {"label": "Driven", "max_value": 1000}},
    {"id": "ghost", "type": "toggle", "agent": "nobody"}],  # pinned to an agent that is not there
    "edges": [{"from": "level.out", "to": "bar.in"}, {"from": "level.out", "to": "light.in"},
              {"from": "level.out", "to": "chart.a"}, {"from": "msg.out", "to": "log.in"},
              {"from": "n.out", "to": "driven.set"}]}



def text(user, marker):
    """The text of an element, or "" while it is not there (widgets appear on the dashboard's first tick)."""
    with user:
        found = list(ElementFilter(marker=marker, only_visible=False))
    return max(found, key=lambda e: e.id).text if found else ""


async def test_controls_and_displays_live_and_after_a_reload(user, panel_settings, tmp_path):
    async with agents(panel_settings, tmp_path, "a1"):
        await until(lambda: "slider" in panel().fleet.types() and "numbers" in panel().fleet.types(), "types")
        await panel().controller.deploy(parse_spec(SPEC))
        await user.open("/deployments/dash/dashboard")
        await user.should_see(marker="widget-level", retries=100)
        await until(lambda: text(user, "state-level") == "live", "the slider's view", 30)
        await user.should_see(HTML)  # the label, as text
        slider = element(user, "control-level")
        assert slider.value == 3 and (slider.props["min"], slider.props["max"], slider.props["step"]) == (0, 10, 0.5)
        await until(lambda: text(user, "state-light") == "live", "the light's view")

        # the slider sends its value; the task takes it, and every display wired to it follows
        slider.set_value(7)
        await until(lambda: _light_text(user) == "high (7)", "the light", 15)
        assert "7  (0 … 10)" in _bar_text(user)

        # a reload keeps everything: the views are retained, the panel holds no state
        await user.open("/deployments/dash/dashboard")
        await until(lambda: text(user, "state-level") == "live", "the slider's view after a reload")
        assert element(user, "control-level").value == 7
        await until(lambda: _light_text(user) == "high (7)", "the light after a reload")

        element(user, "control-power").set_value(True)
        element(user, "control-mode").set_value(2)
        element(user, "control-msg").set_value(f"hello {HTML}")
        user.find(marker="send-msg").click()
        await until(lambda: f"hello {HTML}" in _widget_labels(user, "log"), "the text display", 15)
        await user.open("/deployments/dash/dashboard")
        await until(lambda: text(user, "state-power") == "live" and text(user, "state-mode") == "live", "views")
        await until(lambda: element(user, "control-power").value is True, "the toggle after a reload")
        assert element(user, "control-mode").value == 2
        assert element(user, "control-mode").options == {0: "slow", 1: "fast", 2: "halt"}
        await until(lambda: _chart(user)["series"] and _chart(user)["series"][0]["data"], "the plot's points")

        assert text(user, "state-ghost") == "not running"
        # a control driven by the graph is shown, not set from here
        assert not element(user, "control-driven").enabled
        await user.should_see("set by n.out")
        await until(lambda: element(user, "control-driven").value > 0, "the driven slider moves")

        await panel().controller.remove("dash")
        await user.should_see("dash is not deployed: its dashboard shows once it runs", retries=100)


def _widget_labels(user, task):
    card = element(user, f"widget-{task}")
    return " ".join(getattr(e, "text", "") for e in card.descendants())


def _light_text(user):
    card = element(user, "widget-light")
    texts = [e.text for e in card.descendants() if hasattr(e, "text") and e.text and "(" in e.text]
    return texts[-1] if texts else ""


def _bar_text(user):
    return _widget_labels(user, "bar")


def _chart(user):
    from nicegui import ui

    card = element(user, "widget-chart")
    return next(e for e in card.descendants() if isinstance(e, ui.echart)).options


VIDEO_SPEC = {"id": "cam", "tasks": [
    {"id": "pattern", "type": "test_pattern", "config": {"width": 160, "height": 120, "rate": 10, "audio": False}},
    {"id": "view", "type": "video_viewer", "config": {"max_fps": 5, "max_width": 80}}],
    "edges": [{"from": "pattern.video", "to": "view.in"}]}


async def test_a_video_viewer_is_a_live_picture(user, panel_settings, tmp_path):
    pytest.importorskip("av")
    from edge.frames import encode_frame

    async with agents(panel_settings, tmp_path, "a1"):
        await until(lambda: {"test_pattern", "video_viewer"} <= set(panel().fleet.types()), "media types")
        await panel().controller.deploy(parse_spec(VIDEO_SPEC))
        await user.open("/deployments/cam/dashboard")
        await user.should_see(marker="widget-view", retries=100)
        await until(lambda: "pictures/s" in text(user, "picture-info-view"), "the first picture", 30)
        picture = element(user, "picture-view")
        assert picture.source.startswith("data:image/jpeg;base64,/9j/")  # FF D8 FF
        assert text(user, "picture-info-view").startswith("80x60 · ")  # scaled to max_width, aspect kept
        assert text(user, "state-view") == "live"
        first = picture.source
        await until(lambda: element(user, "picture-view").source != first, "a newer picture (the box moves)", 10)

        # the same deployment with the viewer alone: no pictures come, what the topic carries is shown
        # and what is not a picture is said and counted
        await panel().controller.deploy(parse_spec({"id": "cam", "tasks": [VIDEO_SPEC["tasks"][1]]}))
        await until(lambda: text(user, "state-view").startswith("no picture for"), "the pictures stopping", 15)
        topic = panel().controller.topics.stream("cam", "view", "view")
        await panel().bus.publish(topic, encode_frame("not a picture"))
        await until(lambda: text(user, "picture-info-view") == "not a JPEG image but str (1 bad so far)",
                    "the bad frame noticed", 10)
        await panel().bus.publish(topic, b"\xff\x00 not CBOR")
        await until(lambda: text(user, "picture-info-view").startswith("not a frame (2 bad so far): "),
                    "the bad payload noticed", 10)
        jpeg = base64.b64decode(first.split(",", 1)[1])
        await panel().bus.publish(topic, encode_frame(jpeg, extra={"width": 80, "height": 60}))
        await until(lambda: text(user, "state-view") == "live", "a picture again", 10)
        assert element(user, "picture-view").source == first
        await until(lambda: text(user, "state-view").startswith("no picture for"), "the viewer gone stale", 15)


async def test_an_invalid_view_is_said_on_its_card_and_counted(user, panel_settings, tmp_path):
    """Views are parsed by their kind's model (edge.protocol.ViewFrame): one that breaks it, is of another
    kind or is no frame at all is one line on its card, counted; a good one is drawn again after it."""
    from edge.frames import encode_frame

    spec = {"id": "bad", "tasks": [{"id": "sw", "type": "toggle", "agent": "nobody"}]}  # never runs: we feed it
    async with agents(panel_settings, tmp_path, "a1"):
        await until(lambda: "toggle" in panel().fleet.types(), "types")
        await panel().controller.deploy(parse_spec(spec))
        await user.open("/deployments/bad/dashboard")
        await user.should_see(marker="widget-sw", retries=100)
        topic = panel().controller.topics.stream("bad", "sw", "view")
        for n, (payload, why) in enumerate([
                (encode_frame({"kind": "toggle", "value": "yes"}), "not a toggle view: value.toggle.value: "),
                (encode_frame({"kind": "slider", "value": 1.0, "min": 0.0, "max": 2.0, "step": 0.0}),
                 "a slider view, not a toggle one"),
                (encode_frame([1, 2]), "not a toggle view: value: "),
                (b"\xff\x00 not CBOR", "not a frame: ")], start=1):
            await panel().bus.publish(topic, payload)
            await until(lambda n=n, why=why: text(user, "state-sw").startswith(f"invalid view ({n} so far): {why}"),
                        f"bad view {n} said", 10)
            assert "\n" not in text(user, "state-sw") and len(text(user, "state-sw")) <= 200
        assert element(user, "control-sw").value is False
        await panel().bus.publish(topic, encode_frame({"kind": "toggle", "label": "Switch", "value": True}))
        await until(lambda: element(user, "control-sw").value is True, "the good view drawn", 10)
        await user.should_see("Switch")  # its label, from the view
