"""A video viewer card's two paths in the panel (NiceGUI's ``user``, no browser): what the browser's player
says it shows (its ``mode`` and ``stats`` events) decides the label, which picture is visible and the info
line; what a hostile page sends is shortened text at most. tests/ui/test_browser_video.py plays it for real."""

from __future__ import annotations

import pytest
from conftest import agents, panel, until
from nicegui import ElementFilter
from test_panel_dashboard import VIDEO_SPEC, element, text

from edge.graph import parse_spec
from ui.video_feed import PATH, _feeds
from ui.video_player import H264_LABEL, MSE_LABEL, VideoPlayer

pytestmark = pytest.mark.parametrize("broker", ["mosquitto"], indirect=True)


def player(user) -> VideoPlayer:
    with user:
        found = [e for e in ElementFilter(kind=VideoPlayer, only_visible=False)]
    assert len(found) == 1, found
    return found[0]


async def test_the_card_shows_what_the_browser_plays_and_says_which(user, panel_settings, tmp_path):
    pytest.importorskip("av")
    async with agents(panel_settings, tmp_path, "a1"):
        await until(lambda: {"test_pattern", "video_viewer"} <= set(panel().fleet.types()), "media types")
        await panel().controller.deploy(parse_spec(VIDEO_SPEC))
        await user.open("/deployments/cam/dashboard")
        await user.should_see(marker="widget-view", retries=100)
        video = player(user)
        token = video.props["url"].removeprefix(PATH + "/")
        assert video.props["url"].startswith(PATH + "/") and len(token) >= 24
        assert _feeds[token].deployment == "cam" and _feeds[token].task == "view"  # the page's own feed
        assert text(user, "video-mode-view") == "JPEG fallback · starting the player"
        await until(lambda: "pictures/s" in text(user, "picture-info-view"), "the first JPEG picture", 30)

        # the browser draws H.264: the label says so, the JPEG picture steps aside and stops being sent
        user.find(kind=VideoPlayer).trigger("mode", {"mode": "h264", "why": ""})
        assert text(user, "video-mode-view") == H264_LABEL
        assert not element(user, "picture-view").visible
        user.find(kind=VideoPlayer).trigger("stats", {"fps": 10, "width": 80, "height": 60, "age": 41.7,
                                                      "kbps": 95, "dropped": 0})
        assert text(user, "picture-info-view") == "80x60 · 10 frames/s · 41 ms old · 95 kbit/s"
        shown = element(user, "picture-view").source
        await until(lambda: text(user, "state-view") == "live", "the pictures keep the card live")
        assert element(user, "picture-view").source == shown  # not redrawn under the video

        user.find(kind=VideoPlayer).trigger("mode", {"mode": "h264", "why": "", "api": "mse"})  # a page over http
        assert text(user, "video-mode-view") == MSE_LABEL

        # it cannot any more: back to the pictures, with the browser's reason
        user.find(kind=VideoPlayer).trigger("mode", {"mode": "jpeg", "why": "H.264 stalled: no frame for 3 s"})
        assert text(user, "video-mode-view") == "JPEG fallback · H.264 stalled: no frame for 3 s"
        assert element(user, "picture-view").visible
        await until(lambda: element(user, "picture-view").source != shown, "the pictures drawn again", 10)

        # a hostile page: odd arguments change nothing but its own label, shortened to one line
        for args in (None, [1, 2], {"mode": {"x": 1}}, {"mode": "jpeg", "why": "<b>x</b>\n" * 500}):
            user.find(kind=VideoPlayer).trigger("mode", args)
        assert text(user, "video-mode-view").startswith("JPEG fallback · <b>x</b> <b>x</b>")
        assert len(text(user, "video-mode-view")) <= 200
        user.find(kind=VideoPlayer).trigger("mode", {"mode": "h264"})
        before = text(user, "picture-info-view")
        user.find(kind=VideoPlayer).trigger("stats", {"fps": "many", "width": True, "age": None})
        assert text(user, "picture-info-view") == before  # no figure in it: nothing to say
        user.find(kind=VideoPlayer).trigger("stats", {"fps": 2, "width": "9" * 400, "age": -1, "kbps": 10**400})
        assert text(user, "picture-info-view") == "? · 2 frames/s · 0 ms old · 1000000000 kbit/s"

        # the card drawn again (a new version of the deployment): the old feed is closed, the new card has its own
        await panel().controller.deploy(parse_spec({"id": "cam", "tasks": [VIDEO_SPEC["tasks"][1]]}))
        await until(lambda: token not in _feeds, "the old card's feed closed", 15)
        await until(lambda: player(user).props["url"] != video.props["url"], "a new card")
        assert player(user).props["url"].removeprefix(PATH + "/") in _feeds
