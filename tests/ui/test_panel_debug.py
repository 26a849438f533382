"""The running view's debug sidebar (many ports in one list, filtered, paused, bounded) and the
status line under each node (state, a live value, the error; no value from an offline agent)."""

from __future__ import annotations

import asyncio
import base64
import re
import struct
import time

import numpy as np
import pytest
from conftest import agents, element, panel, until

from edge.bus import Bus
from edge.controller.fleet import TaskStatus
from edge.controller.views import AGENT_OFFLINE, TaskView
from edge.errors import BusError
from edge.frames import encode_frame, now_ms
from edge.graph import parse_spec
from ui import debug_sidebar
from ui.debug_sidebar import DebugSidebar, thumbnail
from ui.node_status import LastValue, NodeStatus, NodeStatuses, node_status

pytestmark = pytest.mark.parametrize("broker", ["mosquitto"], indirect=True)

SPEC = {"id": "dbg", "tasks": [
    {"id": "n", "type": "numbers", "agent": "a1", "config": {"interval_ms": 50}},
    {"id": "d", "type": "double", "agent": "a1"},
    {"id": "w", "type": "words", "agent": "a1", "config": {"interval_ms": 50, "word": "<b>hello</b>"}},
    {"id": "p", "type": "pictures", "agent": "a1", "config": {"interval_ms": 100}}],
    "edges": [{"from": "n.out", "to": "d.in"}]}



def rows(user):
    return list(element(user, "debug-list").rows)


def sources(user):
    return {r["source"] for r in rows(user)}


def toggle(user, ref):
    task, port = ref.split(".")
    user.find(marker="graph").trigger("debug", {"task": task, "port": port})


async def test_the_sidebar_lists_the_frames_of_the_ports_toggled(user, panel_settings, tmp_path):
    async with agents(panel_settings, tmp_path, "a1"):
        await until(lambda: "numbers" in panel().fleet.types(), "types")
        await panel().controller.deploy(parse_spec(SPEC))
        base, statuses = DebugSidebar.open_count, NodeStatuses.open_count  # pages of earlier tests may linger
        await user.open("/deployments/dbg")
        await user.should_see("version 1", retries=50)
        graph = element(user, "graph")
        assert rows(user) == []
        assert set(element(user, "debug-ports").options) == {"n.out", "d.out", "w.out", "p.out"}

        # two ports at once, in one list, newest first; the graph marks their toggles
        toggle(user, "d.out")
        toggle(user, "w.out")
        await until(lambda: {"d.out", "w.out"} <= sources(user), "frames of d.out and w.out", 30)
        assert graph.props["debug"] == ["d.out", "w.out"]
        assert element(user, "debug-ports").value == ["d.out", "w.out"]
        assert DebugSidebar.open_count == base + 2
        first = rows(user)
        for source in ("d.out", "w.out"):  # newest first
            numbers = [r["n"] for r in first if r["source"] == source]
            assert numbers == sorted(numbers, reverse=True), source
        doubled = [r for r in first if r["source"] == "d.out"]
        assert all(float(r["text"]) % 2 == 0 for r in doubled), doubled
        assert any(r["text"].startswith("<b>hello</b> ") for r in first if r["source"] == "w.out")
        assert all(len(r["time"]) == 12 and r["time"][2] == ":" for r in first)  # HH:MM:SS.mmm
        await user.should_see("<b>hello</b>")  # as text: no element renders HTML

        # the filter keeps the lines whose source or value has its text, new ones too
        user.find(marker="debug-filter").type("HELLO")
        await until(lambda: rows(user) and all(r["source"] == "w.out" for r in rows(user))
                    and len(rows(user)) > 3, "only w.out's lines")
        user.find(marker="debug-filter").clear()
        await until(lambda: {"d.out", "w.out"} <= sources(user), "both again")

        # paused: the list holds still while frames keep coming; live again: the newest lines
        user.find(marker="debug-pause").click()
        held = rows(user)
        counted = element(user, "debug-stats").text
        assert "paused" in counted
        sidebar_frames = int(counted.split(" frames")[0].split("· ")[-1])
        await until(lambda: int(element(user, "debug-stats").text.split(" frames")[0].split("· ")[-1])
                    > sidebar_frames + 10, "frames counted while paused")
        assert rows(user) == held
        user.find(marker="debug-pause").click()
        await until(lambda: rows(user) and rows(user)[0]["n"] > held[0]["n"], "the newest lines after resuming")

        # images as thumbnails (at most THUMB pixels on a side), the rest of the line says what it is
        toggle(user, "p.out")
        await until(lambda: any(r.get("image") for r in rows(user)), "a thumbnail", 30)
        image = next(r for r in rows(user) if r.get("image"))
        assert image["source"] == "p.out" and image["text"] == "image 64x48x3"
        data = base64.b64decode(image["image"].split(",", 1)[1])
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        width, height = struct.unpack(">II", data[16:24])
        assert (width, height) == (64, 48)

        # a port toggled off unsubscribes and its lines stop
        toggle(user, "d.out")
        await until(lambda: DebugSidebar.open_count == base + 2, "d.out unsubscribed")
        assert graph.props["debug"] == ["w.out", "p.out"]
        user.find(marker="debug-clear").click()
        await until(lambda: len(rows(user)) > 5, "new lines")
        assert "d.out" not in sources(user)

        # a port that is no output of the deployment is refused with a notice
        toggle(user, "n.nothing")
        assert user.notify.contains("nothing")
        assert graph.props["debug"] == ["w.out", "p.out"]

        # the page going (its client deleted, as when the browser leaves) closes every subscription of
        # the sidebar and of the status lines
        assert NodeStatuses.open_count >= statuses + 3  # the first outputs of n, d, w (p sends pictures)
        gone = user.client
        await user.open("/")
        gone.delete()
        await until(lambda: DebugSidebar.open_count <= base and NodeStatuses.open_count <= statuses,
                    "everything unsubscribed")


