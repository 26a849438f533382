"""The debug sidebar, the status lines and the modified markers in a real browser (Debian's chromium,
Playwright, ``edge ui`` in its own process, a real agent): the sidebar updates live, thumbnails
decode, a 1 kHz stream does not freeze the page (measured), screenshots for docs/ui.md."""

from __future__ import annotations

import asyncio
import time

import pytest
from conftest import agents
from test_browser import chromium, page, panel_url, shot  # noqa: F401 - the browser fixtures

from edge.bus import Bus
from edge.controller import Controller
from edge.frames import encode_frame
from edge.graph import parse_spec

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180),
              pytest.mark.parametrize("broker", ["mosquitto"], indirect=True)]

HTML = "<img src=x onerror=alert(1)>"
SPEC = {"id": "demo", "tasks": [
    {"id": "n", "type": "numbers", "agent": "a1", "config": {"interval_ms": 100}},
    {"id": "d", "type": "double", "agent": "a1", "label": "double it"},
    {"id": "w", "type": "words", "agent": "a1", "config": {"interval_ms": 300, "word": HTML}},
    {"id": "p", "type": "pictures", "agent": "a1", "config": {"interval_ms": 200}},
    {"id": "src", "type": "numbers", "agent": "a1", "config": {"interval_ms": 60_000}}],
    "edges": [{"from": "n.out", "to": "d.in"}]}

# the longest gap between two animation frames while it runs (the page's responsiveness)
WATCH_FRAMES = """() => { window.__gaps = []; let last = performance.now();
  const step = (t) => { window.__gaps.push(t - last); last = t; if (!window.__stop) requestAnimationFrame(step); };
  requestAnimationFrame(step); }"""


async def first_row(browser_page):
    return await browser_page.locator(".edge-debug-row").first.inner_text()


async def test_the_debug_sidebar_status_lines_and_modified_markers(page, panel_url, panel_settings,  # noqa: F811
                                                                   tmp_path):
    async with agents(panel_settings, tmp_path, "a1"), \
            Controller(panel_settings.model_copy(update={"agent_id": "ctl"})) as controller:
        await controller.fleet.wait_for(lambda f: "a1" in f.agents and f.agents["a1"].offers("numbers"), timeout=20)
        await controller.deploy(parse_spec(SPEC))
        await page.goto(panel_url + "/deployments/demo")
        # the status line under a running node: its state and its live value, moving on
        status = page.locator('[data-status="n"] text.edge-node-status')
        await status.filter(has_text="running · ").wait_for()
        before = await status.text_content()
        await page.wait_for_function("s => document.querySelector('[data-status=\"n\"] text.edge-node-status')"
                                     ".textContent !== s", arg=before)

        # three ports toggled on the graph: their frames in one list, live
        for ref in ("d.out", "w.out", "p.out"):
            await page.locator(f'[data-debug="{ref}"] rect').click()
            await page.locator(f'[data-debug="{ref}"].edge-debug-on').wait_for()
        await page.locator('.edge-debug-row[data-source="d.out"]').first.wait_for()
        await page.locator('.edge-debug-row[data-source="w.out"]').first.wait_for()
        thumb = page.locator('.edge-debug-row[data-source="p.out"] img.edge-debug-thumb').first
        await thumb.wait_for()
        await page.wait_for_function("() => { const i = document.querySelector('img.edge-debug-thumb');"
                                     " return i && i.complete && i.naturalWidth === 64 && i.naturalHeight === 48; }")
        top = await first_row(page)
        await page.wait_for_function("s => document.querySelector('.edge-debug-row').innerText !== s", arg=top)
        assert await page.locator("img[src='x']").count() == 0  # the words' HTML is text
        await page.locator(".edge-debug-row", has_text=HTML).first.wait_for()
        await shot(page, tmp_path, "debug", settle=800)

        # the filter, in the browser
        await page.get_by_label("filter lines").fill("onerror")
        await page.wait_for_function("() => { const r = [...document.querySelectorAll('.edge-debug-row')];"
                                     " return r.length > 0 && r.every(e => e.dataset.source === 'w.out'); }")
        await page.get_by_label("filter lines").fill("")
        await page.locator('.edge-debug-row[data-source="d.out"]').first.wait_for()

        # paused: the list holds still; live again: it moves on
        await page.get_by_role("button", name="pause").click()
        await page.wait_for_timeout(400)  # a batch on its way when pausing may still land
        held = await first_row(page)
        await page.wait_for_timeout(1200)
        assert await first_row(page) == held
        await page.get_by_role("button", name="live").click()
        await page.wait_for_function("s => document.querySelector('.edge-debug-row').innerText !== s", arg=held)

        # 1 kHz on one port: the page keeps drawing (measured), the list stays bounded
        for ref in ("d.out", "w.out", "p.out"):
            await page.locator(f'[data-debug="{ref}"] rect').click()
        await page.locator(".edge-debug-on").first.wait_for(state="detached")
        await page.locator('[data-debug="src.out"] rect').click()
        await page.locator('[data-debug="src.out"].edge-debug-on').wait_for()
        await page.wait_for_timeout(600)  # subscribed on the panel's next tick
        await page.evaluate(WATCH_FRAMES)
        topic = controller.topics.stream("demo", "src", "out")
        total = 3000
        async with Bus.from_settings(panel_settings, client_id="fast-source") as bus:
            started = time.monotonic()
            for n in range(total):
                await bus.publish(topic, encode_frame(n, seq=n))
                ahead = started + (n + 1) / 1000 - time.monotonic()
                if ahead > 0:
                    await asyncio.sleep(ahead)
            elapsed = time.monotonic() - started
        await page.locator(".edge-debug-row", has_text=str(total - 1)).first.wait_for()
        gaps = await page.evaluate("() => { window.__stop = true; return window.__gaps; }")
        rows = await page.locator(".edge-debug-row").count()
        stats = await page.locator(".edge-debug").get_by_text("frames").first.inner_text()
        worst = max(gaps)
        print(f"1 kHz for {elapsed:.2f} s: {len(gaps)} animation frames, the longest gap {worst:.0f} ms, "
              f"{rows} rows in the list; {stats}")
        assert rows <= 200
        assert "not drawn" in stats
        assert worst < 1000, f"the page stalled for {worst:.0f} ms"
        assert len(gaps) > elapsed * 10  # it kept drawing: more than 10 frames a second throughout

        # the editor: a changed node is marked, the summary says what Deploy will do
        await page.goto(panel_url + "/deployments/demo/edit")
        await page.locator('[data-node="d"] .edge-node-head').click()
        await page.get_by_text("task d", exact=True).wait_for()
        await page.get_by_label("Factor").fill("5")
        await page.locator('[data-node="d"].edge-modified').wait_for()
        summary = page.get_by_role("button", name="Changes: 1 restarted, 4 unchanged")
        await summary.click()
        await page.get_by_text("↻ restart d: config factor").wait_for()
        await shot(page, tmp_path, "modified", settle=400)
        await page.keyboard.press("Escape")
        await controller.remove("demo")
