"""The control panel in a real browser: Debian's chromium driven by Playwright, against ``edge ui``
run as users run it, a real broker and a real agent.

Never ``playwright install``: the browser is the system's ``/usr/bin/chromium`` (``scripts/test.sh``
installs it with apt where it is missing). Screenshots of every page go to the test's output
folder; with ``UPDATE_DOCS_IMAGES=1`` they also refresh ``docs/images/`` for ``docs/ui.md``.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from conftest import agents
from synthetic import clear_fleet, publish_fleet, status

from edge.broker import free_port, wait_for_port
from edge.bus import Bus
from edge.controller import Controller
from edge.frames import encode_value
from edge.graph import parse_spec
from edge.settings import Settings
from edge.topics import Topics

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180),
              pytest.mark.parametrize("broker", ["mosquitto"], indirect=True)]

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
DOCS_IMAGES = Path(__file__).parents[2] / "docs" / "images"
WAIT = 20_000  # ms, for anything the page waits on
HTML = "<img src=x onerror=alert(1)>"


def start_panel(env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    with open(log_path, "wb") as log:
        return subprocess.Popen([sys.executable, "-m", "edge", "ui"], env=env, stdout=log, stderr=subprocess.STDOUT)


@pytest.fixture
def chromium() -> str:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install it: apt-get install -y chromium (never `playwright install`)")
    return CHROMIUM


@pytest.fixture
async def panel_url(panel_settings: Settings, tmp_path: Path) -> AsyncIterator[str]:
    """``edge ui`` in its own process, on a free loopback port, with the test's settings."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_")}
    env.update({"EDGE_BROKER": panel_settings.broker, "EDGE_NAMESPACE": panel_settings.namespace,
                "EDGE_DATA_DIR": str(panel_settings.data_dir), "EDGE_AGENT_ID": "panel",
                "EDGE_CONTROLLER_PORT": str(port)})
    proc = start_panel(env, tmp_path / "panel.log")
    try:
        try:
            listening = await wait_for_port("127.0.0.1", port, timeout=30, alive=lambda: proc.poll() is None)
        except TimeoutError:
            listening = False
        assert listening, f"edge ui did not listen: {(tmp_path / 'panel.log').read_text()}"
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(proc.wait, 20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    assert "Traceback" not in (tmp_path / "panel.log").read_text()


@pytest.fixture
async def page(chromium: str, panel_url: str) -> AsyncIterator[object]:
    # on panel_url: the browser closes before the panel stops (else its reconnects are console errors)
    from playwright.async_api import async_playwright

    errors: list[str] = []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium, headless=True, args=ARGS)
        try:
            context = await browser.new_context(viewport={"width": 1400, "height": 900})
            context.set_default_timeout(WAIT)
            page = await context.new_page()
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
            page.on("dialog", lambda dialog: errors.append(f"a {dialog.type} opened: {dialog.message}"))
            yield page
        finally:
            await browser.close()
    assert errors == [], errors


async def shot(page, tmp_path: Path, name: str, *, settle: int = 0, no_toasts: bool = False) -> None:
    """A screenshot in the test's folder; with ``UPDATE_DOCS_IMAGES=1`` also the docs' picture, taken ``settle``
    ms later (a status with rates, points on a chart, the last patch drawn) and, with ``no_toasts``, once no
    notification covers the page (they go after about 6 s): waits only the docs' pictures need."""
    if os.environ.get("UPDATE_DOCS_IMAGES") == "1":
        if no_toasts:
            await page.wait_for_function("document.querySelectorAll('.q-notification').length === 0",
                                         timeout=15_000)
        await page.wait_for_timeout(settle)
    path = tmp_path / "screenshots" / f"ui-{name}.png"
    path.parent.mkdir(exist_ok=True)
    await page.screenshot(path=str(path))
    if os.environ.get("UPDATE_DOCS_IMAGES") == "1":
        DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
        small_png(path, DOCS_IMAGES / path.name)


def small_png(source: Path, target: Path) -> None:
    """``source`` in at most 256 colours, at ``target``: the panel's flat colours look the same in a third of
    the bytes, and the docs' images are in the repository."""
    from PIL import Image  # matplotlib's dependency (the dev extra)

    with Image.open(source) as image:
        small = image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
        small.save(target, optimize=True)


