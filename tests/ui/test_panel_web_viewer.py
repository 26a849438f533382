"""web_viewer on the dashboard: a frame showing the URL of its view; the URL follows the task's ``url``
input; a URL that is not http(s) is refused by the task (said on the card) and by the panel (never a src)."""

from __future__ import annotations

import pytest
from conftest import agents, element, panel, until
from nicegui import ElementFilter

from edge.frames import encode_frame
from edge.graph import parse_spec

pytestmark = pytest.mark.parametrize("broker", ["mosquitto"], indirect=True)

SPEC = {"id": "web", "tasks": [
    {"id": "fixed", "type": "web_viewer", "config": {"label": "Docs", "url": "https://example.com/docs",
                                                     "height": 250}},
    {"id": "addr", "type": "text_input", "config": {"label": "Address"}},
    {"id": "page", "type": "web_viewer", "config": {"label": "Page"}},
    {"id": "rogue", "type": "web_viewer", "agent": "nobody"}],  # never runs: the test publishes its views
    "edges": [{"from": "addr.out", "to": "page.url"}]}



def text(user, marker):
    with user:
        found = list(ElementFilter(marker=marker, only_visible=False))
    return max(found, key=lambda e: e.id).text if found else ""


def src(user, task):
    with user:
        found = list(ElementFilter(marker=f"web-{task}", only_visible=False))
    return max(found, key=lambda e: e.id).props.get("src") if found else None


async def send_text(user, value):
    element(user, "control-addr").set_value(value)
    user.find(marker="send-addr").click()


async def test_a_web_viewer_shows_its_url_and_follows_its_input(user, panel_settings, tmp_path):
    async with agents(panel_settings, tmp_path, "a1"):
        await until(lambda: "web_viewer" in panel().fleet.types(), "types")
        await panel().controller.deploy(parse_spec(SPEC))
        await user.open("/deployments/web/dashboard")
        await user.should_see(marker="widget-fixed", retries=100)

        # the config's URL, in a sandboxed frame of the height asked
        await until(lambda: src(user, "fixed") == "https://example.com/docs", "the page in the frame", 30)
        frame = element(user, "web-fixed")
        assert frame.tag == "iframe"
        assert frame.props["sandbox"] == "allow-scripts allow-same-origin allow-forms allow-popups"
        assert frame.style["height"] == "250px"
        assert text(user, "web-url-fixed") == "https://example.com/docs"
        assert element(user, "web-url-fixed").props["href"] == "https://example.com/docs"  # opens it in a tab
        await until(lambda: text(user, "state-fixed") == "live", "the viewer live", 15)
        await user.should_see("Docs")

        # no URL yet: no src; a text on the url input shows that page
        await until(lambda: text(user, "state-page") == "live", "the second viewer's view", 30)
        assert src(user, "page") is None and text(user, "web-url-page") == "no page yet"
        await send_text(user, "http://192.168.1.20:8080/stream")
        await until(lambda: src(user, "page") == "http://192.168.1.20:8080/stream", "the page from the input", 15)
        assert not element(user, "web-refused-page").visible
        assert element(user, "web-url-page").props["href"] == "http://192.168.1.20:8080/stream"
        await send_text(user, "https://example.org/two")
        await until(lambda: src(user, "page") == "https://example.org/two", "the next page", 15)

        # a javascript: URL is refused by the task: said on the card, the page stays, counted as an input error
        await send_text(user, "javascript:alert(document.cookie)")
        await until(lambda: element(user, "web-refused-page").visible, "the refusal on the card", 15)
        assert text(user, "web-refused-page") == ("refused 'javascript:alert(document.cookie)': only http:// and "
                                                  "https:// URLs are shown")
        assert src(user, "page") == "https://example.org/two"
        await until(lambda: panel().fleet.statuses.get(("web", "page")) is not None
                    and panel().fleet.statuses[("web", "page")].metrics.get("inputs", {}).get("url", {})
                    .get("errors") == 1, "the input error counted", 15)

        # a reload shows the same (the views are retained)
        await user.open("/deployments/web/dashboard")
        await until(lambda: src(user, "page") == "https://example.org/two", "the page after a reload", 30)
        await until(lambda: text(user, "web-refused-page").startswith("refused 'javascript:"), "the refusal", 15)


async def test_a_hostile_view_never_becomes_the_frame_s_src(user, panel_settings, tmp_path):
    """Views on the broker can come from any client: the panel parses a web_viewer's with a model that takes
    only http(s) URLs, so a javascript: or data: URL is an invalid view, said on the card, never drawn."""
    async with agents(panel_settings, tmp_path, "a1"):
        await until(lambda: "web_viewer" in panel().fleet.types(), "types")
        await panel().controller.deploy(parse_spec(SPEC))
        await user.open("/deployments/web/dashboard")
        await user.should_see(marker="widget-rogue", retries=100)
        topic = panel().controller.topics.stream("web", "rogue", "view")
        for n, url in enumerate(["javascript:alert(1)", "data:text/html,<script>alert(1)</script>",
                                 "file:///etc/passwd"], start=1):
            await panel().bus.publish(topic, encode_frame({"kind": "web_viewer", "url": url}))
            await until(lambda n=n: text(user, "state-rogue").startswith(
                f"invalid view ({n} so far): not a web_viewer view: value.web_viewer.url: "), f"view {n} refused", 10)
            assert src(user, "rogue") is None
        assert text(user, "web-url-rogue") == "no page yet"
        # a good view after them is drawn
        await panel().bus.publish(topic, encode_frame({"kind": "web_viewer", "url": "https://example.net/"}))
        await until(lambda: src(user, "rogue") == "https://example.net/", "a good view drawn", 10)
