"""A fleet of 200 agents and a deployment of 100 tasks, published straight on the broker: the pages
build quickly and, when one thing changes, send only that."""

from __future__ import annotations

import time

import pytest
from conftest import element, panel, until
from synthetic import clear_fleet, publish_fleet, status

from edge.bus import Bus
from edge.frames import encode_value

pytestmark = pytest.mark.parametrize("broker", ["mosquitto"], indirect=True)



@pytest.mark.alone  # a timing figure: scripts/test.sh runs it with the machine to itself
async def test_two_hundred_agents_and_a_hundred_tasks(user, panel_settings):
    await user.open("/")
    topics = panel().controller.topics
    async with Bus(panel_settings.broker_url) as bus:
        spec = await publish_fleet(bus, topics)
        try:
            await until(lambda: len(panel().fleet.agents) == 200 and len(panel().fleet.statuses) == 100
                        and "big" in panel().fleet.deployments, "the synthetic fleet", 60)
            started = time.perf_counter()
            await user.open("/")
            built = time.perf_counter() - started
            table = element(user, "agents")
            await until(lambda: len(table.rows) == 200, "200 rows")
            assert built < 2.0, f"the agents page took {built:.2f} s to build"
            await user.should_see("180 online, 20 offline")
            assert len(table.rows[0]["cpu"]) == 12

            # one agent reports: one row travels, not 200
            sent = table.sent_rows
            await bus.publish(topics.agent_state("syn-004"), encode_value({
                "online": True, "epoch": 1, "ts": 10**13, "version": "0.1.0", "host": {"name": "pi-004"},
                "metrics": {"cpu_percent": 99.0, "rss_mb": 50.0}}), qos=1, retain=True)
            await until(lambda: next(r for r in table.rows if r["id"] == "syn-004")["cpu"][-1] == 99.0, "the change")
            assert table.sent_rows == sent + 1

            started = time.perf_counter()
            await user.open("/deployments/big")
            built = time.perf_counter() - started
            tasks = element(user, "tasks")
            await until(lambda: len(tasks.rows) == 100, "100 task rows")
            assert built < 2.0, f"the running view took {built:.2f} s to build"
            await user.should_see("version 1 · 96/100 running, 4 failing", retries=50)
            graph = element(user, "graph")
            assert len(graph.nodes) == 100 and len(graph.edges) == 90

            # one status changes: one row and one node colour travel; the graph is not resent
            sent = tasks.sent_rows
            changed = status(spec, 7, frames=500)
            changed["state"] = "running"
            await bus.publish(topics.task_status("big", "t007"), encode_value(changed), qos=1, retain=True)
            await until(lambda: next(r for r in tasks.rows if r["id"] == "t007")["state"]["text"] == "running",
                        "the new state")
            assert tasks.sent_rows == sent + 1
            assert {n["id"]: n["state"] for n in graph.nodes}["t007"] == "running"

            for path in ("/types", "/deployments", "/deployments/big/edit", "/deployments/big/dashboard"):
                started = time.perf_counter()
                await user.open(path)
                assert time.perf_counter() - started < 2.0, path
        finally:
            await clear_fleet(bus, topics)


@pytest.mark.alone  # a timing figure: scripts/test.sh runs it with the machine to itself
async def test_the_running_view_of_a_thousand_tasks_builds_in_a_fraction_of_its_3_s(user, panel_settings):
    """Issue 20: the running view of a 1,000-task deployment renders within 3 s in Chromium; this is the
    server's share, a guard (0.71-0.84 s here when the graph looked up every wire for every task,
    0.46-0.71 s with one pass over the wires). The browser's share: test_browser.py's
    test_the_running_view_of_a_thousand_tasks_draws_what_is_in_view and bench/scale.py."""
    await user.open("/")
    topics = panel().controller.topics
    async with Bus(panel_settings.broker_url) as bus:
        await publish_fleet(bus, topics, n_agents=100, n_tasks=1000)
        try:
            await until(lambda: len(panel().fleet.statuses) == 1000 and "big" in panel().fleet.deployments,
                        "the synthetic fleet", 120)
            times = []
            for _ in range(2):
                started = time.perf_counter()
                await user.open("/deployments/big")
                times.append(time.perf_counter() - started)
            graph = element(user, "graph")
            assert len(graph.nodes) == 1000 and len(graph.edges) == 900
            assert min(times) < 1.2, f"the running view of 1,000 tasks took {times} s to build"
        finally:
            await clear_fleet(bus, topics, n_agents=100, n_tasks=1000)
