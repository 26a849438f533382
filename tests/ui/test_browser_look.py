# ruff: noqa: F811  (the fixtures of test_browser.py, imported, are arguments here)
"""What only a browser shows of issue 17 part 5: topic nodes drawn with every wire, a new node
inside the visible canvas, the inspector's picture swapped without a fade, plot axis labels that
do not run into each other. Same set-up as ``test_browser.py`` (Debian's chromium, ``edge ui``
in its own process, real agents and broker)."""

from __future__ import annotations

import pytest
from conftest import agents
from test_browser import add_task, chromium, page, panel_url, shot  # noqa: F401  (fixtures)
from test_panel_look import getting_started_graph

from edge.controller import Controller
from edge.graph import parse_spec

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180),
              pytest.mark.parametrize("broker", ["mosquitto"], indirect=True)]

# every <text> of an SVG chart, with its box; two boxes that intersect are labels drawn over each other
OVERLAPS = """root => {
    const boxes = [...root.querySelectorAll('svg text')].filter(t => t.textContent.trim())
        .map(t => { const r = t.getBoundingClientRect(); return {text: t.textContent, l: r.left, r: r.right,
                                                                   t: r.top, b: r.bottom}; })
        .filter(b => b.r > b.l && b.b > b.t);
    const clash = [];
    for (let i = 0; i < boxes.length; i++)
        for (let j = i + 1; j < boxes.length; j++) {
            const a = boxes[i], c = boxes[j];
            if (a.l < c.r - 1 && c.l < a.r - 1 && a.t < c.b - 1 && c.t < a.b - 1) clash.push([a.text, c.text]);
        }
    return {count: boxes.length, clash: clash};
}"""

# the chart (an element holding its SVG) labels at least two clock times (HH:mm:ss) on its time axis
TWO_CLOCK_TIMES = """root => [...root.querySelectorAll('svg text')]
    .filter(t => /^\\d\\d:\\d\\d:\\d\\d$/.test(t.textContent)).length >= 2"""


async def no_overlaps(page, chart, samples: int = 6) -> None:
    """No two labels of the chart overlap, looked at a few times as its axis moves on."""
    for _ in range(samples):
        found = await chart.evaluate(OVERLAPS)
        assert found["count"] >= 4 and found["clash"] == [], found
        await page.wait_for_timeout(500)


async def wires_drawn(page) -> int:
    """How many wires have a path the browser drew (a wire whose end is missing has an empty path)."""
    return await page.evaluate("""() => [...document.querySelectorAll('[data-edge] .edge-wire-line')]
        .filter(p => (p.getAttribute('d') || '').startsWith('M') && p.getTotalLength() > 0).length""")


async def new_deployment(page, panel_url: str, dep: str) -> None:
    """The editor of a new deployment, made through the New-deployment dialog (an unknown id's editor is not found)."""
    await page.goto(panel_url + "/deployments")
    await page.get_by_role("button", name="new deployment").click()
    await page.get_by_label("id", exact=True).fill(dep)
    await page.get_by_role("button", name="create").click()
    await page.wait_for_url(f"**/deployments/{dep}/edit")


