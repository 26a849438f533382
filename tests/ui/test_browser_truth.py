"""In a real browser: after kill -9 of an agent, the running view's nodes of its tasks are drawn as
``agent offline`` (their colour is the stylesheet's: only a browser shows it), not green."""

from __future__ import annotations

import re
import signal

import pytest
from conftest import until
from test_browser import chromium, page, panel_url  # noqa: F401 - the browser fixtures
from test_panel_truth import SPEC, start_agent

from edge.controller import Controller
from edge.graph import parse_spec

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120),
              pytest.mark.parametrize("broker", ["mosquitto"], indirect=True)]

GREEN = "rgb(200, 230, 201)"  # .edge-state-running .edge-node-head
OFFLINE_GREY = "rgb(144, 164, 174)"  # .edge-state-agent-offline .edge-node-head


async def head_fill(tab, task: str) -> str:
    return await tab.locator(f'[data-node="{task}"] .edge-node-head').evaluate("e => getComputedStyle(e).fill")


async def test_a_dead_agent_s_nodes_are_not_green(page, panel_url, panel_settings, tmp_path):  # noqa: F811
    proc = start_agent(panel_settings, tmp_path, "dead")
    try:
        settings = panel_settings.model_copy(update={"data_dir": tmp_path / "ctl"})
        async with Controller(settings) as controller:
            fleet = controller.fleet
            await until(lambda: "dead" in fleet.agents and fleet.agents["dead"].offers("numbers")
                        and fleet.agents["dead"].offers("slider"), "the agent and its catalog", 30)
            await controller.deploy(parse_spec(SPEC))
            await page.goto(panel_url + "/deployments/doomed")
            await page.locator('[data-node="d"].edge-state-running').wait_for()
            assert await head_fill(page, "d") == GREEN

            proc.send_signal(signal.SIGKILL)
            proc.wait(5)
            await page.locator('[data-node="d"].edge-state-agent-offline').wait_for()
            assert await head_fill(page, "d") == OFFLINE_GREY
            await page.locator('tr[data-key="d"]', has_text=re.compile(r"agent offline \d+ s")).wait_for()
            await page.get_by_text("version 1 · 0/3 running, 3 agent offline").wait_for()
    finally:
        proc.kill()
        proc.wait(5)
