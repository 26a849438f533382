"""The editor's palette (types by category, searchable, dropped onto the canvas, added by keyboard),
the help panel (of a palette type, of a node with its own ports and config), and inject (a value
typed on the Running view goes into an input of the running task, and out of it)."""

from __future__ import annotations

import asyncio

import pytest
from conftest import agents, new_deployment, panel, until
from nicegui import ElementFilter

from edge.bus import Bus
from edge.frames import decode_frame
from edge.graph import parse_spec
from ui.inject import default_kind, parse_value

pytestmark = pytest.mark.parametrize("broker", ["mosquitto"], indirect=True)


def newest(user, marker):
    return max(user.find(marker=marker).elements, key=lambda e: e.id)


def marked(user, marker):
    with user:
        return list(ElementFilter(marker=marker, only_visible=False))


def texts(user, marker):
    with user:
        return [getattr(e, "text", "") for e in newest(user, marker).descendants()]


def graph_nodes(user):
    return {n["id"]: n for n in newest(user, "graph").nodes}


async def test_palette_drop_keyboard_and_help(user, panel_settings, tmp_path):
    async with agents(panel_settings, tmp_path, "a1"):
        await until(lambda: "calculator" in panel().fleet.types() and "double" in panel().fleet.types(), "types")
        await new_deployment(user, "pal")
        await user.should_see(marker="type-calculator", retries=50)
        # grouped by category (ui_tasks.py's types name none: "other"), each row draggable with its type
        assert newest(user, "type-group-logic").visible and newest(user, "type-group-other").visible
        row = newest(user, "type-calculator")
        assert row.props["draggable"] == "true" and row.props["data-type"] == "calculator"
        assert row.props["tabindex"] == "0"
        assert any("dataTransfer.setData('application/x-edgetasks-type', 'calculator')" in (listener.js_handler or "")
                   for listener in row._event_listeners.values())

        # dropped on the canvas: a node whose head is centred where the mouse let go
        user.find(marker="graph").trigger("typedrop", {"type": "calculator", "x": 400, "y": 300})
        await until(lambda: "calculator1" in graph_nodes(user), "the dropped node")
        assert panel().drafts["pal"].positions["calculator1"] == (400 - 95, 300 - 18)
        node = graph_nodes(user)["calculator1"]
        assert (node["x"], node["y"]) == (305, 282)
        # what the browser could send otherwise adds nothing
        for hostile in ({"type": "nope", "x": 1, "y": 1}, {"type": "../x", "x": 1, "y": 1},
                        {"type": "double", "x": "NaN", "y": 1}, {"type": "double", "x": True, "y": 1},
                        {"type": ["double"], "x": 1, "y": 1}, "double", None):
            user.find(marker="graph").trigger("typedrop", hostile)
        assert user.notify.contains("no agent offers the task type 'nope'")
        assert set(graph_nodes(user)) == {"calculator1"}
        user.find(marker="graph").trigger("typedrop", {"type": "double", "x": 1e300, "y": -1e300})
        await until(lambda: "double1" in graph_nodes(user), "a node dropped far away")
        assert panel().drafts["pal"].positions["double1"] == (1_000_000 - 95, -1_000_000 - 18)

        # keyboard: Enter on a focused row adds its type; selecting it shows its help
        user.find(marker="type-words").trigger("keydown.enter")
        await until(lambda: "words1" in graph_nodes(user), "words1 added from the keyboard")
        user.find(marker="graph").trigger("select", {"kind": None, "id": None})
        user.find(marker="type-calculator").click()
        await until(lambda: newest(user, "help-title").text == "Help: Calculator", "the type's help")
        help_texts = texts(user, "help")
        assert "Compute a formula over number inputs, e.g. `a > 0 ? 5 : a * 2`: its inputs are its variables." \
            in help_texts
        assert newest(user, "help-inputs-a").text == "a: number"
        assert newest(user, "help-outputs-out").text == "out: number"
        assert "the formula; each of its variables is an input of that name" in help_texts
        assert "inputs (of the default config)" in help_texts
        user.find(marker="type-gate").trigger("keydown.space.prevent")  # Space selects, without adding
        await until(lambda: newest(user, "help-title").text == "Help: Gate", "the help of the type selected")
        assert "gate1" not in graph_nodes(user)

        # a node's help: its own ports, from its config, and the values it has
        user.find(marker="graph").trigger("select", {"kind": "node", "id": "calculator1"})
        await user.should_see("task calculator1")
        newest(user, "config-formula").set_value("p * q")
        await until(lambda: marked(user, "help-inputs-q"), "the node's own inputs in its help")
        help_texts = texts(user, "help")
        assert "inputs (this node's, from its config)" in help_texts and '= "p * q"' in help_texts
        assert not marked(user, "help-inputs-a")
        user.find(marker="graph").trigger("select", {"kind": "node", "id": "double1"})
        await until(lambda: newest(user, "help-title").text == "Help: Double", "the other node's help")
        assert "Doubles numbers." in texts(user, "help")
        assert "factor" in texts(user, "help-field-factor")


