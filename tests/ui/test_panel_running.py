"""The running view (status colours, error text, frames and rates per port) and the live
inspector (numbers plotted, text logged, images shown, anything else as decoded CBOR)."""

from __future__ import annotations

import base64
import struct
import zlib

import pytest
from conftest import agents, element, panel, until
from nicegui import ElementFilter, ui

from edge.graph import parse_spec
from ui.inspector import Inspector

pytestmark = pytest.mark.parametrize("broker", ["mosquitto"], indirect=True)

HTML = "<img src=x onerror=alert(1)>"
SPEC = {"id": "run", "tasks": [
    {"id": "n", "type": "numbers", "label": HTML, "config": {"interval_ms": 50}},
    {"id": "d", "type": "double"},
    {"id": "w", "type": "words", "config": {"interval_ms": 50, "word": HTML}},
    {"id": "p", "type": "pictures", "config": {"interval_ms": 50}},
    {"id": "r", "type": "records", "config": {"interval_ms": 50}},
    {"id": "b", "type": "broken"}],
    "edges": [{"from": "n.out", "to": "d.in"}]}



def row(user, task):
    return next((r for r in element(user, "tasks").rows if r["id"] == task), None)


def forget_crash_logs(caplog):
    """The Broken task's crashes are logged at ERROR, as they should be: expected here, and nothing else."""
    records = caplog.get_records("call")
    crashes = [r for r in records if r.name == "edge.instance" and "crashed" in r.getMessage()]
    assert crashes
    records[:] = [r for r in records if r not in crashes]


def open_port(user, task, port, side="out"):
    element(user, "tasks")  # the table is there
    user.find(marker="tasks").trigger("cell", {"key": task, "column": "outputs", "value": f"{task}.{port}:{side}"})


def png_size(url):
    data = base64.b64decode(url.split(",", 1)[1])
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    length = struct.unpack(">I", data[33:37])[0]
    zlib.decompress(data[41:41 + length])  # the image data is a valid zlib stream
    return width, height


async def close_inspector(user):
    user.find(marker="inspector-close").click()
    await until(lambda: Inspector.open_count == 0, "the inspector to unsubscribe")


@pytest.mark.expect_errors("broken on purpose")
async def test_states_errors_rates_and_the_inspector(user, panel_settings, tmp_path, caplog):
    async with agents(panel_settings, tmp_path, "a1"):
        await until(lambda: "numbers" in panel().fleet.types(), "types")
        await panel().controller.deploy(parse_spec(SPEC))
        await user.open("/deployments/run")
        await user.should_see("version 1", retries=50)
        await until(lambda: row(user, "n") and row(user, "n")["state"]["text"] == "running", "n running", 30)
        await until(lambda: row(user, "b")["state"]["text"] == "failed", "b failed", 30)
        b = row(user, "b")
        assert b["state"]["color"] == "red" and "broken on purpose <b>bold</b>" in b["error"] and b["restarts"] != "0"
        assert row(user, "n")["state"]["color"] == "green"
        # the graph is coloured by state, without being resent
        graph = element(user, "graph")
        await until(lambda: {n["id"]: n["state"] for n in graph.nodes}["b"] == "failed", "b red in the graph")
        assert {n["id"]: n["title"] for n in graph.nodes}["n"] == HTML
        # frames and rates per port, from the statuses
        await until(lambda: row(user, "d")["inputs"][0]["text"].startswith("in: ")
                    and "/s" in row(user, "d")["inputs"][0]["text"] and row(user, "d")["inputs"][0]["text"] != "in: 0",
                    "d's input metrics", 30)
        assert row(user, "d")["outputs"][0]["value"] == "d.out:out"

        # numbers: a live plot, and the last value
        open_port(user, "d", "out")
        await user.should_see("last value:", retries=100)
        plot = element(user, "inspector-plot")
        await until(lambda: len(plot.options["series"][0]["data"]) >= 3, "points on the plot")
        values = [v for _, v in plot.options["series"][0]["data"]]
        assert all(v % 2 == 0 for v in values) and values == sorted(values)
        await until(lambda: "frames" in element(user, "inspector-stats").text
                    and "/s" in element(user, "inspector-stats").text, "stats")
        assert Inspector.open_count == 1
        await close_inspector(user)

        # text: a log, HTML-looking text stays text
        open_port(user, "w", "out")
        log = element(user, "inspector-log")
        await until(lambda: len(log.default_slot.children) >= 3, "lines in the log")
        line = log.default_slot.children[-1].text
        assert line.startswith("#") and f"  {HTML} " in line
        await close_inspector(user)

        # images: a PNG, scaled to the frame (64x48)
        open_port(user, "p", "out")
        image = element(user, "inspector-image")
        await until(lambda: image.visible and image.source.startswith("data:image/png;base64,"), "an image", 30)
        assert png_size(image.source) == (64, 48)
        await close_inspector(user)

        # anything else: the decoded CBOR as JSON
        open_port(user, "r", "out")
        await user.should_see('"html": "<img src=x onerror=alert(1)>", "raw": "2 bytes 0001"', retries=100)
        await close_inspector(user)

        # an input shows what its source sends
        open_port(user, "d", "in", side="in")
        await user.should_see("last value:", retries=100)
        await close_inspector(user)
        open_port(user, "n", "nothing", side="in")
        assert user.notify.contains("input n.nothing of run is not connected")

        # the inspector on a page of its own; leaving the page unsubscribes
        await user.open("/deployments/run/inspect/n/out")
        await user.should_see("last value:", retries=100)
        assert Inspector.open_count == 1
        # no HTML element anywhere: every text is a label
        with user:
            assert not list(ElementFilter(kind=ui.html, only_visible=False))

        await user.open("/deployments/run")
        user.find(marker="stop").click()
        user.find(marker="confirm-stop").click()
        await until(lambda: not panel().fleet.tasks_of("run"), "the tasks to stop")
        await user.should_see("not deployed", retries=50)
    forget_crash_logs(caplog)


