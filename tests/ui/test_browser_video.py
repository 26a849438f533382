"""Live video in a real browser (Debian's chromium through Playwright, ``edge ui`` as users run it, a real
broker and agent): a video viewer card plays the viewer's H.264 with WebCodecs at the source's rate, and
falls back to the JPEG pictures, saying so, where the browser cannot decode or no H.264 comes.
Screenshot: ``ui-video-viewer.png`` (``UPDATE_DOCS_IMAGES=1`` refreshes it in docs/images for docs/ui.md).
"""

from __future__ import annotations

import time
from contextlib import asynccontextmanager
from typing import Any

import pytest
from conftest import agents, until
from test_browser import chromium, page, panel_url, shot  # noqa: F401  (fixtures)

from edge.controller import Controller
from edge.frames import decode_frame
from edge.graph import parse_spec

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180),
              pytest.mark.parametrize("broker", ["mosquitto"], indirect=True)]

RATE = 15
#: the canvas's picture: [frames drawn, distinct grey levels in a sample of its pixels]
CANVAS = """c => { const x = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; const seen = new Set();
    for (let i = 0; i < x.length; i += 4 * 97) seen.add(x[i] >> 4); return [Number(c.dataset.frames), seen.size]; }"""


@asynccontextmanager
async def camera(panel_settings, tmp_path, viewer: dict[str, Any]):
    pytest.importorskip("av")
    async with agents(panel_settings, tmp_path, "cam1"), \
            Controller(panel_settings.model_copy(update={"agent_id": "ctl"})) as controller:
        await controller.fleet.wait_for(lambda f: "cam1" in f.agents and f.agents["cam1"].offers("video_viewer"),
                                        timeout=20)
        await controller.deploy(parse_spec({"id": "cam", "tasks": [
            {"id": "pattern", "type": "test_pattern", "config": {"width": 320, "height": 240, "rate": RATE,
                                                                 "audio": False}},
            {"id": "view", "type": "video_viewer", "config": {"max_fps": 5, "max_width": 320, **viewer}}],
            "edges": [{"from": "pattern.video", "to": "view.in"}]}))
        yield controller
        await controller.remove("cam")


async def test_a_video_viewer_plays_h264_at_the_source_rate(page, panel_url, panel_settings, tmp_path):  # noqa: F811
    from playwright.async_api import expect

    # keyframes on schedule every 40 s only: a page plays at once because its feed asks the viewer for one
    async with camera(panel_settings, tmp_path, {"keyframe_interval": 600}) as controller:
        asks: list[object] = []
        topic = controller.topics.stream("cam", "view", "keyframe")
        sub = await controller.bus.subscribe(topic, callback=lambda m: asks.append(decode_frame(m.payload).value))
        await page.goto(panel_url + "/deployments/cam/dashboard")
        await expect(page.get_by_text("H.264 (WebCodecs)")).to_be_visible()
        canvas = page.locator('canvas[data-video="view"]')
        await expect(canvas).to_be_visible()
        await expect(page.locator('[data-picture="view"]')).to_be_hidden()  # the JPEG picture steps aside
        await page.wait_for_function("() => Number(document.querySelector('canvas[data-video=view]')"
                                     ".dataset.frames) > 5")
        before, started = (await canvas.evaluate(CANVAS))[0], time.monotonic()
        await page.wait_for_timeout(3000)
        (after, levels), span = await canvas.evaluate(CANVAS), time.monotonic() - started
        assert await canvas.evaluate("c => [c.width, c.height]") == [320, 240]
        assert levels >= 4, levels  # a picture (the colour bars), not a blank or one-colour canvas
        fps = (after - before) / span
        assert fps >= RATE * 0.6, f"{fps:.1f} frames/s drawn of {RATE}"  # the source's rate, not the JPEG's 5
        await expect(page.get_by_text("frames/s")).to_be_visible()  # the card's figures come from the player
        await shot(page, tmp_path, "video-viewer")
        await page.reload()  # joins mid-stream, long after the schedule's keyframe
        await expect(page.get_by_text("H.264 (WebCodecs)")).to_be_visible(timeout=8000)
        # the feed asked for a keyframe (true) on joining, and says the browser still watches (false) every 5 s
        await until(lambda: False in asks, "the feed's word that the browser still watches", 10)
        await sub.aclose()
        assert asks[0] is True and False in asks, asks
        # a feed is the page's own: a made-up token is refused, whatever the socket asks
        closed = await page.evaluate("""() => new Promise((resolve) => {
            const ws = new WebSocket('ws://' + location.host + '/_edge/video/made-up');
            ws.onclose = (e) => resolve([e.code, e.reason]); })""")
        assert closed == [4404, "this video feed is gone: reload the page"]
        await page.goto("about:blank")