def test_typed_values_are_read_as_their_kind():
    assert parse_value(" 42 ", "number") == 42 and parse_value("2.5", "number") == 2.5
    assert parse_value("1e3", "number") == 1000.0
    assert parse_value("{\"a\": [1, true, null]}", "JSON") == {"a": [1, True, None]}
    assert parse_value("  spaced  ", "text") == "  spaced  "
    for text, kind, problem in [("forty", "number", "'forty' is not a number"),
                                ("nan", "number", "'nan' is not a finite number"),
                                ("inf", "number", "'inf' is not a finite number"),
                                ("{a:1}", "JSON", "not valid JSON"), ("NaN", "JSON", "NaN is not a JSON number"),
                                ("[" * 100_000, "JSON", "longer than"), ("[" * 60_000, "JSON", "nested too deeply"),
                                ("1", "yaml", "not 'yaml'")]:
        with pytest.raises(ValueError, match=problem):
            parse_value(text, kind)
    assert default_kind({"content": "number"}) == "number" and default_kind({"content": "text"}) == "text"
    assert default_kind({"any": True}) == "JSON" and default_kind(None) == "JSON"


async def test_inject_from_the_running_view_goes_through_the_task(user, panel_settings, tmp_path):
    spec = parse_spec({"id": "inj", "tasks": [
        {"id": "dbl", "type": "double", "config": {"factor": 3}},
        {"id": "calc", "type": "calculator", "config": {"formula": "a + 1"}}],
        "edges": [{"from": "dbl.out", "to": "calc.a"}]})
    async with agents(panel_settings, tmp_path, "a1"):
        await until(lambda: "calculator" in panel().fleet.types() and "double" in panel().fleet.types(), "types")
        topics = panel().controller.topics
        async with Bus(panel_settings.broker_url) as probe, \
                probe.subscribe(topics.stream("inj", "dbl", "out")) as dbl_out, \
                probe.subscribe(topics.stream("inj", "calc", "out")) as calc_out:
            await user.open("/deployments/inj")
            await user.should_see("inj is not deployed", retries=50)
            await panel().controller.deploy(spec)
            await until(lambda: len(panel().fleet.tasks_of("inj")) == 2
                        and all(s.state == "running" for s in panel().fleet.tasks_of("inj")), "running")
            await user.should_see("Click an input to inject a value into it", retries=50)

            # an unwired input: the dialog says so, reads a number input's value as a number
            user.find(marker="graph").trigger("port", {"task": "dbl", "port": "in", "side": "in"})
            await user.should_see("Inject into dbl.in")
            await user.should_see("not wired: the frame is all this input gets · expects number")
            assert newest(user, "inject-kind").value == "number"
            assert not marked(user, "inject-inspect")
            newest(user, "inject-value").set_value("seven")
            user.find(marker="inject-send").click()
            await user.should_see("not sent: 'seven' is not a number")
            newest(user, "inject-value").set_value("7")
            user.find(marker="inject-send").click()
            await user.should_see("sent 7 into dbl.in")
            async with asyncio.timeout(10):
                assert decode_frame((await dbl_out.get()).payload).value == 21
                assert decode_frame((await calc_out.get()).payload).value == 22  # on through the wire

            # a wired input: the frame goes to it alone (dbl does not see it), and its source can be inspected
            user.find(marker="inject-close").click()
            await until(lambda: not marked(user, "inject-dialog"), "the dialog closed")
            user.find(marker="graph").trigger("port", {"task": "calc", "port": "a", "side": "in"})
            await until(lambda: any("Inject into calc.a" in t for t in texts(user, "inject-dialog")), "its dialog")
            await user.should_see("wired: the frame goes to this input only")
            assert marked(user, "inject-inspect")
            newest(user, "inject-kind").set_value("JSON")
            newest(user, "inject-value").set_value("100")
            user.find(marker="inject-value").trigger("keydown.ctrl.enter")  # Ctrl+Enter sends too
            await user.should_see("sent 100 into calc.a")
            async with asyncio.timeout(10):
                assert decode_frame((await calc_out.get()).payload).value == 101
            assert dbl_out.queued == 0  # not published on the source's stream: its other readers see nothing

            # the editor of the deployed graph: a node's side panel has a button per input of the running task
            await user.open("/deployments/inj/edit")
            await user.should_see("Add a task", retries=50)
            user.find(marker="graph").trigger("select", {"kind": "node", "id": "dbl"})
            await user.should_see("inject into the running task:")
            user.find(marker="inject-in").click()
            await until(lambda: any("Inject into dbl.in" in t for t in texts(user, "inject-dialog")), "its dialog")
            newest(user, "inject-value").set_value("5")
            user.find(marker="inject-send").click()
            await user.should_see("sent 5 into dbl.in")
            async with asyncio.timeout(10):
                assert decode_frame((await dbl_out.get()).payload).value == 15

            # a task that stopped running cannot be injected into: one line, nothing sent
            await panel().controller.remove("inj")
            await until(lambda: "inj" not in panel().fleet.deployments, "removed")
            user.find(marker="inject-send").click()
            await user.should_see("not sent: inj is not deployed: there is nothing to inject into")


