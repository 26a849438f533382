"""The palette and inject in a real browser (Debian's chromium through Playwright, ``edge ui`` as users
run it, a real broker and agent): a type dragged from the palette lands where it is dropped, the
keyboard adds one too, the help panel follows the selection, and a value injected on the Running
view comes out of the running task. Screenshots: ``ui-palette.png``, ``ui-inject.png``
(``UPDATE_DOCS_IMAGES=1`` refreshes them in docs/images for docs/ui.md).
"""

from __future__ import annotations

import asyncio

import pytest
from conftest import agents
from test_browser import chromium, page, panel_url, shot  # noqa: F401  (fixtures)

from edge.bus import Bus
from edge.frames import decode_frame
from edge.topics import Topics

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180),
              pytest.mark.parametrize("broker", ["mosquitto"], indirect=True)]


async def centre(locator) -> tuple[float, float]:
    box = await locator.bounding_box()
    assert box is not None
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


async def test_drag_from_the_palette_then_inject_into_the_running_task(page, panel_url, panel_settings,  # noqa: F811
                                                                        tmp_path):
    from playwright.async_api import expect

    async with agents(panel_settings, tmp_path, "a1"):
        await page.goto(panel_url + "/deployments")
        await page.get_by_role("button", name="new deployment").click()
        await page.get_by_label("id", exact=True).fill("dnd")
        await page.get_by_role("button", name="create").click()
        await page.wait_for_url("**/deployments/dnd/edit")
        calculator = page.locator('[data-type="calculator"]')
        await calculator.wait_for()

        # drag a type onto the canvas: its node's head lands centred under the mouse
        svg = page.locator("svg.edge-graph-svg")
        await calculator.drag_to(svg, target_position={"x": 520, "y": 160})
        head = page.locator('[data-node="calculator1"] .edge-node-head')
        await head.wait_for()
        box = await svg.bounding_box()
        assert box is not None
        x, y = await centre(head)
        assert abs(x - (box["x"] + 520)) <= 3 and abs(y - (box["y"] + 160)) <= 3, (x, y, box)
        # search, then a second drop elsewhere: the first node stays where it was put
        search = page.get_by_label("task type")
        await search.fill("doubles")
        await page.locator('[data-type="calculator"]').wait_for(state="hidden")
        await page.locator('[data-type="double"]').drag_to(svg, target_position={"x": 220, "y": 160})
        await page.locator('[data-node="double1"]').wait_for()
        assert abs((await centre(head))[0] - (box["x"] + 520)) <= 3
        x, y = await centre(page.locator('[data-node="double1"] .edge-node-head'))
        assert abs(x - (box["x"] + 220)) <= 3 and abs(y - (box["y"] + 160)) <= 3
        assert await page.get_by_text("no agent offers").count() == 0  # the drops were the types', nothing else
        # the keyboard: Tab to a row, Enter adds it
        await search.fill("")
        words = page.locator('[data-type="words"]')
        await words.wait_for()  # shown again once the search is cleared
        await words.focus()
        await expect(words).to_be_focused()
        await page.keyboard.press("Enter")
        await page.locator('[data-node="words1"]').wait_for()

        # wire, and the help of the selected type and node
        await page.locator('[data-port="double1.out"] circle').click()
        await page.locator('[data-port="calculator1.a"] circle').click()
        await page.locator('[data-edge="double1.out->calculator1.a"]').wait_for(state="attached")
        await page.locator('[data-node="words1"] .edge-node-head').click()
        # the side panel shows words1 (the server has taken the selection): its button removes words1, not the
        # task selected before, whose panel a slow server still shows
        await page.get_by_text("task words1", exact=True).wait_for()
        await page.get_by_role("button", name="remove task").click()
        await page.locator('[data-node="words1"]').wait_for(state="detached")
        await page.locator('[data-type="calculator"]').click()
        await page.get_by_text("Help: Calculator").wait_for()
        await page.locator('[data-node="double1"] .edge-node-head').click()
        await page.get_by_text("Help: Double").wait_for()
        await page.get_by_text("Doubles numbers.").first.wait_for()
        await page.evaluate("window.scrollTo(0, 0)")
        await shot(page, tmp_path, "palette", settle=300)

        # deploy; on the Running view an input's dot opens its inject dialog
        await page.get_by_role("button", name="deploy").click()
        await page.get_by_text("deployed dnd version 1").wait_for()
        await page.get_by_role("link", name="see it run").click()
        await page.get_by_text("2/2 running").wait_for()
        await page.locator('[data-port="double1.in"] circle').click()
        await page.get_by_text("Inject into double1.in").wait_for()
        await page.get_by_label("value").fill("21")
        out = Topics(panel_settings.namespace).stream("dnd", "calculator1", "out")
        async with Bus(panel_settings.broker_url) as probe, probe.subscribe(out) as frames:
            await page.get_by_role("button", name="send").click()
            await page.get_by_text("sent 21 into double1.in").wait_for()
            async with asyncio.timeout(10):  # doubled, then the calculator's default formula: a
                assert decode_frame((await frames.get()).payload).value == 42
        await shot(page, tmp_path, "inject", settle=300)
        await page.get_by_role("button", name="close").click()
        # what came out, as the task table counts it: one frame out of double1, one into calculator1
        await page.locator('tr[data-key="double1"] .edge-chip', has_text="out: 1").wait_for()
        await page.locator('tr[data-key="calculator1"] .edge-chip', has_text="a: 1").wait_for()
        await page.locator('tr[data-key="calculator1"] .edge-chip', has_text="out: 1").wait_for()
        await page.goto("about:blank")  # leave before the panel stops, or the page's reconnects log errors
