"""The editor and dashboard look finished (issue 17, part 5): topic nodes, where new nodes go and
what their subtitle says, config fields with their names and descriptions, the type picker and
the Task types page, the text display's order, and the refusal toasts."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import agents, new_deployment, panel, until
from nicegui import ElementFilter, ui

from edge.bus import Bus
from edge.frames import encode_value
from edge.graph import parse_spec
from ui.display_text import newest_first
from ui.graph_view import node_box, node_height
from ui.io_text import io_text
from ui.refusal import notify_refused, refused_text
from ui.viewport import NODE_HEIGHT, NODE_WIDTH, Viewport

pytestmark = pytest.mark.parametrize("broker", ["mosquitto"], indirect=True)

DOCS = Path(__file__).parents[2] / "docs"


def getting_started_graph() -> str:
    """The ``graph.yaml`` of docs/getting-started.md, as a reader saves it."""
    text = (DOCS / "getting-started.md").read_text()
    block = text.split("<!-- file: graph.yaml -->", 1)[1]
    return block.split("```yaml\n", 1)[1].split("```", 1)[0]


def marked(user, marker):
    with user:
        return list(ElementFilter(marker=marker, only_visible=False))


def newest(user, marker):
    return max(marked(user, marker), key=lambda e: e.id)


def mark(element):
    return element._markers[0] if element._markers else ""


def graph(user):
    return newest(user, "graph")


def nodes(user):
    return {n["id"]: n for n in graph(user).nodes}


async def import_yaml(user, text):
    user.find(marker="open-import").click()
    newest(user, "yaml").set_value(text)
    user.find(marker="import-yaml").click()
    await until(lambda: not marked(user, "yaml"), "the closed dialog to go")


def pick(user, type_name):
    newest(user, f"type-{type_name}")  # it is listed
    user.find(marker=f"type-{type_name}").click()
    user.find(marker="add").click()


async def test_topic_edges_are_nodes_made_and_removed_in_the_editor(user, panel_settings, tmp_path):
    async with agents(panel_settings, tmp_path, "a1"):
        await until(lambda: "double" in panel().fleet.types(), "types")
        await new_deployment(user, "first")
        await import_yaml(user, getting_started_graph())
        assert user.notify.contains("imported 2 tasks and 2 wires")
        # every wire is drawn: the topic end is a node of its own
        shown = nodes(user)
        assert set(shown) == {"tick", "double", "topic:sensors/doubled"}
        assert shown["topic:sensors/doubled"]["kind"] == "topic"
        assert sorted(e["key"] for e in graph(user).edges) == [
            "double.out->topic:sensors/doubled", "tick.out->double.x"]

        # a topic node from the UI, wired from it and to it
        user.find(marker="add-topic-name").type("sensors/in")
        user.find(marker="add-topic").click()
        await user.should_see("topic sensors/in")
        assert "topic:sensors/in" in nodes(user) and panel().drafts["first"].topics == ["sensors/in"]
        pick(user, "double")
        user.find(marker="graph").trigger("connect", {"from": "topic:sensors/in", "to": "double1.in"})
        user.find(marker="graph").trigger("connect", {"from": "double1.out", "to": "topic:sensors/doubled"})
        user.find(marker="graph").trigger("connect", {"from": "double1.out", "to": "topic:sensors/doubled"})
        await user.should_see("double1.out → topic:sensors/doubled is wired already")
        keys = {e["key"] for e in graph(user).edges}
        assert {"topic:sensors/in->double1.in", "double1.out->topic:sensors/doubled"} <= keys
        assert len(keys) == len(panel().drafts["first"].edges) == 4
        spec = panel().drafts["first"].to_spec()
        assert spec.sources("double1", panel().controller.topics) == {"in": "sensors/in"}

        # a filter only feeds inputs; a publish to it is refused, with the reason listed once
        user.find(marker="add-topic-name").type("topic:sensors/+")
        user.find(marker="add-topic").click()
        assert nodes(user)["topic:sensors/+"]["inputs"] == []
        user.find(marker="graph").trigger("connect", {"from": "double1.out", "to": "topic:sensors/+"})
        await user.should_see("refused: double1.out → topic:sensors/+")
        user.find(marker="add-topic-name").type("a/#/b")
        user.find(marker="add-topic").click()
        assert user.notify.contains("not a topic")
        assert "topic:a/#/b" not in nodes(user)

        # removing a topic node removes its wires
        user.find(marker="graph").trigger("select", {"kind": "node", "id": "topic:sensors/doubled"})
        await user.should_see("double1.out → topic:sensors/doubled")
        user.find(marker="remove-topic").click()
        assert "topic:sensors/doubled" not in nodes(user)
        assert {e["key"] for e in graph(user).edges} == {"tick.out->double.x", "topic:sensors/in->double1.in"}
        assert user.notify.contains("removed topic sensors/doubled and its 2 wires")
        # deleting its last wire keeps a topic node; removing it takes it away
        user.find(marker="graph").trigger("select", {"kind": "edge", "id": "topic:sensors/in->double1.in"})
        user.find(marker="delete-wire").click()
        assert "topic:sensors/in" in nodes(user) and "topic:sensors/in->double1.in" not in {
            e["key"] for e in graph(user).edges}
        # an unwired topic node goes too
        user.find(marker="graph").trigger("select", {"kind": "node", "id": "topic:sensors/+"})
        user.find(marker="remove-topic").click()
        assert "topic:sensors/+" not in nodes(user) and panel().drafts["first"].topics == ["sensors/in"]
        assert panel().drafts["first"].to_spec().edges[0].to_dict() == {"from": "tick.out", "to": "double.x"}


async def test_running_view_draws_topic_nodes(user, panel_settings, tmp_path):
    async with agents(panel_settings, tmp_path, "a1"):
        await until(lambda: "numbers" in panel().fleet.types(), "types")
        spec = parse_spec({"id": "tv", "tasks": [{"id": "n", "type": "numbers"}, {"id": "d", "type": "double"}],
                           "edges": [{"from": "topic:in/x", "to": "d.in"},
                                     {"from": "n.out", "to": "topic:out/y"}]})
        await panel().controller.deploy(spec)
        await user.open("/deployments/tv")
        await until(lambda: marked(user, "graph") and len(graph(user).nodes) == 4, "the graph", 20)
        shown = nodes(user)
        assert {k for k, n in shown.items() if n["kind"] == "topic"} == {"topic:in/x", "topic:out/y"}
        assert len(graph(user).edges) == 2
        # n was placed by the controller, not pinned: only then the subtitle says so
        assert shown["n"]["subtitle"] == "numbers @ a1"  # no draft: nothing says it was unpinned
        # a topic node's dot opens the inspector of that topic: n.out is published there too
        user.find(marker="graph").trigger("topic", {"topic": 5})  # not what the browser sends: ignored
        assert not marked(user, "inspector-stats")
        user.find(marker="graph").trigger("topic", {"topic": "out/y"})
        await user.should_see("topic out/y")
        await until(lambda: newest(user, "inspector-last").text.startswith("last value: "), "a frame on out/y")
        user.find(marker="inspector-close").click()
        await panel().controller.remove("tv")


async def test_new_nodes_go_to_the_visible_centre_and_placed_only_once_placed(user, panel_settings, tmp_path):
    async with agents(panel_settings, tmp_path, "a1"):
        await until(lambda: "numbers" in panel().fleet.types(), "types")
        await new_deployment(user, "where")
        # the browser reports the visible centre of the canvas, in graph coordinates
        user.find(marker="graph").trigger("view", {"x": 2000, "y": 1500, "width": 900, "height": 600})
        pick(user, "numbers")
        pick(user, "double")
        pick(user, "double")
        shown = nodes(user)
        spots = [(shown[i]["x"], shown[i]["y"]) for i in ("numbers1", "double1", "double2")]
        assert spots[0] == (2000 - NODE_WIDTH // 2, 1500 - node_height(0, 1) // 2)  # the first: at the centre
        boxes = [node_box(shown[i]) for i in ("numbers1", "double1", "double2")]
        assert not overlap(boxes[0], boxes[1]) and not overlap(boxes[0], boxes[2]) and not overlap(*boxes[1:])
        for x, y, w, h in boxes:  # all inside the visible area
            assert x >= 2000 - 450 and x + w <= 2000 + 450 and y >= 1500 - 300 and y + h <= 1500 + 300
        # nothing is placed yet: no "(placed)"
        assert shown["numbers1"]["subtitle"] == "numbers · any agent"
        user.find(marker="graph").trigger("select", {"kind": "node", "id": "double2"})
        newest(user, "run-on").set_value("a1")
        assert nodes(user)["double2"]["subtitle"] == "double @ a1"
        user.find(marker="deploy").click()
        await until(lambda: "where" in panel().fleet.deployments, "the deployment")
        await until(lambda: nodes(user)["numbers1"]["subtitle"] == "numbers @ a1 (placed)", "the placed subtitle")
        assert nodes(user)["double2"]["subtitle"] == "double @ a1"  # pinned, not placed
        # the running view says the same
        await user.open("/deployments/where")
        await until(lambda: marked(user, "graph") and nodes(user).get("numbers1", {}).get("subtitle")
                    == "numbers @ a1 (placed)", "the running view's subtitle")
        assert nodes(user)["double2"]["subtitle"] == "double @ a1"
        await panel().controller.remove("where")


def overlap(a, b) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def test_viewport_spots_stay_visible_and_apart():
    view = Viewport()
    assert view.spot([]) is None  # unknown until the browser reports
    view.update(0, 0, 1000, 700)
    taken = [(-95, -42, NODE_WIDTH, NODE_HEIGHT)]  # something at the centre already
    for _ in range(8):
        spot = view.spot(taken)
        assert spot is not None
        box = (*spot, NODE_WIDTH, NODE_HEIGHT)
        assert not any(overlap(box, other) for other in taken), (box, taken)
        assert spot[0] >= -500 and spot[0] + NODE_WIDTH <= 500 and spot[1] >= -350 and spot[1] + NODE_HEIGHT <= 350
        taken.append(box)
    crowded = Viewport(0, 0, 200, 100)  # no room left in view: still a free place, next to it
    spot = crowded.spot([(-150, -100, 300, 200)])
    assert spot is not None and not overlap((*spot, NODE_WIDTH, NODE_HEIGHT), (-150, -100, 300, 200))


async def test_type_picker_grouped_described_and_searchable(user, panel_settings, tmp_path):
    async with agents(panel_settings, tmp_path, "a1"):
        await until(lambda: "slider" in panel().fleet.types() and "numbers" in panel().fleet.types(), "types")
        await new_deployment(user, "pick")
        await user.should_see(marker="type-double", retries=50)
        groups = [e.text for e in marked(user, "type-group-logic") + marked(user, "type-group-dashboard")
                  + marked(user, "type-group-other")]
        assert groups == ["logic", "dashboard", "other"]  # ui_tasks.py's types name no category: "other"
        with user:
            listing = newest(user, "type-list")
            order = [e for e in listing.descendants() if e.props.get("role") == "option"
                     or "text-overline" in e.classes]
        names = [mark(e) for e in order]
        assert names.index("type-group-logic") < names.index("type-calculator") < names.index("type-group-timing")
        assert names.index("type-group-other") < names.index("type-double")
        with user.scope(marker="type-double"):
            await user.should_see("Doubles numbers.")  # the description, under the name
        # search: every word must match name, label, description or category
        user.find(marker="add-type").type("doubles")
        await user.should_see("1 of")
        visible = [e for e in marked(user, "type-list")[0].descendants() if e.props.get("role") == "option"
                   and e.visible]
        assert [mark(e) for e in visible] == ["type-double"]
        assert not newest(user, "type-group-logic").visible and newest(user, "type-group-other").visible
        newest(user, "add-type").set_value("dashboard")
        visible = {mark(e) for e in marked(user, "type-list")[0].descendants()
                   if e.props.get("role") == "option" and e.visible}
        assert {"type-slider", "type-plot", "type-text_display"} <= visible and "type-double" not in visible
        # Enter with one match left adds it
        user.find(marker="add-type").clear().type("says word").trigger("keydown.enter")
        await until(lambda: "words1" in nodes(user), "words1 added")


async def test_config_fields_show_their_name_and_description(user, panel_settings, tmp_path):
    async with agents(panel_settings, tmp_path, "a1"):
        await until(lambda: "numbers" in panel().fleet.types(), "types")
        await new_deployment(user, "form")
        pick(user, "numbers")
        await user.should_see("task numbers1")
        assert newest(user, "config-interval_ms").props["hint"] == "interval_ms · time between two numbers"
        assert newest(user, "config-start").props["hint"] == "start"  # no description in the schema: the name
        pick(user, "double")
        await user.should_see("task double1")
        assert newest(user, "config-factor").props["hint"] == "factor"
        assert newest(user, "config-help-enabled").text == "enabled"  # a switch has no hint: a caption under it


def test_io_metadata_reads_as_text():
    assert io_text({"content": "video", "codec": "h264", "packets": True}) == "video · codec h264 · packets"
    assert io_text({"content": "audio", "rate": 48000.0, "planar": False}) == "audio · no planar · rate 48000"
    assert io_text({"content": ["text", "number"]}) == "text or number"
    assert io_text({}) == "any" and io_text(None) == "any"


async def test_types_page_compact_searchable_with_readable_metadata(user, panel_settings, tmp_path):
    topics = None
    async with agents(panel_settings, tmp_path, "a1"):
        await user.open("/types")
        topics = panel().controller.topics
        async with Bus(panel_settings.broker_url) as bus:
            await bus.publish(topics.agent_state("cam"), encode_value({"online": True, "epoch": 1}), qos=1,
                              retain=True)
            await bus.publish(topics.agent_catalog("cam"), encode_value({"agent": "cam", "epoch": 1, "types": [
                {"name": "h264_source", "label": "H.264 source", "category": "media",
                 "description": "Encoded video.", "available": True,
                 "outputs": {"video": {"content": "video", "codec": "h264", "packets": True}}}]}),
                qos=1, retain=True)
            await user.should_see(marker="type-h264_source", retries=200)
            await user.should_see(marker="type-slider", retries=200)
            with user.scope(marker="type-h264_source"):
                await user.should_see("video: video · codec h264 · packets")  # not packets=True
                await user.should_see("Encoded video.")
            with user:
                texts = [getattr(e, "text", "") for e in ElementFilter(kind=ui.label, only_visible=False)]
            assert not [t for t in texts if re.search(r"\w=(True|False)\b", t)], "Python reprs on the page"
            # grouped by category
            assert newest(user, "types-group-media").visible and newest(user, "types-group-dashboard").visible
            # search: by category too
            user.find(marker="search").type("media")
            await until(lambda: not newest(user, "type-slider").visible, "the filter applied")
            found = re.fullmatch(r"(\d+) of (\d+) types", newest(user, "types-count").text)
            assert found and 1 <= int(found[1]) < int(found[2]), found  # the media types, not all of them
            assert newest(user, "type-h264_source").visible and not newest(user, "type-slider").visible
            assert not newest(user, "types-group-dashboard").visible
            user.find(marker="search").clear()
            await until(lambda: newest(user, "type-slider").visible, "the list back")
            for topic in (topics.agent_state("cam"), topics.agent_catalog("cam")):
                await bus.publish(topic, b"", qos=1, retain=True)


def test_text_display_newest_first():
    assert newest_first("one\ntwo\nthree", {}) == ("three\ntwo\none", True)
    assert newest_first("one -- two", {"separator": " -- "}) == ("one -- two", False)  # scrolled to its end
    assert newest_first("a\n\nb", {"separator": "\n\n"}) == ("b\na", True)
    assert newest_first("only", {"append": False}) == ("only", False)
    assert newest_first("x\ny", {"separator": 5}) == ("y\nx", True)  # a hostile config: the default


async def test_text_display_on_the_dashboard_shows_the_newest_on_top(user, panel_settings, tmp_path):
    spec = parse_spec({"id": "txt", "tasks": [
        {"id": "msg", "type": "text_input", "config": {"label": "Message"}},
        {"id": "log", "type": "text_display", "config": {"label": "Log"}}],
        "edges": [{"from": "msg.out", "to": "log.in"}]})
    async with agents(panel_settings, tmp_path, "a1"):
        await until(lambda: "text_display" in panel().fleet.types(), "types")
        await panel().controller.deploy(spec)
        await user.open("/deployments/txt/dashboard")
        await user.should_see(marker="widget-log", retries=100)

        def shown() -> str:
            card = newest(user, "widget-log")
            return next((e.text for e in card.descendants() if "edge-mono" in e.classes), "")

        for word in ("first", "second", "third"):
            await until(lambda: newest(user, "control-msg").enabled, "the text input")
            newest(user, "control-msg").set_value(word)
            user.find(marker="send-msg").click()
            await until(lambda w=word: shown().startswith(w), f"{word} on top", 15)
        assert shown() == "third\nsecond\nfirst"
        await panel().controller.remove("txt")


def test_refusal_toast_points_to_the_list_from_the_top(monkeypatch):
    calls = []
    monkeypatch.setattr(ui, "notify", lambda message, **kwargs: calls.append((message, kwargs)))
    notify_refused("demo was not deployed", ["task 'x': unknown task type 'nope'", "another"])
    [(message, kwargs)] = calls
    assert message == "demo was not deployed: 2 problems, listed under the graph"
    assert kwargs["position"] == "top"  # the problems are under the graph: the toast must not sit on them
    assert refused_text("cannot connect a.out → b.in", ["x"]) == "cannot connect a.out → b.in: 1 problem, " \
                                                                   "listed under the graph"


async def test_refusals_in_the_editor_are_listed_once(user, panel_settings, tmp_path):
    async with agents(panel_settings, tmp_path, "a1"):
        await until(lambda: "numbers" in panel().fleet.types(), "types")
        await new_deployment(user, "imp")
        await import_yaml(user, "id: imp\ntasks: [{id: src, type: words}, {id: x, type: nope}, {id: d, type: double}]\n"
                                "edges: [{from: src.out, to: x.in}]\n")
        user.find(marker="graph").trigger("connect", {"from": "src.out", "to": "d.in"})
        await user.should_see("edge src.out -> d.in: incompatible (content: 'text' != 'number')")
        assert user.notify.contains("cannot connect src.out → d.in: 1 problem, listed under the graph")
        user.find(marker="deploy").click()
        await user.should_see("task 'x': unknown task type 'nope'", retries=50)
        assert user.notify.contains("imp was not deployed: ")
        # the toast says how many and where, never the problems themselves
        assert not [m for m in user.notify.messages if "unknown task type" in m or "incompatible" in m]