async def test_help_of_a_hostile_catalog_entry_is_text_and_never_breaks(user, panel_settings):
    from edge.frames import encode_value

    await user.open("/deployments")
    topics = panel().controller.topics
    entry = {"name": "weird", "label": "<b>Weird</b>", "category": "acme", "available": True,
             "description": "<img src=x onerror=alert(1)>",
             "inputs": {"in": {"content": {"nested": [1, 2]}}}, "config_default": [1, 2],
             "config_schema": {"properties": {"x": {"type": ["string", 5], "description": 7},
                                              "y": "not a schema"}, "required": "x"},
             "ports_from": [{"side": "inputs", "bad": True}]}
    async with Bus(panel_settings.broker_url) as bus:
        await bus.publish(topics.agent_state("acme1"), encode_value({"online": True, "epoch": 1}), qos=1, retain=True)
        await bus.publish(topics.agent_catalog("acme1"), encode_value({"agent": "acme1", "epoch": 1,
                                                                       "types": [entry]}), qos=1, retain=True)
        try:
            await until(lambda: "weird" in panel().fleet.types(), "the catalog")
            await new_deployment(user, "odd")
            await user.should_see(marker="type-weird", retries=50)
            assert newest(user, "type-group-acme").visible  # a package's own category is its group
            user.find(marker="type-weird").click()
            await until(lambda: newest(user, "help-title").text == "Help: <b>Weird</b>", "its help, as text")
            help_texts = texts(user, "help")
            assert "<img src=x onerror=alert(1)>" in help_texts
            assert newest(user, "help-inputs-in").text.startswith("in: ")
            user.find(marker="graph").trigger("typedrop", {"type": "weird", "x": 0, "y": 0})
            await until(lambda: "weird1" in graph_nodes(user), "the node")
            user.find(marker="graph").trigger("select", {"kind": "node", "id": "weird1"})
            await until(lambda: "node weird1" in " ".join(texts(user, "help")), "the node's help")
        finally:
            for topic in (topics.agent_state("acme1"), topics.agent_catalog("acme1")):
                await bus.publish(topic, b"", qos=1, retain=True)


def test_palette_groups_come_in_the_order_a_graph_is_built():
    from ui.type_picker import grouped

    types = {name: {"category": category} for name, category in [
        ("gpio_in", "hardware"), ("acme_x", "acme"), ("plain", ""), ("http_request", "integration"),
        ("slider", "dashboard"), ("gate", "logic"), ("delay", "timing"), ("zed", "Acme"), ("off", "logic")]}
    types["off"]["available"] = False
    assert grouped(types) == [("logic", ["gate"]), ("timing", ["delay"]), ("dashboard", ["slider"]),
                              ("integration", ["http_request"]), ("hardware", ["gpio_in"]),
                              ("acme", ["acme_x", "zed"]), ("other", ["plain"])]
