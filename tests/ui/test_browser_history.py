"""Undo and redo from the keyboard, and a rubber band selecting several nodes that then move and go
together, in a real browser (Debian's chromium through Playwright, ``edge ui`` as users run it, a
real broker and agent); deployed, the Running view draws the group and the comment read-only.
Then the deployments list says that a further edit is not deployed, with what Deploy would change.
Screenshots: ``ui-groups.png`` (a group and a comment on the canvas), ``ui-running-groups.png`` (the
same on the Running view) and ``ui-deployments-changes.png`` (the list with a draft's summary open);
``UPDATE_DOCS_IMAGES=1`` refreshes them in docs/images for docs/ui.md.
"""

from __future__ import annotations

import pytest
from conftest import agents
from test_browser import chromium, page, panel_url, shot  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180),
              pytest.mark.parametrize("broker", ["mosquitto"], indirect=True)]


async def box(locator) -> dict[str, float]:
    found = await locator.bounding_box()
    assert found is not None
    return found


async def test_keyboard_undo_redo_and_rubber_band_selection(page, panel_url, panel_settings,  # noqa: F811
                                                            tmp_path):
    from playwright.async_api import expect

    async with agents(panel_settings, tmp_path, "a1"):
        await page.goto(panel_url + "/deployments")
        await page.get_by_role("button", name="new deployment").click()
        await page.get_by_label("id", exact=True).fill("keys")
        await page.get_by_role("button", name="create").click()
        await page.wait_for_url("**/deployments/keys/edit")
        double = page.locator('[data-type="double"]')
        await double.wait_for()
        svg = page.locator("svg.edge-graph-svg")
        for i, x in enumerate((200, 460, 720), start=1):
            await double.drag_to(svg, target_position={"x": x, "y": 120})
            await page.locator(f'[data-node="double{i}"]').wait_for()
        nodes = page.locator("[data-node]")
        await expect(nodes).to_have_count(3)

        # Ctrl+Z undoes the last drop, Ctrl+Shift+Z and Ctrl+Y redo (focus on the canvas, not a field)
        area = await box(svg)
        await page.mouse.click(area["x"] + 460, area["y"] + 400)
        await page.keyboard.press("Control+z")
        await expect(nodes).to_have_count(2)
        await page.keyboard.press("Control+Shift+z")
        await expect(nodes).to_have_count(3)
        await page.keyboard.press("Control+z")
        await expect(nodes).to_have_count(2)
        await page.keyboard.press("Control+y")
        await expect(nodes).to_have_count(3)

        # shift-drag the background: a rubber band around double1 and double2 selects both
        await page.keyboard.down("Shift")
        await page.mouse.move(area["x"] + 60, area["y"] + 60)
        await page.mouse.down()
        await page.mouse.move(area["x"] + 400, area["y"] + 200, steps=8)
        await page.mouse.move(area["x"] + 600, area["y"] + 260, steps=8)
        await page.mouse.up()
        await page.keyboard.up("Shift")
        await page.get_by_text("2 selected").wait_for()
        await expect(page.locator('[data-node="double1"].edge-selected')).to_have_count(1)
        await expect(page.locator('[data-node="double2"].edge-selected')).to_have_count(1)
        await expect(page.locator('[data-node="double3"].edge-selected')).to_have_count(0)
        await page.get_by_text("2 nodes selected").wait_for()

        # dragging one of them moves both; double3 stays
        head1 = page.locator('[data-node="double1"] .edge-node-head')
        before = [await box(page.locator(f'[data-node="double{i}"] .edge-node-head')) for i in (1, 2, 3)]
        start = await box(head1)
        await page.mouse.move(start["x"] + 20, start["y"] + 10)
        await page.mouse.down()
        await page.mouse.move(start["x"] + 60, start["y"] + 110, steps=10)
        await page.mouse.up()
        after = [await box(page.locator(f'[data-node="double{i}"] .edge-node-head')) for i in (1, 2, 3)]
        for i in (0, 1):
            assert abs(after[i]["x"] - before[i]["x"] - 40) <= 3 and abs(after[i]["y"] - before[i]["y"] - 100) <= 3
        assert after[2] == before[2]

        # Delete removes both; Ctrl+Z brings them back where they were moved to
        await page.keyboard.press("Delete")
        await expect(nodes).to_have_count(1)
        await page.keyboard.press("Control+z")
        await expect(nodes).to_have_count(3)
        back = await box(page.locator('[data-node="double1"] .edge-node-head'))
        assert abs(back["x"] - after[0]["x"]) <= 3 and abs(back["y"] - after[0]["y"]) <= 3

        # in a field the keys are the field's: Backspace there deletes a character, not the selected node
        await page.locator('[data-node="double3"] .edge-node-head').click()
        await page.locator('[data-node="double3"].edge-selected').wait_for()
        search = page.get_by_label("task type")
        await search.fill("dou")
        await search.press("Backspace")
        await search.press("Control+z")
        await expect(search).to_have_value("dou")
        await expect(nodes).to_have_count(3)
        await search.fill("")

        # Ctrl+C, Ctrl+V: a copy of double3, renamed; Ctrl+Z takes it away
        await page.mouse.click(area["x"] + 460, area["y"] + 500)
        await page.locator('[data-node="double3"] .edge-node-head').click()
        await page.keyboard.press("Control+c")
        await page.get_by_text("copied 1 task").wait_for()
        await page.keyboard.press("Control+v")
        await page.locator('[data-node="double4"]').wait_for()
        await expect(nodes).to_have_count(4)
        await page.keyboard.press("Control+z")
        await expect(nodes).to_have_count(3)

        # a group of the two and a comment, for the docs
        await page.keyboard.down("Shift")
        await page.mouse.move(area["x"] + 40, area["y"] + 40)
        await page.mouse.down()
        await page.mouse.move(area["x"] + 610, area["y"] + 330, steps=8)
        await page.mouse.up()
        await page.keyboard.up("Shift")
        await page.get_by_text("2 nodes selected").wait_for()
        await page.get_by_label("group label").fill("doublers")
        await page.get_by_role("button", name="group", exact=True).click()
        await page.locator('[data-group="group1"]').wait_for()
        # dragging the group's tab moves its tasks
        tab = await box(page.locator('[data-group="group1"] .edge-group-tab'))
        heads = [await box(page.locator(f'[data-node="double{i}"] .edge-node-head')) for i in (1, 2, 3)]
        await page.mouse.move(tab["x"] + 10, tab["y"] + 10)
        await page.mouse.down()
        await page.mouse.move(tab["x"] + 10, tab["y"] - 40, steps=10)
        await page.mouse.up()
        moved = [await box(page.locator(f'[data-node="double{i}"] .edge-node-head')) for i in (1, 2, 3)]
        assert all(abs(moved[i]["y"] - heads[i]["y"] + 50) <= 3 for i in (0, 1)), (heads, moved)
        assert moved[2] == heads[2]
        await page.get_by_role("button", name="comment").click()
        await page.locator('[data-note="note1"]').wait_for()
        await page.get_by_label("text").fill("double1 and double2 run as one stage; double3 is spare")
        # the note wraps at words
        await page.locator("[data-note=\"note1\"] text", has_text="one stage; double3 is").wait_for()
        await page.evaluate("window.scrollTo(0, 0)")
        await shot(page, tmp_path, "groups", no_toasts=True)  # no toast over the canvas

        # deployed, the Running view draws the same group and comment, read-only: around the same two
        # tasks, the comment's text wrapped alike; dragging the comment pans the view and leaves it in place
        await page.get_by_role("button", name="deploy", exact=True).click()
        await page.get_by_text("deployed keys version 1").wait_for()
        await page.goto(panel_url + "/deployments/keys")
        group = page.locator('[data-group="group1"] .edge-group-box')
        await group.wait_for()
        await page.locator('[data-note="note1"] text', has_text="one stage; double3 is").wait_for()
        await expect(page.locator('[data-group="group1"] .edge-group-label')).to_have_text("doublers")
        around = await box(group)
        inside = [await box(page.locator(f'[data-node="double{i}"] .edge-node-head')) for i in (1, 2, 3)]
        for head, within in zip(inside, (True, True, False), strict=True):
            contained = (around["x"] <= head["x"] and head["x"] + head["width"] <= around["x"] + around["width"]
                         and around["y"] <= head["y"] and head["y"] + head["height"] <= around["y"] + around["height"])
            assert contained is within, (around, head)
        await page.locator('[data-status="double1"]').first.wait_for()
        await shot(page, tmp_path, "running-groups", settle=1500)  # a status or two
        note = page.locator('[data-note="note1"] .edge-note-body')
        start = await box(note)
        node = await box(page.locator('[data-node="double3"] .edge-node-head'))
        await page.mouse.move(start["x"] + 20, start["y"] + 10)
        await page.mouse.down()
        await page.mouse.move(start["x"] + 80, start["y"] + 60, steps=8)
        await page.mouse.up()
        end = await box(note)
        node_after = await box(page.locator('[data-node="double3"] .edge-node-head'))
        # panned: the comment and the nodes moved together, the comment did not move on the canvas
        assert abs((end["x"] - start["x"]) - (node_after["x"] - node["x"])) <= 2
        assert abs(end["x"] - start["x"] - 60) <= 3 and abs(end["y"] - start["y"] - 50) <= 3
        await expect(page.locator('[data-note="note1"].edge-selected')).to_have_count(0)

        # edited again, not deployed: the list says so, with what Deploy would change
        await page.goto(panel_url + "/deployments/keys/edit")
        await page.locator('[data-node="double3"] .edge-node-head').click()
        # the side panel shows double3 (the server has taken the selection): its button removes double3, not the
        # task selected before, whose panel a slow server still shows
        await page.get_by_text("task double3", exact=True).wait_for()
        await page.get_by_role("button", name="remove task").click()
        await page.locator('[data-node="double3"]').wait_for(state="detached")
        await page.goto(panel_url + "/deployments")
        await page.get_by_text("undeployed changes", exact=True).wait_for()
        await page.get_by_role("button", name="Changes: 1 removed, 2 unchanged").click()
        await page.get_by_text("- stop double3 (removed)").wait_for()
        await shot(page, tmp_path, "deployments-changes", settle=300)
        await page.goto("about:blank")