MARKED = {"id": "marked", "tasks": [
    {"id": "n", "type": "numbers", "config": {"interval_ms": 200}},
    {"id": "d", "type": "double"}, {"id": "e", "type": "double"}],
    "edges": [{"from": "n.out", "to": "d.in"}, {"from": "n.out", "to": "e.in"}],
    "notes": [{"id": "note1", "text": f"the doublers {HTML}", "x": 40, "y": 300}],
    "groups": [{"id": "group1", "label": "stage", "tasks": ["d", "e"], "color": "#43a047"}]}


async def test_the_running_view_draws_the_spec_s_comments_and_groups_read_only(user, panel_settings, tmp_path):
    async with agents(panel_settings, tmp_path, "a1"):
        await until(lambda: "numbers" in panel().fleet.types(), "types")
        await panel().controller.deploy(parse_spec(MARKED))
        await user.open("/deployments/marked")
        await user.should_see("version 1", retries=50)
        graph = element(user, "graph")
        assert graph.props["editable"] is False
        # as the editor sends them (ui.graph_view.mark_props): the same comment and group, from the spec
        assert graph.notes == [{"id": "note1", "text": f"the doublers {HTML}", "x": 40, "y": 300}]
        assert graph.groups == [{"id": "group1", "label": "stage", "tasks": ["d", "e"], "color": "#43a047"}]
        await user.should_see(f"the doublers {HTML}")  # text, never markup
        await user.should_see("stage")

        # the editor of the same deployment draws the same marks
        await user.open("/deployments/marked/edit")
        await user.should_see("deployed: version 1", retries=50)
        editor = element(user, "graph")
        assert (editor.notes, editor.groups) == (graph.notes, graph.groups)

        # a new version with other marks: redrawn; a version without any: none left
        changed = {**MARKED, "notes": [{"id": "note1", "text": "moved", "x": 500, "y": 10}],
                   "groups": [{"id": "group1", "label": "stage", "tasks": ["d"]}]}
        await panel().controller.deploy(parse_spec(changed))
        await user.open("/deployments/marked")
        await user.should_see("version 2", retries=50)
        await until(lambda: element(user, "graph").notes == [{"id": "note1", "text": "moved", "x": 500, "y": 10}],
                    "the moved comment")
        assert element(user, "graph").groups == [{"id": "group1", "label": "stage", "tasks": ["d"]}]
        bare = {key: value for key, value in MARKED.items() if key not in ("notes", "groups")}
        await panel().controller.deploy(parse_spec(bare))
        await until(lambda: element(user, "graph").notes == [] and element(user, "graph").groups == [],
                    "no marks", 15)
        await panel().controller.remove("marked")


def test_the_changes_say_which_agents_changed_since_a_revision():
    """What lets a running view redraw for its own agents only, in a fleet where some agent's heartbeat
    changes something every moment."""
    from ui.app import Changes

    changes = Changes()
    changes.note("agent", "a1")
    seen = changes.revision
    changes.note("agent", "a2")
    changes.note("status", "dep/t")
    assert changes.agents_since(seen, {"a2", "a9"}) and not changes.agents_since(seen, {"a1", "a9"})
    assert changes.since(seen, "status") and not changes.agents_since(changes.revision, {"a1", "a2"})
