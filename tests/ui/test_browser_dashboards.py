"""Dashboards in a real browser (Debian's chromium, Playwright, ``edge ui`` in its own process, a real
agent): the arrange mode and the chart card on a desktop, and the dashboard on a phone (390 x 844,
touch): one column, no horizontal scrolling, a slider set by a finger. Screenshots for docs/ui.md."""

from __future__ import annotations

import pytest
from conftest import agents
from test_browser import ARGS, WAIT, chromium, page, panel_url, shot  # noqa: F401 - the browser fixtures

from edge.controller import Controller
from edge.graph import parse_spec

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180),
              pytest.mark.parametrize("broker", ["mosquitto"], indirect=True)]

SPEC = {"id": "home", "label": "Home", "tasks": [
    {"id": "level", "type": "slider", "agent": "a1",
     "config": {"label": "Heating", "min_value": 0, "max_value": 10, "step": 1, "default": 2}},
    {"id": "power", "type": "toggle", "agent": "a1", "config": {"label": "Power"}},
    {"id": "bar", "type": "value_bar", "agent": "a1",
     "config": {"label": "Heating level", "max_value": 10, "direction": "horizontal"}},
    {"id": "n", "type": "numbers", "agent": "a1", "config": {"interval_ms": 200}},
    {"id": "d", "type": "double", "agent": "a1"},
    {"id": "chart", "type": "plot", "agent": "a1", "config": {
        "label": "Numbers", "window_s": 600, "series": ["counted", "doubled"],
        "labels": {"counted": "counted", "doubled": "doubled"}}}],
    "edges": [{"from": "level.out", "to": "bar.in"}, {"from": "n.out", "to": "d.in"},
              {"from": "n.out", "to": "chart.counted"}, {"from": "d.out", "to": "chart.doubled"}],
    "dashboards": [{"id": "main", "label": "Living room", "cards": [
        {"task": "chart", "w": 2, "h": 2}, {"task": "level", "w": 2}, {"task": "bar", "w": 2}]},
        {"id": "switches", "label": "Switches", "cards": [{"task": "power"}]}]}

NO_SIDEWAYS = "() => document.documentElement.scrollWidth <= document.documentElement.clientWidth"


async def test_dashboards_on_a_desktop_and_on_a_phone(page, panel_url, panel_settings, tmp_path):  # noqa: F811
    async with agents(panel_settings, tmp_path, "a1"), \
            Controller(panel_settings.model_copy(update={"agent_id": "ctl"})) as controller:
        await controller.fleet.wait_for(lambda f: "a1" in f.agents and f.agents["a1"].offers("plot"), timeout=20)
        await controller.deploy(parse_spec(SPEC))

        # desktop: the chart card, 2 columns by 2 rows, its window picker and legend
        await page.goto(panel_url + "/deployments/home/dashboard")
        chart = page.locator(".q-card", has_text="Numbers").first
        await chart.locator("svg text", has_text="doubled").first.wait_for()  # the legend
        await chart.get_by_role("button", name="1 min").click()  # the last minute of the 10 kept
        boxes = [await page.locator(".q-card", has_text=name).first.bounding_box()
                 for name in ("Numbers", "Heating level")]
        assert boxes[0]["width"] > 1.9 * page.viewport_size["width"] / 4 - 40  # 2 of 4 columns
        await shot(page, tmp_path, "dashboard-chart", settle=2500)  # a few seconds of points

        # the arrange mode: buttons on each card, tabs to the other dashboards
        await page.get_by_role("button", name="arrange").click()
        await page.get_by_role("button", name="save layout").wait_for()
        await page.get_by_role("button", name="Switches").wait_for()
        await page.locator('.q-card .q-slider[aria-valuenow="2"]').wait_for()  # redrawn from its view
        await shot(page, tmp_path, "dashboard-arrange")
        # a card dragged onto another takes its place
        first = page.locator(".edge-board > .q-card").first
        assert "Numbers" in await first.inner_text()
        await page.locator(".edge-board > .q-card", has_text="Heating level").drag_to(first)
        await page.wait_for_function(
            "() => document.querySelector('.edge-board > .q-card').innerText.includes('Heating level')")
        await page.get_by_role("button", name="cancel").click()
        await page.wait_for_function(
            "() => document.querySelector('.edge-board > .q-card').innerText.includes('Numbers')")

        # a phone: touch, 390 x 844
        errors: list[str] = []
        phone = await page.context.browser.new_context(viewport={"width": 390, "height": 844}, has_touch=True,
                                                       is_mobile=True, device_scale_factor=2)
        try:
            phone.set_default_timeout(WAIT)
            small = await phone.new_page()
            small.on("pageerror", lambda exc: errors.append(str(exc)))
            small.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
            await small.goto(panel_url + "/deployments/home/dashboard")
            await small.locator(".q-card", has_text="Heating level").first.locator(
                "text=2  (0 … 10)").wait_for()
            await small.locator(".q-card", has_text="Numbers").first.locator("svg text").nth(4).wait_for()
            assert await small.evaluate(NO_SIDEWAYS), await small.evaluate(
                "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]")
            # one column: every card as wide as the others, one under the other
            cards = [await small.locator(".edge-board > .q-card").nth(i).bounding_box() for i in range(3)]
            assert len({round(c["x"]) for c in cards}) == 1 and len({round(c["width"]) for c in cards}) == 1
            assert cards[0]["width"] > 300 and cards[0]["y"] < cards[1]["y"] < cards[2]["y"]
            # a finger sets the slider: a tap near its right end sends 10, the bar wired to it follows
            slider = small.locator(".q-card", has_text="Heating").first.locator(".q-slider")
            await slider.scroll_into_view_if_needed()
            box = await slider.bounding_box()
            assert box["height"] >= 40  # a target a finger hits
            await small.touchscreen.tap(box["x"] + box["width"] - 4, box["y"] + box["height"] / 2)
            await small.locator(".q-card", has_text="Heating level").first.locator("text=10  (0 … 10)").wait_for()
            assert await small.evaluate(NO_SIDEWAYS)
            await shot(small, tmp_path, "dashboard-phone")
            # the other dashboard, by its tab
            await small.get_by_role("button", name="Switches").tap()
            await small.locator(".q-card", has_text="Power").first.wait_for()
            assert await small.locator(".edge-board > .q-card").count() == 1
            switch = await small.locator(".edge-board .q-toggle__inner").first.bounding_box()
            assert switch["height"] >= 44 and switch["width"] >= 44, switch
            assert await small.evaluate(NO_SIDEWAYS)
        finally:
            await phone.close()
        assert errors == [], errors
        await controller.remove("home")
        await page.goto("about:blank")