async def add_task(page, type_name: str) -> None:
    select = page.get_by_label("task type")
    await select.click()
    await select.fill(type_name)
    await page.get_by_role("option", name=f"({type_name})").click()
    await page.get_by_role("button", name="add", exact=True).click()
    await page.locator(f'[data-node="{type_name}1"]').wait_for()


async def test_build_deploy_inspect_and_stop(page, panel_url, panel_settings, tmp_path):
    await page.goto(panel_url + "/")
    await page.get_by_text("no agent has announced itself").wait_for()
    async with agents(panel_settings, tmp_path, "a1"):
        # an agent appears
        await page.locator('tr[data-key="a1"]', has_text="online").wait_for()
        await page.get_by_text("connected", exact=True).wait_for()
        await shot(page, tmp_path, "agents", settle=300)
        await page.get_by_role("link", name="Task types").click()
        await page.get_by_text("Doubles numbers.").wait_for()
        await shot(page, tmp_path, "types")

        # a two-task graph, built in the editor
        await page.get_by_role("link", name="Deployments").click()
        await page.get_by_role("button", name="new deployment").click()
        await page.get_by_label("id").fill("demo")
        await page.get_by_role("button", name="create").click()
        await page.wait_for_url("**/deployments/demo/edit")
        await add_task(page, "numbers")
        await add_task(page, "double")
        await add_task(page, "words")
        # an incompatible wire is refused, with the metadata that disagree
        await page.locator('[data-port="words1.out"] circle').click()
        await page.locator('[data-port="double1.in"] circle').click()
        await page.get_by_text("incompatible (content: 'text' != 'number')").first.wait_for()
        await page.locator('[data-port="numbers1.out"] circle').click()
        await page.locator('[data-port="double1.in"] circle').click()
        await page.locator('[data-edge="numbers1.out->double1.in"]').wait_for(state="attached")
        await page.locator('[data-node="double1"] .edge-node-head').click()
        await page.get_by_text("task double1").wait_for()
        await page.get_by_label("task label").fill(HTML)  # shown as text, never as markup
        await page.locator('[data-node="double1"] .edge-node-title', has_text="<img src=x").wait_for()
        factor = page.get_by_label("Factor")
        await factor.fill("0")
        await page.get_by_text("Factor must be > 0").wait_for()
        await factor.fill("3")
        await page.get_by_text("Factor must be > 0").wait_for(state="detached")
        await page.evaluate("window.scrollTo(0, 0)")  # the form scrolled the page to the field typed in
        await shot(page, tmp_path, "editor", settle=300, no_toasts=True)  # not the refused wire's toast over it
        await page.locator('[data-node="words1"] .edge-node-head').click()
        # the side panel shows words1 (the server has taken the selection): its button removes words1, not the
        # task selected before, whose panel a slow server still shows
        await page.get_by_text("task words1", exact=True).wait_for()
        await page.get_by_role("button", name="remove task").click()
        await page.locator('[data-node="words1"]').wait_for(state="detached")

        # deploy, watch it run, and a value arrive in the inspector
        await page.get_by_role("button", name="deploy").click()
        await page.get_by_text("deployed demo version 1").wait_for()
        await page.get_by_role("link", name="see it run").click()
        await page.get_by_text("2/2 running").wait_for()
        await page.locator('[data-node="double1"] .edge-node-title', has_text="<img src=x").wait_for()
        assert await page.locator("img[src='x']").count() == 0
        await page.locator('tr[data-key="double1"] .edge-chip', has_text="out:").wait_for()
        await shot(page, tmp_path, "running", settle=2500)  # a status or two, with rates
        await page.locator('tr[data-key="double1"] .edge-chip', has_text="out:").click()
        last = page.get_by_text("last value:")
        await last.wait_for()
        value = float((await last.inner_text()).split(":", 1)[1].split("(")[0])
        assert value % 3 == 0  # numbers times the factor set in the form
        await shot(page, tmp_path, "inspector", settle=1500)
        await page.get_by_role("button", name="close").click()

        # the list, then stop it
        await page.get_by_role("link", name="Deployments").click()
        await page.get_by_text("2/2 running").wait_for()
        await shot(page, tmp_path, "deployments")
        await page.get_by_role("link", name="demo", exact=True).click()
        await page.get_by_role("button", name="stop").click()
        await page.locator(".q-dialog").get_by_role("button", name="stop").click()  # confirmed
        await page.get_by_text("demo is not deployed").wait_for()
        await page.get_by_role("link", name="Deployments").click()
        await page.locator("text=not running").wait_for()
        await page.get_by_role("button", name="history").click()
        await page.get_by_text("Versions of demo").wait_for()
        await page.get_by_role("button", name="show").click()
        await page.get_by_text("numbers1.out").wait_for()
        await shot(page, tmp_path, "history")
        await page.keyboard.press("Escape")

        # a dashboard: the task library's controls and displays
        async with Controller(panel_settings.model_copy(update={"agent_id": "ctl"})) as controller:
            await controller.deploy(parse_spec({"id": "dash", "tasks": [
                {"id": "level", "type": "slider", "config": {"label": "Level", "max_value": 10, "default": 4}},
                {"id": "on", "type": "toggle", "config": {"label": "Pump", "default": True}},
                {"id": "bar", "type": "value_bar", "config": {"label": "Level bar", "max_value": 10,
                                                              "direction": "horizontal"}},
                {"id": "light", "type": "status_display", "config": {"label": "Alarm", "levels": [
                    {"min": 5, "text": "high", "color": "orange"}], "below_text": "normal",
                    "below_color": "green"}},
                {"id": "chart", "type": "plot", "config": {"label": "Level over time"}}],
                "edges": [{"from": "level.out", "to": "bar.in"}, {"from": "level.out", "to": "light.in"},
                          {"from": "level.out", "to": "chart.a"}]}))
            await page.goto(panel_url + "/deployments/dash/dashboard")
            await page.get_by_text("normal (4)").wait_for()
            await shot(page, tmp_path, "dashboard", settle=1500)
            await controller.remove("dash")


