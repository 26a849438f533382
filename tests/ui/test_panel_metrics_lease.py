"""The panel holds a metrics lease while a browser shows it (``edge.controller.Fleet.watch``): the
agents send their tasks' live counts to a panel someone looks at, and none to an idle fleet."""

from __future__ import annotations

from conftest import agents, panel, until
from nicegui import Client

from edge.graph import parse_spec

SPEC = {"id": "lease", "tasks": [{"id": "n", "type": "numbers", "agent": "a1", "config": {"interval_ms": 50}}]}


def _frames() -> int:
    status = panel().fleet.statuses.get(("lease", "n"))
    return int(status.metrics.get("outputs", {}).get("out", {}).get("frames", 0)) if status else 0


async def test_a_connected_browser_watches_the_fleet_and_a_gone_one_does_not(user, panel_settings, tmp_path):
    async with agents(panel_settings, tmp_path, "a1"):
        await until(lambda: "numbers" in panel().fleet.types(), "types")
        assert not panel().fleet.watched
        await user.open("/deployments/lease")
        assert panel().fleet.watched
        await panel().controller.deploy(parse_spec(SPEC))
        # the panel asked the agent as the task came up (not at the next renewal, a third of the
        # lease later): its counts keep moving while the page is shown
        assert panel().fleet.lease / 3 >= 10
        seen = await until(lambda: _frames() >= 3 and _frames(), "the first counts", 8)
        for _ in range(3):  # batch after batch (the agent's first full batch, after its connect, is one)
            seen = await until(lambda seen=seen: _frames() > seen and _frames(), "the counts moving on", 8)
        for client in list(Client.instances.values()):
            panel().client_disconnected(client)
        assert not panel().fleet.watched
