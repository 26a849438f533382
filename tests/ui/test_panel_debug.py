"""The running view's debug sidebar (many ports in one list, filtered, paused, bounded) and the
status line under each node (state, a live value, the error; no value from an offline agent)."""

from __future__ import annotations

import asyncio
import base64
import struct
import time

import pytest
from conftest import agents, panel, until
from nicegui import ElementFilter

from edge.bus import Bus
from edge.frames import encode_frame
from edge.graph import parse_spec
from ui import debug_sidebar
from ui.debug_sidebar import DebugSidebar
from ui.node_status import NodeStatuses

pytestmark = pytest.mark.parametrize("broker", ["mosquitto"], indirect=True)

SPEC = {"id": "dbg", "tasks": [
    {"id": "n", "type": "numbers", "agent": "a1", "config": {"interval_ms": 50}},
    {"id": "d", "type": "double", "agent": "a1"},
    {"id": "w", "type": "words", "agent": "a1", "config": {"interval_ms": 50, "word": "<b>hello</b>"}},
    {"id": "p", "type": "pictures", "agent": "a1", "config": {"interval_ms": 100}}],
    "edges": [{"from": "n.out", "to": "d.in"}]}


def element(user, marker):
    with user:
        found = list(ElementFilter(marker=marker, only_visible=False))
    assert found, f"no element marked {marker!r}"
    return max(found, key=lambda e: e.id)


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
        assert DebugSidebar.open_count == 2
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
        await until(lambda: DebugSidebar.open_count == 2, "d.out unsubscribed")
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
        assert NodeStatuses.open_count > 0
        gone = user.client
        await user.open("/")
        gone.delete()
        await until(lambda: DebugSidebar.open_count == 0 and NodeStatuses.open_count == 0, "everything unsubscribed")


async def test_a_thousand_frames_a_second_are_drawn_at_a_bounded_rate(user, panel_settings, tmp_path):
    """A 1 kHz stream: every frame is counted, the ring and the list stay bounded, and the browser
    gets at most ROWS_PER_TICK lines per tick (the newest), the others counted as not drawn."""
    spec = {"id": "fast", "tasks": [{"id": "src", "type": "numbers", "agent": "a1", "config": {"interval_ms": 60_000}}]}
    async with agents(panel_settings, tmp_path, "a1"):
        await until(lambda: "numbers" in panel().fleet.types(), "types")
        await panel().controller.deploy(parse_spec(spec))
        await user.open("/deployments/fast")
        await user.should_see("version 1", retries=50)
        toggle(user, "src.out")
        await until(lambda: DebugSidebar.open_count == 1, "subscribed")
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
