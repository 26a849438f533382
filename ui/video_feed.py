"""The panel's H.264 feed: a video viewer's ``video`` packets, forwarded over a websocket to the browser.

A dashboard card asks :func:`open_feed` for a URL (``/_edge/video/{token}``): the token, random and
known only to the page that drew the card, stands for one deployment's task, so the websocket needs
no login of its own (the page did) and takes no topic from the browser. The endpoint subscribes to
the task's ``{root}/streams/{deployment}/{task}/video`` topic and sends one binary message per packet
(``static/video_player.js`` decodes it with WebCodecs):

    4 bytes: n, the header's length (big-endian) · n bytes: the header, JSON · the packet's bytes

The header is ``{"ts": capture ms, "key": bool}``, and on keyframes also ``"codec"`` (the WebCodecs
codec string read from the SPS, ``avc1.42c01e``), ``"width"``, ``"height"``. A keyframe's bytes start
with the stream's SPS/PPS (its ``extradata``, Annex B), so a browser that joins at any keyframe can
decode from there; so that it need not wait for the viewer's schedule, the feed asks for one (a frame
``true``) on the viewer's ``keyframe`` input topic when the browser connects, and when the browser says
``keyframe`` (a text message: its decoder fell behind or failed); at most one ask a second per browser,
and the viewer grants at most two a second in all. While the browser stays, the feed says so every
:data:`RENEW` seconds (a frame ``false``): a viewer with ``h264: watched`` encodes only while told.
A browser that reads slower than packets come does not queue them without bound: past
:data:`MAX_WAITING` packets the waiting ones are dropped, a keyframe is asked for, and the feed
resumes at it.
What the browser cannot use is said in a text message ``{"error": "…"}`` before the socket closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import struct
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Final

from fastapi import WebSocket, WebSocketDisconnect
from nicegui import app

from edge.bus import Message
from edge.errors import FrameError
from edge.frames import decode_frame, encode_frame
from ui.app import current

__all__ = ["ASK_EVERY", "MAX_FEEDS", "MAX_WAITING", "PATH", "RENEW", "Feed", "FeedError", "browser_message",
           "close_feed", "codec_string", "install", "open_feed"]

log = logging.getLogger("ui")

PATH: Final = "/_edge/video"
MAX_FEEDS: Final = 512  # tokens held at once; the oldest go first (a page that never closed)
RENEW: Final = 5.0  # seconds between two "still watching" frames to the viewer (its lease: 15 s)
ASK_EVERY: Final = 1.0  # seconds between two keyframe asks for one browser, however often it asks
MAX_WAITING: Final = 60  # packets waiting for a slow browser before they are dropped until the next keyframe
CLOSE_NOT_FOUND: Final = 4404  # websocket close codes the player reads: no such feed; a stream it cannot play
CLOSE_UNPLAYABLE: Final = 4415
_MAX_SIDE: Final = 16384
_BASELINE: Final = "avc1.42e01e"  # what a keyframe without an SPS is announced as


class FeedError(ValueError):
    """A packet the browser's player cannot take: not an encoded-packet frame, or not H.264."""


@dataclass(frozen=True, slots=True)
class Feed:
    deployment: str
    task: str


_feeds: dict[str, Feed] = {}


def open_feed(deployment: str, task: str) -> str:
    """A URL path of the websocket that plays ``task``'s ``video`` output (until :func:`close_feed`)."""
    while len(_feeds) >= MAX_FEEDS:
        del _feeds[next(iter(_feeds))]
    token = secrets.token_urlsafe(18)
    _feeds[token] = Feed(deployment, task)
    return f"{PATH}/{token}"


def close_feed(url: str) -> None:
    _feeds.pop(url.rsplit("/", 1)[-1], None)


def codec_string(annex_b: bytes) -> str | None:
    """The WebCodecs codec string (``avc1.PPCCLL``) of the first SPS in Annex B bytes; None without one."""
    start = 0
    while (found := annex_b.find(b"\x00\x00\x01", start)) != -1 and found + 6 < len(annex_b):
        nal = annex_b[found + 3]
        if nal & 0x1F == 7:
            profile, constraints, level = annex_b[found + 4:found + 7]
            return f"avc1.{profile:02x}{constraints:02x}{level:02x}"
        start = found + 3
    return None