async def test_a_thousand_frames_a_second_are_drawn_at_a_bounded_rate(user, panel_settings, tmp_path):
    """A 1 kHz stream: every frame is counted, the ring and the list stay bounded, and the browser
    gets at most ROWS_PER_TICK lines per tick (the newest), the others counted as not drawn."""
    spec = {"id": "fast", "tasks": [{"id": "src", "type": "numbers", "agent": "a1", "config": {"interval_ms": 60_000}}]}
    async with agents(panel_settings, tmp_path, "a1"):
        await until(lambda: "numbers" in panel().fleet.types(), "types")
        await panel().controller.deploy(parse_spec(spec))
        base = DebugSidebar.open_count  # pages of earlier tests may still be closing
        await user.open("/deployments/fast")
        await user.should_see("version 1", retries=50)
        toggle(user, "src.out")
        await until(lambda: DebugSidebar.open_count == base + 1, "subscribed")
        listed = element(user, "debug-list")
        topic = panel().controller.topics.stream("fast", "src", "out")
        async with Bus.from_settings(panel_settings, client_id="fast-source") as bus:
            sent_before = listed.sent
            started = time.monotonic()
            total = 3000
            for n in range(total):  # 1 kHz, paced by the clock
                await bus.publish(topic, encode_frame(n, seq=n))
                ahead = started + (n + 1) / 1000 - time.monotonic()
                if ahead > 0:
                    await asyncio.sleep(ahead)
            elapsed = time.monotonic() - started
            await until(lambda: rows(user) and rows(user)[0]["text"] == str(total - 1), "the last frame listed")
        stats = element(user, "debug-stats").text
        frames = int(stats.split(" frames")[0].split("· ")[-1])
        dropped = int(stats.split(" dropped")[0].split("· ")[-1]) if "dropped" in stats else 0
        assert frames + dropped >= total - 10, stats  # every frame came, and is counted (listed or dropped)
        ticks = (time.monotonic() - started) / debug_sidebar.TICK + 2
        drawn = listed.sent - sent_before
        assert drawn <= ticks * debug_sidebar.ROWS_PER_TICK, (drawn, ticks)
        assert drawn < total / 3, drawn
        assert "not drawn" in stats, stats
        assert len(listed.rows) <= debug_sidebar.VIEW
        print(f"1 kHz for {elapsed:.2f} s: {frames} frames counted, {drawn} lines drawn, stats: {stats}")


