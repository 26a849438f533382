"""A video viewer card's H.264 player: WebCodecs in the browser (``static/video_player.js``), fed by the
panel's websocket (:mod:`ui.video_feed`), with the JPEG pictures as the fallback.

The browser decides what it can play and says so (``mode`` events): the card shows the video and
the label ``H.264 (WebCodecs)`` (a secure page: https or localhost) or ``H.264 (Media Source)`` (any
other page: the player wraps the packets as fragmented MP4) once a frame is shown, and the JPEG
pictures with ``JPEG fallback · why`` until then or when it cannot (neither API, codec refused,
decoder error, no H.264 coming, stalled).
What the browser sends is text for a label only, shortened: a hostile page can at most mislabel its
own card.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Final

from nicegui import ui

from ui.video_feed import close_feed, open_feed

__all__ = ["H264_LABEL", "MSE_LABEL", "VideoPlayer"]

H264_LABEL: Final = "H.264 (WebCodecs)"
MSE_LABEL: Final = "H.264 (Media Source)"
_MAX_WHY: Final = 160
_MAX_FIGURE: Final = 1e9


def _figure(value: object) -> float | None:
    """A number the browser sent, within 0 … 1e9; None for anything else (a hostile page's text, NaN)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:  # an integer beyond float: as big as we show
        return _MAX_FIGURE
    return max(0.0, min(number, _MAX_FIGURE)) if math.isfinite(number) else None


class VideoPlayer(ui.element, component="static/video_player.js"):
    """The canvas that plays ``task``'s H.264; ``on_change`` is called when what the card shows changes."""

    def __init__(self, deployment: str, task: str, *, on_change: Callable[[], None]) -> None:
        super().__init__()
        self.classes("w-full")
        self.url = open_feed(deployment, task)
        self._props["url"] = self.url
        self._props["task"] = task
        #: what the browser shows: True once it draws H.264, False while it shows the JPEG pictures
        self.playing = False
        #: the label: H264_LABEL, MSE_LABEL or "JPEG fallback · why"
        self.label = "JPEG fallback · starting the player"
        #: the newest figures while playing: frames/s, size, age of the frame shown (ms), kbit/s
        self.stats: dict[str, Any] = {}
        self._on_change = on_change
        self.on("mode", self._mode)
        self.on("stats", self._stats)

    def _mode(self, event: Any) -> None:
        args = event.args if isinstance(event.args, dict) else {}
        self.playing = args.get("mode") == "h264"
        why = " ".join(str(args.get("why") or "").split())[:_MAX_WHY]
        if self.playing:
            self.label = MSE_LABEL if args.get("api") == "mse" else H264_LABEL
        else:
            self.label = f"JPEG fallback · {why or 'the browser did not say why'}"
        if not self.playing:
            self.stats = {}
        self._on_change()

    def _stats(self, event: Any) -> None:
        args = event.args if isinstance(event.args, dict) else {}
        figures = {key: _figure(args.get(key)) for key in ("fps", "width", "height", "age", "kbps", "dropped")}
        self.stats = {key: value for key, value in figures.items() if value is not None}
        self._on_change()

    def text(self) -> str | None:
        """The card's info line while H.264 plays (None otherwise): size, rate, age, bit rate."""
        if not self.playing or not self.stats:
            return None
        s = self.stats
        size = f"{int(s['width'])}x{int(s['height'])}" if "width" in s and "height" in s else "?"
        age = f"{int(s['age'])} ms old" if "age" in s else "age unknown"
        return f"{size} · {s.get('fps', 0):.0f} frames/s · {age} · {int(s.get('kbps', 0))} kbit/s"

    def _handle_delete(self) -> None:
        close_feed(self.url)
        super()._handle_delete()