async def test_topic_nodes_drawn_in_editor_and_running_view(page, panel_url, panel_settings, tmp_path):
    async with agents(panel_settings, tmp_path, "a1"), \
            Controller(panel_settings.model_copy(update={"agent_id": "ctl"})) as controller:
        await controller.fleet.wait_for(lambda f: "a1" in f.agents and f.agents["a1"].offers("double"), timeout=20)
        await new_deployment(page, panel_url, "first")
        await page.get_by_role("button", name="import YAML").click()
        await page.get_by_label("or paste it here").fill(getting_started_graph())
        await page.get_by_role("button", name="import", exact=True).click()
        await page.get_by_text("imported 2 tasks and 2 wires").wait_for()
        topic = page.locator('[data-node="topic:sensors/doubled"][data-kind="topic"]')
        await topic.wait_for()
        assert await topic.locator(".edge-topic-body").is_visible()
        assert await page.locator("[data-edge]").count() == 2
        assert await wires_drawn(page) == 2  # "2 wires", and two drawn

        # a topic node made in the browser, wired by clicking its output then an input
        await page.get_by_label("MQTT topic").fill("sensors/in")
        await page.get_by_role("button", name="add topic").click()
        await page.locator('[data-node="topic:sensors/in"]').wait_for()
        await add_task(page, "double")
        await page.locator('[data-port="topic:sensors/in.out"] circle').click()
        await page.locator('[data-port="double1.in"] circle').click()
        await page.locator('[data-edge="topic:sensors/in->double1.in"]').wait_for(state="attached")
        assert await wires_drawn(page) == 3
        await shot(page, tmp_path, "editor-topics")
        # and removed
        await page.locator('[data-node="topic:sensors/in"] .edge-topic-body').click()
        await page.get_by_role("button", name="remove topic").click()
        await page.locator('[data-node="topic:sensors/in"]').wait_for(state="detached")
        assert await wires_drawn(page) == 2

        # the running view draws them too
        await controller.deploy(parse_spec({"id": "tv", "tasks": [
            {"id": "n", "type": "numbers"}, {"id": "d", "type": "double"}],
            "edges": [{"from": "topic:in/x", "to": "d.in"}, {"from": "n.out", "to": "topic:out/y"}]}))
        await page.goto(panel_url + "/deployments/tv")
        await page.locator('[data-kind="topic"]').nth(1).wait_for()
        assert await page.locator('[data-kind="topic"]').count() == 2
        assert await wires_drawn(page) == 2
        await page.locator('[data-port="topic:out/y.out"] circle').click()  # what flows on that topic
        await page.get_by_text("topic out/y", exact=True).wait_for()
        await page.get_by_text("last value:").wait_for()
        await page.get_by_role("button", name="close").click()
        await controller.remove("tv")
        await page.goto("about:blank")


async def test_a_new_node_appears_inside_the_visible_canvas(page, panel_url, panel_settings, tmp_path):
    async with agents(panel_settings, tmp_path, "a1"):
        await new_deployment(page, panel_url, "where")
        await page.get_by_text("Add a task").wait_for()
        await add_task(page, "numbers")
        svg = page.locator(".edge-graph-svg")
        box = await svg.bounding_box()
        # pan far away: the layout's next spot (under numbers1) is off-screen now
        await page.mouse.move(box["x"] + box["width"] - 40, box["y"] + box["height"] - 40)
        await page.mouse.down()
        await page.mouse.move(box["x"] + 60, box["y"] + 60, steps=8)
        await page.mouse.up()
        await page.wait_for_timeout(400)  # the view is reported once panning settles
        for name in ("double1", "double2"):
            await add_task(page, name.rstrip("12"))
            node = await page.locator(f'[data-node="{name}"] .edge-node-body').bounding_box()
            assert node is not None
            assert box["x"] <= node["x"] and node["x"] + node["width"] <= box["x"] + box["width"], (box, node)
            assert box["y"] <= node["y"] and node["y"] + node["height"] <= box["y"] + box["height"], (box, node)
        one = await page.locator('[data-node="double1"] .edge-node-body').bounding_box()
        two = await page.locator('[data-node="double2"] .edge-node-body').bounding_box()
        apart = (one["x"] + one["width"] <= two["x"] or two["x"] + two["width"] <= one["x"]
                 or one["y"] + one["height"] <= two["y"] or two["y"] + two["height"] <= one["y"])
        assert apart, (one, two)  # not on one another
        await shot(page, tmp_path, "editor-new-node")
        await page.goto("about:blank")  # leave before the panel stops: no reconnect errors