async def test_the_new_deployment_dialog_focuses_its_id(page, panel_url):
    """Typing right after opening the dialog fills the id: the field has the focus, no click needed."""
    from playwright.async_api import expect

    await page.goto(panel_url + "/deployments")
    await page.get_by_role("button", name="new deployment").click()
    field = page.get_by_label("id", exact=True)
    await expect(field).to_be_focused()
    await page.keyboard.type("typed-id")
    await expect(field).to_have_value("typed-id")
    await page.keyboard.press("Escape")
    # the editor of a deployment that does not exist links to the same dialog, the id filled in
    await page.goto(panel_url + "/deployments/typo/edit")
    await page.get_by_text("There is no deployment typo").wait_for()
    await page.get_by_role("link", name="create a deployment named typo").click()
    field = page.get_by_label("id", exact=True)
    await expect(field).to_have_value("typo")
    await expect(field).to_be_focused()
    await page.get_by_role("button", name="create").click()
    await page.wait_for_url("**/deployments/typo/edit")
    await page.get_by_text("Add a task").wait_for()
    await page.goto("about:blank")  # leave before the panel stops, or the page's reconnects log errors


@pytest.mark.alone  # a timing figure: scripts/test.sh runs it with the machine to itself
async def test_page_load_with_two_hundred_agents_and_a_hundred_tasks(page, panel_url, panel_settings, tmp_path):
    topics = Topics(panel_settings.namespace)
    async with Bus(panel_settings.broker_url) as bus:
        spec = await publish_fleet(bus, topics)
        try:
            await page.goto(panel_url + "/")
            # the panel has the fleet: the agents page holds one page of it (100 rows), with a pager
            await page.locator(".edge-pager-text", has_text="1-100 of 200").wait_for()
            assert await page.locator("tr[data-key]").count() == 100
            await page.locator('[data-page="next"]').click()
            await page.locator('tr[data-key="syn-199"]').wait_for()
            await page.locator('th[data-column="id"]').click()
            await page.locator('th[data-column="id"]').click()  # descending: syn-199 first, on page 1
            await page.locator('tr[data-key]').first.filter(has_text="syn-199").wait_for()
            await page.locator(".edge-pager-text", has_text="1-100 of 200").wait_for()
            figures = {}
            for name, path, selector, count in (
                    ("agents", "/", "tr[data-key]", 100),
                    ("running view", "/deployments/big", "tr[data-key]", 100),
                    ("editor", "/deployments/big/edit", "[data-node]", 100)):
                started = time.monotonic()
                await page.goto(panel_url + path)
                await page.locator(selector).nth(count - 1).wait_for(state="attached")
                figures[name] = round(time.monotonic() - started, 2)
            await shot(page, tmp_path, "scale-editor")

            # the running view keeps up with a busy fleet: 100 statuses every second, agents reporting;
            # the longest gap between two animation frames tells whether the page froze
            await page.goto(panel_url + "/deployments/big")
            await page.locator("tr[data-key]").nth(99).wait_for(state="attached")
            await page.evaluate("""() => { window.edgeGaps = []; let last = performance.now();
                const tick = (t) => { window.edgeGaps.push(t - last); last = t; requestAnimationFrame(tick); };
                requestAnimationFrame(tick); }""")
            for second in range(4):
                for index in range(len(spec.tasks)):
                    await bus.publish(topics.task_status("big", spec.tasks[index].id),
                                      encode_value(status(spec, index, frames=200 + second * 10 + index)), qos=1,
                                      retain=True)
                for i in range(0, 200, 4):
                    await bus.publish(topics.agent_state(f"syn-{i:03d}"), encode_value({
                        "online": True, "epoch": 1, "ts": 10**13 + second, "version": "0.1.0", "host": {},
                        "metrics": {"cpu_percent": float(second), "rss_mb": 50.0}}), qos=1, retain=True)
                await asyncio.sleep(1)
            await page.locator('tr[data-key="t099"]', has_text="out: 329").wait_for()
            gaps = await page.evaluate("window.edgeGaps")
            figures["longest frame gap under load (s)"] = round(max(gaps) / 1000, 3)
            await shot(page, tmp_path, "scale-running")
            (tmp_path / "page-load.json").write_text(json.dumps(figures, indent=2))
            print("page load with 200 agents and a 100-task deployment:", figures)
            assert figures["agents"] < 10 and figures["running view"] < 10 and figures["editor"] < 10, figures
            assert figures["longest frame gap under load (s)"] < 1.0, figures
        finally:
            await clear_fleet(bus, topics)


