"""The agents page: live list, online/offline, host, version, sparklines, task instances."""

from __future__ import annotations

import pytest
from conftest import agents, panel, until
from nicegui import ui

from edge.bus import Bus
from edge.frames import encode_value
from edge.graph import parse_spec

pytestmark = pytest.mark.parametrize("broker", ["mosquitto"], indirect=True)


def table(user):
    return next(iter(user.find(marker="agents").elements))


def row(user, agent_id):
    return next((r for r in table(user).rows if r["id"] == agent_id), None)


async def test_agents_appear_with_host_version_and_their_tasks(user, panel_settings, tmp_path):
    await user.open("/")
    await user.should_see("no agent has announced itself")
    async with agents(panel_settings, tmp_path, "a1", "a2"):
        await user.should_see("a1", retries=200)
        await user.should_see("a2", retries=200)
        await user.should_see("2 online, 0 offline", retries=100)
        a1 = row(user, "a1")
        assert a1["status"] == {"text": "online", "color": "green"}
        assert a1["version"] and "Python" in a1["host"] and a1["tasks"] == []
        await until(lambda: panel().fleet.agents["a1"].types, "a1's catalog")
        await panel().controller.deploy(parse_spec({"id": "demo", "tasks": [
            {"id": "n", "type": "numbers", "agent": "a1"}, {"id": "d", "type": "double", "agent": "a2"}]}))
        await until(lambda: [c["text"] for c in row(user, "a1")["tasks"]] == ["demo/n"], "a1's task")
        await until(lambda: row(user, "a1")["tasks"][0]["color"] == "green", "demo/n running")
        assert [c["text"] for c in row(user, "a2")["tasks"]] == ["demo/d"]
        # a task chip leads to the deployment's running view
        table(user).on_cell  # noqa: B018 - the handler exists
        user.find(marker="agents").trigger("cell", {"key": "a1", "column": "tasks", "value": "demo"})
        await user.should_see("version 1", retries=100)
        await panel().controller.remove("demo")
    await user.open("/")
    await user.should_see("0 online, 2 offline", retries=100)
    assert row(user, "a1")["status"]["text"] == "offline"


async def test_sparklines_filter_and_only_changed_rows_travel(user, panel_settings):
    await user.open("/")
    topics = panel().controller.topics
    async with Bus(panel_settings.broker_url) as bus:
        for agent_id in ("s1", "s2"):
            for k, cpu in enumerate((5.0, 25.0, 15.0)):
                await bus.publish(topics.agent_state(agent_id), encode_value({
                    "online": True, "epoch": 1, "ts": 1000 + k, "version": "9.9", "host": {"name": f"host-{agent_id}"},
                    "metrics": {"cpu_percent": cpu, "rss_mb": 40.0 + k}}), qos=1, retain=k == 2)
        await until(lambda: row(user, "s2") and len(row(user, "s2")["cpu"]) == 3, "three samples")
        assert row(user, "s1")["cpu"] == [5.0, 25.0, 15.0] and row(user, "s1")["rss"] == [40.0, 41.0, 42.0]
        await user.should_see("host-s1")
        sent = table(user).sent_rows
        await bus.publish(topics.agent_state("s2"), encode_value({
            "online": True, "epoch": 1, "ts": 2000, "version": "9.9", "host": {"name": "host-s2"},
            "metrics": {"cpu_percent": 50.0, "rss_mb": 43.0}}), qos=1, retain=True)
        await until(lambda: row(user, "s2")["cpu"][-1] == 50.0, "the new sample")
        assert table(user).sent_rows == sent + 1  # s1 did not change: not sent again
        user.find(marker="filter").type("s2")
        await user.should_not_see("host-s1", retries=20)
        await user.should_see("host-s2")
        for agent_id in ("s1", "s2"):
            await bus.publish(topics.agent_state(agent_id), b"", qos=1, retain=True)


async def test_a_page_left_behind_is_not_rebuilt_until_its_browser_is_back(user, panel_settings, tmp_path):
    """A page whose browser went elsewhere lives on for NiceGUI's reconnect timeout: its rows are not rebuilt
    meanwhile (at 10,000 agents a rebuild took ~0.3 s a second and delayed the page the browser went to)."""
    await user.open("/")
    await user.should_see("no agent has announced itself")
    client = user.client
    assert client is not None and client.has_socket_connection
    tab = client.tab_id
    client.tab_id = None  # as NiceGUI has it while the browser is away
    try:
        async with agents(panel_settings, tmp_path, "a1"):
            await until(lambda: (a := panel().fleet.agents.get("a1")) is not None and a.online, "a1 listed")
            timers = [timer.callback for timer in user.find(kind=ui.timer).elements]  # the page's 1 s one among them

            def tick() -> None:
                for callback in timers:
                    assert callback is not None
                    callback()

            tick()
            assert row(user, "a1") is None
            client.tab_id = tab  # back: the next tick shows it
            tick()
            assert row(user, "a1") is not None
    finally:
        client.tab_id = tab