async def test_inspector_picture_swaps_without_fading(page, panel_url, panel_settings, tmp_path):
    async with agents(panel_settings, tmp_path, "a1"), \
            Controller(panel_settings.model_copy(update={"agent_id": "ctl"})) as controller:
        await controller.fleet.wait_for(lambda f: "a1" in f.agents and f.agents["a1"].offers("pictures"), timeout=20)
        await controller.deploy(parse_spec({"id": "pics", "tasks": [
            {"id": "p", "type": "pictures", "config": {"interval_ms": 50}}]}))
        await page.goto(panel_url + "/deployments/pics")
        await page.locator('tr[data-key="p"] .edge-chip', has_text="out:").click()
        img = page.locator(".q-dialog img[src^='data:image/png']")
        await img.wait_for()
        first = await img.get_attribute("src")
        handle = await img.element_handle()
        await page.wait_for_function("([i, s]) => i.src !== s", arg=[handle, first])
        # the same <img>, its source swapped: no transition, fully opaque, nothing above it fading either
        style = await handle.evaluate("""i => {
            const out = {connected: i.isConnected, complete: i.complete, width: i.naturalWidth};
            const chain = [];
            for (let e = i; e && e !== document.body; e = e.parentElement) {
                const s = getComputedStyle(e);
                chain.push({opacity: s.opacity, transition: s.transitionDuration, animation: s.animationName});
            }
            out.chain = chain;
            return out;
        }""")
        assert style["connected"] and style["width"] == 64, style
        for level in style["chain"][:4]:  # the img and the element that holds it
            assert level["opacity"] == "1" and set(level["transition"].split(", ")) == {"0s"}, style
            assert level["animation"] == "none", style
        await shot(page, tmp_path, "inspector-picture")
        await controller.remove("pics")
        await page.goto("about:blank")


async def test_plot_time_axis_labels_do_not_overlap(page, panel_url, panel_settings, tmp_path):
    async with agents(panel_settings, tmp_path, "a1"), \
            Controller(panel_settings.model_copy(update={"agent_id": "ctl"})) as controller:
        await controller.fleet.wait_for(lambda f: "a1" in f.agents and f.agents["a1"].offers("plot"), timeout=20)
        await controller.deploy(parse_spec({"id": "plots", "tasks": [
            {"id": "n", "type": "numbers", "config": {"interval_ms": 50}},
            {"id": "chart", "type": "plot", "config": {"label": "Numbers", "window_s": 20}}],
            "edges": [{"from": "n.out", "to": "chart.a"}]}))
        # the dashboard's card: narrow
        await page.goto(panel_url + "/deployments/plots/dashboard")
        card = page.locator(".q-card", has_text="Numbers").first
        await card.locator("svg text").nth(4).wait_for()
        # the card's axis spans the task's whole window (20 s) from its first point: its clock times are there at
        # once (a fixed 4 s wait before); sampled for 3 s as points come and the value axis widens
        await page.wait_for_function(TWO_CLOCK_TIMES, arg=await card.element_handle())
        await no_overlaps(page, card)
        await shot(page, tmp_path, "dashboard-plot")
        # the inspector's plot
        await page.goto(panel_url + "/deployments/plots")
        await page.locator('tr[data-key="n"] .edge-chip', has_text="out:").click()
        dialog = page.locator(".q-dialog")
        await dialog.locator("svg text").nth(4).wait_for()
        # its axis spans the points received since it opened: sampled once it has two clock times to label (about
        # 1.5 s of points; a fixed 3 s before), then for 3 s more as it widens
        await page.wait_for_function(TWO_CLOCK_TIMES, arg=await dialog.element_handle())
        await no_overlaps(page, dialog)
        labels = await dialog.evaluate("""d => [...d.querySelectorAll('svg text')].map(t => t.textContent)""")
        assert any(len(t) == 8 and t.count(":") == 2 for t in labels), labels  # HH:mm:ss
        await controller.remove("plots")
        await page.goto("about:blank")


async def test_task_types_page_is_compact_with_details_on_demand(page, panel_url, panel_settings, tmp_path):
    async with agents(panel_settings, tmp_path, "a1"):
        await page.goto(panel_url + "/types")
        await page.get_by_text("Doubles numbers.").wait_for()
        rows = await page.locator(".q-expansion-item").count()
        height = await page.evaluate("document.documentElement.scrollHeight")
        assert rows >= 30 and height < 70 * rows, (rows, height)  # one short line a type (it was 10,884 px)
        assert await page.get_by_text("offered by a1").count() == 0 or not await page.get_by_text(
            "offered by a1").first.is_visible()  # the details wait for a click
        double = page.locator(".q-expansion-item", has_text="Doubles numbers.")
        await double.locator(".q-item").first.click()
        await double.get_by_text("offered by a1").wait_for()
        await double.get_by_text("factor", exact=True).wait_for()
        await double.get_by_text("in: number").wait_for()
        await page.get_by_placeholder("search types, ports, categories, agents").fill("dashboard")
        await page.wait_for_function("() => document.documentElement.scrollHeight < 1200")
        await shot(page, tmp_path, "types-search")
        await page.goto("about:blank")