async def test_the_running_view_of_a_thousand_tasks_draws_what_is_in_view(page, panel_url, panel_settings):
    """Issue 20: the running view of a 1,000-task deployment within 3 s. The graph draws the nodes and
    wires in view (and a margin) once it has over 150 nodes: drawing all 1,000 laid out their SVG twice
    on loading, and each wire searched the node list for its ends (7.4 s on this machine under load,
    1.7 s now; /tmp figures in the commit)."""
    topics = Topics(panel_settings.namespace)
    async with Bus(panel_settings.broker_url) as bus:
        await publish_fleet(bus, topics, n_agents=100, n_tasks=1000)
        try:
            await page.goto(panel_url + "/")
            await page.locator('tr[data-key="syn-099"]').wait_for(state="attached")  # the panel has the fleet
            times = []
            for _ in range(2):
                started = time.monotonic()
                await page.goto(panel_url + "/deployments/big")
                await page.locator("tr[data-key]").nth(99).wait_for(state="attached")
                await page.locator('[data-node="t000"]').wait_for(state="attached")
                times.append(round(time.monotonic() - started, 2))
            drawn = await page.locator("[data-node]").count()
            assert 0 < drawn < 1000, f"{drawn} nodes drawn: all of them, or none"
            # what comes into view is drawn: the view dragged up, the nodes below it come
            last = await page.locator("[data-node]").evaluate_all("nodes => nodes.map(n => n.dataset.node)")
            box = await page.locator(".edge-graph-svg").bounding_box()
            assert box is not None
            x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] - 20
            came = "seen => [...document.querySelectorAll('[data-node]')].some(n => !seen.includes(n.dataset.node))"
            for _ in range(3):  # up to three drags, until one brings nodes (the first did here: each took 1-5 s)
                await page.mouse.move(x, y)
                await page.mouse.down()
                await page.mouse.move(x, box["y"] + 20, steps=5)
                await page.mouse.up()
                if await page.evaluate(came, last):
                    break
            await page.wait_for_function(came, arg=last)
            print("running view of 1,000 tasks:", times, "s;", drawn, "nodes drawn at first")
            assert min(times) < 3.0, times
        finally:
            await clear_fleet(bus, topics, n_agents=100, n_tasks=1000)