def view(state, *, agent_online=True, error=None, last_error=None, crashed_at=None, restarts=0, metrics=None):
    status = TaskStatus(deployment="dbg", task="t", state=state, agent="a1", error=error, last_error=last_error,
                        crashed_at=crashed_at, restarts=restarts, metrics=metrics or {})
    return TaskView(deployment="dbg", task="t", type="numbers", agent="a1",
                    state=state if agent_online else AGENT_OFFLINE, status=status, agent_known=True,
                    last_heard=now_ms() - 25_000 if not agent_online else None, now=now_ms())


def test_a_status_line_shows_as_current_only_what_is_current():
    fresh, old = LastValue("42", 1.0), LastValue("42", 12.0)
    assert node_status(view("running"), fresh) == NodeStatus("running · 42", "ok")
    assert node_status(view("running"), old) == NodeStatus("running · 42 (12 s ago)", "ok")
    assert node_status(view("running"), None) == NodeStatus("running", "ok")
    # an offline agent: its state and how long, never the value it sent last
    assert node_status(view("running", agent_online=False), fresh) == NodeStatus("agent offline 25 s", "off")
    # errors stay: a failed task's error, a crash notice's last error, refused input frames
    assert node_status(view("failed", error="boom"), fresh) == NodeStatus("failed: boom", "error")
    crashed = view("running", last_error="ValueError: x", crashed_at=now_ms() - 1000, restarts=2)
    assert node_status(crashed, fresh) == NodeStatus("restarted 2 times: ValueError: x", "warn")
    restarting = view("starting", last_error="ValueError: x", crashed_at=now_ms() - 1000, restarts=2)
    assert node_status(restarting, None) == NodeStatus("starting · restarted 2 times: ValueError: x", "warn")
    refused = view("running", metrics={"inputs": {"in": {"frames": 9, "errors": 3}}})
    assert node_status(refused, fresh) == NodeStatus("running · 42 · 3 input errors", "error")
    # media outputs: their rate, from the metrics
    video = view("running", metrics={"outputs": {"out": {"frames": 90, "rate": 30.0}}})
    assert node_status(video, None, media_port="out") == NodeStatus("running · out 30.0/s", "ok")
    assert node_status(view("stopped"), fresh) == NodeStatus("stopped", "idle")


def status(graph, task):
    return graph.statuses.get(task, {"text": "", "tone": ""})


@pytest.mark.expect_errors(r"task st/b \(broken\) crashed")
async def test_status_lines_under_the_running_nodes(user, panel_settings, tmp_path, caplog):
    spec = {"id": "st", "tasks": [
        {"id": "n", "type": "numbers", "agent": "a2", "config": {"interval_ms": 50}},
        {"id": "d", "type": "double", "agent": "a1"},
        {"id": "p", "type": "pictures", "agent": "a1", "config": {"interval_ms": 100}},
        {"id": "b", "type": "broken", "agent": "a1"}],
        "edges": [{"from": "n.out", "to": "d.in"}]}
    async with agents(panel_settings, tmp_path, "a1"):
        async with agents(panel_settings, tmp_path, "a2"):  # the spec pins n to a2: its catalog, not a1's
            await until(lambda: {"a1", "a2"} <= set(panel().fleet.types().get("numbers", {}).get("agents", [])),
                        "both agents' types")
            await panel().controller.deploy(parse_spec(spec))
            await user.open("/deployments/st")
            await user.should_see("version 1", retries=50)
            graph = element(user, "graph")
            # a live value, moving on
            await until(lambda: re.fullmatch(r"running · \d+", status(graph, "n")["text"]), "n's value", 30)
            first = int(status(graph, "n")["text"].split("· ")[1])
            await until(lambda: int(status(graph, "n")["text"].split("· ")[1]) > first + 5, "n's value moving on")
            await until(lambda: re.fullmatch(r"running · \d+\.0", status(graph, "d")["text"]), "d's value")
            assert status(graph, "d")["tone"] == "ok"
            # media: the rate, not the pictures
            await until(lambda: re.fullmatch(r"running · out \d+\.\d/s", status(graph, "p")["text"]), "p's rate", 30)
            # the error stays under the node
            await until(lambda: "broken on purpose" in status(graph, "b")["text"], "b's error", 30)
            assert status(graph, "b")["tone"] in ("error", "warn")
            await user.should_see("broken on purpose")
        # a2 went offline: n shows so, and no value any more
        await until(lambda: status(graph, "n")["text"].startswith("agent offline"), "n's agent offline", 30)
        assert re.fullmatch(r"agent offline \d+ s", status(graph, "n")["text"]), status(graph, "n")
        assert status(graph, "n")["tone"] == "off"
        # d keeps running, and the value it shows ages instead of passing as current
        await until(lambda: "s ago)" in status(graph, "d")["text"], "d's value ageing", 30)
    # b's crashes are logged at ERROR, as they should be (NiceGUI's user fixture fails on any other)
    records = caplog.get_records("call")
    records[:] = [r for r in records if not (r.name == "edge.instance" and "crashed" in r.getMessage())]