def browser_message(payload: bytes) -> tuple[bytes, bool]:
    """The websocket message for one ``video`` frame, and whether it is a keyframe; :class:`FeedError` if the
    frame is not an H.264 packet."""
    try:
        frame = decode_frame(payload)
    except FrameError as exc:
        raise FeedError(f"not a frame: {exc}") from exc
    value = frame.value
    if not isinstance(value, dict) or not isinstance(value.get("data"), bytes) or not value["data"]:
        raise FeedError(f"not an encoded packet but {type(value).__name__}")
    if value.get("codec") != "h264":
        raise FeedError(f"the stream is {str(value.get('codec'))[:32]!r}, not H.264")
    key = value.get("keyframe") is True
    data: bytes = value["data"]
    head: dict[str, Any] = {"ts": frame.ts, "key": key}
    if key:
        extradata = value.get("extradata")
        if isinstance(extradata, bytes) and extradata[:3] in (b"\x00\x00\x01", b"\x00\x00\x00"):
            data = extradata + data  # parameter sets in band: what a decoder without a description needs
        head["codec"] = codec_string(data[:4096]) or _BASELINE
        for side in ("width", "height"):
            if type(value.get(side)) is int and 0 < value[side] <= _MAX_SIDE:
                head[side] = value[side]
    encoded = json.dumps(head).encode()
    return struct.pack(">I", len(encoded)) + encoded + data, key


class _Waiting:
    """Packets between the bus callback and the websocket: bounded, dropping to the next keyframe."""

    def __init__(self) -> None:
        self.items: deque[bytes] = deque()
        self.ready = asyncio.Event()
        self.dropped = 0
        self.skipping = True  # a new browser starts at a keyframe
        self.error: str | None = None
        self.want_keyframe = True  # ask the viewer for one: at the start, and after dropping

    def put(self, message: Message) -> None:
        if self.error is not None:
            return
        try:
            data, key = browser_message(message.payload)
        except FeedError as exc:
            self.error = str(exc)
            self.ready.set()
            return
        if len(self.items) >= MAX_WAITING:
            self.dropped += len(self.items)
            self.items.clear()
            self.skipping = True
            self.want_keyframe = True
            self.ready.set()
        if self.skipping and not key:
            return
        self.skipping = False
        if key:
            self.want_keyframe = False
        self.items.append(data)
        self.ready.set()


async def _serve(websocket: WebSocket, token: str) -> None:
    feed = _feeds.get(token)
    await websocket.accept()
    if feed is None:
        await websocket.close(code=CLOSE_NOT_FOUND, reason="this video feed is gone: reload the page")
        return
    panel = current()
    waiting = _Waiting()
    topic = panel.controller.topics.stream(feed.deployment, feed.task, "video")
    sub = await panel.bus.subscribe(topic, qos=0, callback=waiting.put)
    try:
        async with asyncio.TaskGroup() as group:
            pump = group.create_task(_pump(websocket, waiting, feed, ask=panel.controller.topics.stream(
                feed.deployment, feed.task, "keyframe")))
            await _until_closed(websocket, waiting)  # a page that went away is noticed even when no packet comes
            pump.cancel()
    finally:
        await sub.aclose()


async def _pump(websocket: WebSocket, waiting: _Waiting, feed: Feed, *, ask: str) -> None:
    panel = current()
    asked = renewed = -ASK_EVERY
    try:
        while True:
            now = time.monotonic()
            if waiting.want_keyframe and waiting.error is None and now - asked >= ASK_EVERY:
                asked = renewed = now
                await panel.bus.publish(ask, encode_frame(True), qos=0)
            elif now - renewed >= RENEW:
                renewed = now
                await panel.bus.publish(ask, encode_frame(False), qos=0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(waiting.ready.wait(), RENEW)
            waiting.ready.clear()
            if waiting.error is not None:
                log.info("video feed of %s/%s: %s", feed.deployment, feed.task, waiting.error)
                await websocket.send_text(json.dumps({"error": waiting.error}))
                await websocket.close(code=CLOSE_UNPLAYABLE, reason=waiting.error[:100])
                return
            while waiting.items:
                await websocket.send_bytes(waiting.items.popleft())
    except (WebSocketDisconnect, RuntimeError):  # the page went away (RuntimeError: sent after the close)
        return


async def _until_closed(websocket: WebSocket, waiting: _Waiting) -> None:
    try:
        while (message := await websocket.receive())["type"] != "websocket.disconnect":
            if message.get("text") == "keyframe":  # anything else the player does not send: ignored
                waiting.want_keyframe = True
                waiting.ready.set()
    except (WebSocketDisconnect, RuntimeError):
        return


def install() -> None:
    """Register the feed's websocket route with NiceGUI's app (the composition root calls this once)."""
    app.add_api_websocket_route(PATH + "/{token}", _serve)