async def test_without_h264_from_the_viewer_the_card_shows_the_jpeg_pictures(page, panel_url,  # noqa: F811
                                                                               panel_settings, tmp_path):
    from playwright.async_api import expect

    async with camera(panel_settings, tmp_path, {"h264": "off"}):
        await page.goto(panel_url + "/deployments/cam/dashboard")
        await expect(page.get_by_text("JPEG fallback · no H.264 from the viewer")).to_be_visible()
        await page.get_by_text("pictures/s").wait_for()
        img = page.locator('[data-picture="view"] img')
        await img.wait_for()
        size = await img.evaluate("i => [i.complete, i.naturalWidth, i.naturalHeight]")
        assert size == [True, 320, 240], size  # a JPEG the browser decoded, at the viewer's size
        first = await img.get_attribute("src")
        await page.wait_for_function("s => document.querySelector('[data-picture=\"view\"] img').src !== s", arg=first)
        assert await img.evaluate("i => [i.complete, i.naturalWidth, i.naturalHeight]") == [True, 320, 240]
        await expect(page.locator('canvas[data-video="view"]')).to_be_hidden()
        await page.goto("about:blank")


async def test_without_webcodecs_media_source_plays_it(page, panel_url, panel_settings, tmp_path):  # noqa: F811
    """A page that is not secure (a panel opened over http beyond localhost) has no WebCodecs: the player
    wraps the packets as fragmented MP4 for Media Source Extensions, at the source's rate too."""
    from playwright.async_api import expect

    await page.add_init_script("delete window.VideoDecoder")
    async with camera(panel_settings, tmp_path, {"keyframe_interval": 600}):
        await page.goto(panel_url + "/deployments/cam/dashboard")
        await expect(page.get_by_text("H.264 (Media Source)")).to_be_visible()
        video = page.locator('video[data-video="view"]')
        await expect(video).to_be_visible()
        await expect(page.locator('[data-picture="view"]')).to_be_hidden()
        await page.wait_for_function("() => Number(document.querySelector('video[data-video=view]')"
                                     ".dataset.frames) > 5")
        before, started = int(await video.get_attribute("data-frames")), time.monotonic()
        await page.wait_for_timeout(3000)
        after, span = int(await video.get_attribute("data-frames")), time.monotonic() - started
        assert (after - before) / span >= RATE * 0.6, f"{(after - before) / span:.1f} frames/s of {RATE}"
        size = await video.evaluate("v => [v.videoWidth, v.videoHeight, v.buffered.end(0) - v.currentTime]")
        assert size[:2] == [320, 240] and size[2] < 0.5, size  # at the live edge, not buffering behind
        levels = await video.evaluate("""v => { const c = document.createElement('canvas'); c.width = 320;
            c.height = 240; const x = c.getContext('2d'); x.drawImage(v, 0, 0);
            const d = x.getImageData(0, 0, 320, 240).data; const seen = new Set();
            for (let i = 0; i < d.length; i += 4 * 97) seen.add(d[i] >> 4); return seen.size; }""")
        assert levels >= 4, levels  # the colour bars, not a blank picture
        await page.goto("about:blank")


async def test_a_browser_without_webcodecs_or_media_source_gets_the_jpeg_pictures(page, panel_url,  # noqa: F811
                                                                                   panel_settings, tmp_path):
    from playwright.async_api import expect

    await page.add_init_script("delete window.VideoDecoder; delete window.MediaSource")
    async with camera(panel_settings, tmp_path, {}):
        await page.goto(panel_url + "/deployments/cam/dashboard")
        await expect(page.get_by_text("JPEG fallback · this browser has neither WebCodecs nor Media Source")
                     ).to_be_visible()
        await page.get_by_text("pictures/s").wait_for()
        img = page.locator('[data-picture="view"] img')
        first = await img.get_attribute("src")
        await page.wait_for_function("s => document.querySelector('[data-picture=\"view\"] img').src !== s", arg=first)
        assert await img.evaluate("i => i.naturalWidth") == 320
        await page.goto("about:blank")
