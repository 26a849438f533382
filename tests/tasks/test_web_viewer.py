"""web_viewer: a web page on the dashboard; only http and https URLs, from its config or its ``url`` input."""

from __future__ import annotations

import pytest
from task_harness import running
from test_dashboard import reloaded_view, view_where

from edge.errors import ConfigError
from edge.frames import decode_value, encode_frame
from edge.protocol import MAX_NAME, ValidationError, ViewFrame, web_url_problem
from tasks.web_viewer import WebViewer

HOSTILE = ["javascript:alert(1)", "JavaScript:alert(document.cookie)", " javascript:alert(1)",
           "data:text/html,<script>alert(1)</script>", "file:///etc/passwd", "vbscript:msgbox(1)",
           "//evil.example/page", "http://", "https:///path", "http://a b/", "http://host/\x00",
           "ftp://files.example/", "about:blank", "http://[::1", "http://h/" + "x" * 3000, ""]


def test_only_absolute_http_and_https_urls_are_taken():
    for good in ["http://example.com", "https://example.com:8443/a?b=c#d", "HTTP://EXAMPLE.COM/",
                 "http://192.168.1.20:8080/stream", "http://[::1]:8080/"]:
        assert web_url_problem(good) is None, good
    for bad in HOSTILE:
        why = web_url_problem(bad)
        assert why is not None and "\n" not in why, bad
    assert web_url_problem("javascript:alert(1)") == "only http:// and https:// URLs are shown"
    assert web_url_problem("http://") == "a URL names a host (http://host/...)"


def test_a_config_with_another_url_is_refused_in_one_line():
    for bad in [u for u in HOSTILE if u]:
        with pytest.raises(ConfigError) as caught:
            WebViewer.validate_config({"url": bad})
        assert str(caught.value).startswith("invalid config for web_viewer: url: ") and "\n" not in str(caught.value)
    with pytest.raises(ConfigError, match="only http:// and https:// URLs are shown"):
        WebViewer.validate_config({"url": "javascript:alert(1)"})
    assert WebViewer.validate_config({}).url == ""  # no page until the input sends one
    with pytest.raises(ConfigError, match="height"):
        WebViewer.validate_config({"height": 10})


def test_the_panel_s_model_refuses_a_view_with_another_url():
    """A view published by something else than a web_viewer (a rogue client on the broker) is parsed by the
    panel with this model: a javascript: URL never reaches the frame's src."""
    good = {"ts": 1, "seq": 0, "value": {"kind": "web_viewer", "url": "https://example.com/", "height": 300}}
    assert ViewFrame.model_validate(good).value.url == "https://example.com/"
    for bad in HOSTILE[:-1]:
        with pytest.raises(ValidationError):
            ViewFrame.model_validate({**good, "value": {**good["value"], "url": bad}})


async def test_the_url_input_replaces_the_page_and_a_hostile_one_is_refused(broker):
    config = {"label": "Camera page", "url": "https://example.com/first", "height": 320, "refresh_ms": 10}
    async with running(WebViewer, broker.url, config) as h:
        assert (await h.next("view")).value == {"kind": "web_viewer", "label": "Camera page",
                                                "url": "https://example.com/first", "height": 320, "refused": ""}
        await h.feed("url", "  http://192.168.1.20:8080/stream\n")
        await view_where(h, lambda v: v["url"] == "http://192.168.1.20:8080/stream")

        # refused: counted as an input error, the page stays, the view says what and why
        await h.feed("url", "javascript:alert(document.cookie)")
        view = await view_where(h, lambda v: v["refused"] != "")
        assert view["url"] == "http://192.168.1.20:8080/stream"
        assert view["refused"] == ("refused 'javascript:alert(document.cookie)': only http:// and https:// URLs "
                                   "are shown")
        await h.errors("url", 1)
        assert (await reloaded_view(h))["refused"] == view["refused"]  # a panel that loads now sees it too
        await h.feed("url", 42)  # not text: counted, nothing changes
        await h.errors("url", 2)

        # a URL too long to repeat whole is cut in the refusal, which stays within a view's bounds
        await h.feed("url", "data:" + "\x01" * 5000)
        view = await view_where(h, lambda v: v["refused"].startswith("refused 'data:\\x01"))
        assert len(view["refused"]) <= MAX_NAME
        await h.errors("url", 3)

        # a good URL again: taken, the refusal goes
        await h.feed("url", "https://example.com/second")
        view = await view_where(h, lambda v: v["url"] == "https://example.com/second")
        assert view["refused"] == ""


def test_the_view_is_its_kind_s_model_at_the_bounds_the_config_allows():
    task = WebViewer({"label": "l" * 200, "url": "https://example.com/" + "p" * 2000, "height": 4000})
    task.refused = "r" * MAX_NAME
    view = task.view()
    assert ViewFrame.model_validate(decode_value(encode_frame(view.dump(), ts=1, seq=0))).value == view
    assert WebViewer.describe()["dashboard"] == "web_viewer"
