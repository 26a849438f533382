"""web_viewer in a real browser (Debian's chromium, Playwright, ``edge ui`` in its own process, a real agent):
the page of its URL shows in the card's frame, a text on its input changes the page, and a ``javascript:``
URL is refused on the card without ever running (the page fixture fails on any dialog or console error).
Screenshot: ``ui-dashboard-web.png`` for docs/ui.md."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from conftest import agents
from test_browser import chromium, page, panel_url, shot  # noqa: F401 - the browser fixtures

from edge.controller import Controller
from edge.graph import parse_spec

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180),
              pytest.mark.parametrize("broker", ["mosquitto"], indirect=True)]


class Pages(BaseHTTPRequestHandler):
    """Two small pages: ``/`` and ``/second``."""

    def do_GET(self) -> None:
        text = "the second page" if self.path == "/second" else "hello from the page"
        body = (f"<!doctype html><html><body style='font-family:sans-serif'><h2>{text}</h2>"
                "<p>served on the local network</p></body></html>").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        del format, args


@contextlib.contextmanager
def web_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Pages)
    thread = threading.Thread(target=server.serve_forever, name="test-pages", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


async def test_a_web_page_on_the_dashboard(page, panel_url, panel_settings, tmp_path):  # noqa: F811
    with web_server() as site:
        spec = {"id": "web", "tasks": [
            {"id": "home", "type": "web_viewer", "agent": "a1",
             "config": {"label": "Camera page", "url": f"{site}/", "height": 220}},
            {"id": "address", "type": "text_input", "agent": "a1", "config": {"label": "Show this page"}},
            {"id": "other", "type": "web_viewer", "agent": "a1", "config": {"label": "Any page", "height": 220}}],
            "edges": [{"from": "address.out", "to": "other.url"}]}
        async with agents(panel_settings, tmp_path, "a1"), \
                Controller(panel_settings.model_copy(update={"agent_id": "ctl"})) as controller:
            await controller.deploy(parse_spec(spec))
            await page.goto(panel_url + "/deployments/web/dashboard")
            home = page.frame_locator('iframe[data-web="home"]')
            await home.get_by_text("hello from the page").wait_for()
            frame = page.locator('iframe[data-web="home"]')
            assert await frame.get_attribute("sandbox") == "allow-scripts allow-same-origin allow-forms allow-popups"
            assert (await frame.bounding_box() or {}).get("height") == 220

            # a text on the input: the other viewer shows that page
            field = page.get_by_label("text", exact=True)
            await field.fill(f"{site}/second")
            await page.get_by_role("button", name="send").click()
            await page.frame_locator('iframe[data-web="other"]').get_by_text("the second page").wait_for()

            # javascript: is refused on the card; the page stays, nothing ran (no dialog: the fixture checks)
            await field.fill("javascript:alert(document.domain)")
            await page.get_by_role("button", name="send").click()
            await page.get_by_text("refused 'javascript:alert(document.domain)': only http:// and https:// "
                                   "URLs are shown").wait_for()
            assert await page.locator('iframe[data-web="other"]').get_attribute("src") == f"{site}/second"
            await page.frame_locator('iframe[data-web="other"]').get_by_text("the second page").wait_for()
            await shot(page, tmp_path, "dashboard-web", settle=300)
            await controller.remove("web")
            await page.goto("about:blank")