async def test_hostile_input_and_a_refused_port(user, panel_settings, tmp_path, monkeypatch):
    spec = {"id": "hx", "tasks": [
        {"id": "src", "type": "numbers", "agent": "a1", "config": {"interval_ms": 60_000}},
        {"id": "w", "type": "words", "agent": "a1", "config": {"interval_ms": 50}}]}
    async with agents(panel_settings, tmp_path, "a1"):
        await until(lambda: "numbers" in panel().fleet.types(), "types")
        await panel().controller.deploy(parse_spec(spec))
        base = DebugSidebar.open_count  # pages of earlier tests may still be closing
        await user.open("/deployments/hx")
        await user.should_see("version 1", retries=50)
        graph = element(user, "graph")
        # what the browser sends is checked: junk is ignored, a port that is not an output is refused
        for args in ({}, {"task": None, "port": "out"}, {"task": "src", "port": ["out"]}, "src.out"):
            user.find(marker="graph").trigger("debug", args)
        toggle(user, "src.#")
        assert user.notify.contains("src.# is not an output of hx")
        assert graph.props["debug"] == [] and DebugSidebar.open_count == base

        # what is not a frame on a port is listed as such, and counted
        toggle(user, "src.out")
        await until(lambda: DebugSidebar.open_count == base + 1, "subscribed")
        async with Bus.from_settings(panel_settings, client_id="junk-source") as bus:
            await bus.publish(panel().controller.topics.stream("hx", "src", "out"), b"\xff\x00<b>junk</b>")
            await until(lambda: rows(user) and rows(user)[0]["text"].startswith("not a frame (13 bytes)"),
                        "the junk listed")
        assert "1 not frames" in element(user, "debug-stats").text

        # a subscription the broker refuses (its ACL): said once, and the port is not shown as watched
        real = panel().bus.subscribe

        def refusing(pattern, **kwargs):
            if pattern.endswith("/w/out"):
                raise BusError(f"the broker refused the subscription to {pattern!r}")
            return real(pattern, **kwargs)

        monkeypatch.setattr(panel().bus, "subscribe", refusing)
        toggle(user, "w.out")
        await until(lambda: user.notify.contains("cannot show w.out: the broker refused"), "the refusal")
        assert graph.props["debug"] == ["src.out"]
        monkeypatch.undo()
        toggle(user, "w.out")
        await until(lambda: "w.out" in sources(user), "w.out shown once allowed")

        # the deployment removed: nothing flows any more, every port is unwatched and unsubscribed
        await panel().controller.remove("hx")
        await user.should_see("not deployed", retries=50)
        await until(lambda: DebugSidebar.open_count == base, "the sidebar unsubscribed")
        assert graph.props["debug"] == [] and element(user, "debug-ports").value == []


def test_thumbnails_are_small_whatever_the_image():
    big = np.zeros((1080, 1920, 3), dtype=np.uint8)
    data = base64.b64decode(thumbnail(big).split(",", 1)[1])
    width, height = struct.unpack(">II", data[16:24])
    assert max(width, height) <= debug_sidebar.THUMB and (width, height) == (96, 54)
    grey = np.full((10, 10), 7, dtype=np.uint8)
    assert thumbnail(grey).startswith("data:image/png;base64,")
    jpeg = b"\xff\xd8\xff" + b"\x00" * 100 + b"\xff\xd9"  # a JPEG file's bytes are shown as they are
    assert thumbnail(jpeg).startswith("data:image/jpeg;base64,")
    too_big = b"\xff\xd8\xff" + b"\x00" * debug_sidebar.MAX_ENCODED + b"\xff\xd9"
    assert thumbnail(too_big) is None
    for not_an_image in (np.zeros((4, 4), dtype=np.float32), np.zeros((0, 3), dtype=np.uint8), b"\x00", "text", 3):
        assert thumbnail(not_an_image) is None
