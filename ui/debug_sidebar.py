"""The debug sidebar: the frames of any number of output ports in one list, live or paused.

Beside the running view's graph: a toggle on each output (the small square right of it) adds or
removes that port, and the list shows one line per frame, newest first: its time (the frame's
``ts``), its source (``task.port``) and its value, shortened (images as thumbnails). A filter
keeps the lines whose source or value contains its text. The live inspector
(:mod:`ui.inspector`, a click on the port itself) stays for deep inspection of one port.

Bounded on every side, whatever the frame rates:

* each port's subscription has a bounded queue (:data:`QUEUE`, the oldest dropped and counted);
* the sidebar keeps a ring of the last :data:`RING` entries (what the filter searches);
* the browser receives at most :data:`ROWS_PER_TICK` new lines per :data:`TICK` (the newest; the
  others are counted as not drawn) and holds at most :data:`VIEW` lines; thumbnails are made at
  most every :data:`IMAGE_INTERVAL` per port and :data:`THUMB` pixels on a side.

The subscriptions open on the page's timer (once it is connected) and close when a port is
toggled off and when the page goes (:meth:`DebugSidebar.close`, on the client's deletion).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
from nicegui import ui

from edge.bus import Overflow, Subscription
from edge.errors import ConfigError, EdgeError, FrameError
from edge.frames import decode_frame
from edge.watch import Watching
from ui.app import Panel
from ui.preview import classify, describe, encoded_image_mime, image_data_url, is_image, png_data_url

__all__ = ["DebugList", "DebugSidebar", "Entry", "thumbnail"]

log = logging.getLogger("ui")

TICK = 0.25  # seconds between two batches sent to the browser
QUEUE = 512  # frames kept per port between two ticks
RING = 1000  # entries kept (searched by the filter)
VIEW = 200  # lines the browser holds
ROWS_PER_TICK = 25  # new lines sent per tick at most: 100 lines/s, whatever the frame rate
THUMB = 96  # pixels on the longest side of a thumbnail
MAX_ENCODED = 256_000  # bytes of a JPEG/PNG shown as a thumbnail as it is; bigger ones are not
IMAGE_INTERVAL = 0.5  # seconds between two thumbnails of one port
TEXT = 160  # characters of a value shown


def thumbnail(value: object) -> str | None:
    """A small ``data:`` URL for an image value (None when it is too big to send as it is)."""
    if isinstance(value, np.ndarray) and is_image(value):
        step = max(1, math.ceil(max(value.shape[0], value.shape[1]) / THUMB))
        return png_data_url(value[::step, ::step])
    if encoded_image_mime(value) is not None and isinstance(value, bytes | bytearray | memoryview) \
            and len(value) <= MAX_ENCODED:
        return image_data_url(value)
    return None


def _image_text(value: object) -> str:
    if isinstance(value, np.ndarray):
        return f"image {value.shape[1]}x{value.shape[0]}" + (f"x{value.shape[2]}" if value.ndim == 3 else "")
    mime = encoded_image_mime(value) or "image"
    size = len(value) if isinstance(value, bytes | bytearray | memoryview) else 0
    return f"{mime.split('/')[-1].upper()} image, {size} bytes"


def _clock(ts_ms: int) -> str:
    seconds = ts_ms / 1000
    return time.strftime("%H:%M:%S", time.localtime(seconds)) + f".{int(ts_ms % 1000):03d}"


@dataclass(frozen=True, slots=True)
class Entry:
    """One frame as the sidebar lists it."""

    n: int  # its number in this sidebar (increasing)
    ts: int  # the frame's timestamp (ms), or when it came for what is not a frame
    source: str  # task.port
    text: str
    image: str | None = None  # a thumbnail's data URL

    def matches(self, needle: str) -> bool:
        return not needle or needle in self.source.lower() or needle in self.text.lower()

    def row(self) -> dict[str, Any]:
        data: dict[str, Any] = {"n": self.n, "time": _clock(self.ts), "source": self.source, "text": self.text}
        if self.image is not None:
            data["image"] = self.image
        return data


class DebugList(ui.element, component="static/debug_list.js"):
    """The list in the browser; lines travel as batches (:meth:`push`), never the whole list again,
    except after a filter change or a resume (:meth:`reset`). :attr:`rows` mirrors what it holds."""

    def __init__(self, *, empty: str) -> None:
        super().__init__()
        self._props["initial"] = []
        self._props["max"] = VIEW
        self._props["empty"] = empty
        self.rows: deque[dict[str, Any]] = deque(maxlen=VIEW)  # newest first
        self.sent = 0  # lines sent to the browser, all told

    def push(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        self.rows.extendleft(rows)  # rows are oldest first: the newest ends up first
        self.sent += len(rows)
        self.run_method("push", rows)

    def reset(self, rows: list[dict[str, Any]]) -> None:
        self.rows.clear()
        self.rows.extendleft(rows)
        self.sent += len(rows)
        self.run_method("reset", rows)

    def _displayed_contents(self, *, only_visible: bool) -> list[Any]:
        texts = [f"{r['time']} {r['source']} {r['text']}" for r in self.rows]
        return [*super()._displayed_contents(only_visible=only_visible), *texts]


class _Watch:
    """One watched port: its topic, its subscription once open, when its last thumbnail was made."""

    def __init__(self, ref: str, topic: str) -> None:
        self.ref = ref
        self.topic = topic
        self.sub: Subscription | None = None
        self.last_image = 0.0
        self.dropped = 0


class DebugSidebar:
    """``DebugSidebar(panel, dep, outputs=lambda: ["n.out", ...])`` builds the sidebar where it is
    created; :meth:`toggle` a port (``task.port``) to watch it or not. ``on_watch(refs)`` is told
    which ports are watched after each change (the graph marks their toggles)."""

    #: subscriptions open right now, in this process (for the tests: every one closes)
    open_count = 0

    def __init__(self, panel: Panel, dep: str, *, outputs: Callable[[], Iterable[str]],
                 on_watch: Callable[[list[str]], Any] | None = None) -> None:
        self.panel = panel
        self.dep = dep
        self._outputs = outputs
        self._lease: Watching | None = None
        self._on_watch = on_watch
        self.watches: dict[str, _Watch] = {}
        self._closing: list[Subscription] = []
        self.ring: deque[Entry] = deque(maxlen=RING)
        self.paused = False
        self.frames = 0
        self.not_drawn = 0
        self.not_frames = 0
        self._n = 0
        self._needle = ""
        self._closed = False
        with ui.column().classes("w-full gap-1 edge-debug").mark("debug-sidebar") as self.root:
            with ui.row().classes("items-center gap-2 w-full no-wrap"):
                ui.label("Debug").classes("text-subtitle1 font-bold")
                ui.space()
                self.pause = ui.button("pause", icon="pause", on_click=self.toggle_pause).props(
                    "flat dense").mark("debug-pause")
                ui.button("clear", icon="delete_sweep", on_click=self.clear).props("flat dense").mark("debug-clear")
            self.picker = ui.select([], multiple=True, label="ports shown", value=[],
                                    on_change=lambda e: self._picked(e.value)).props(
                "dense use-chips clearable").classes("w-full").mark("debug-ports")
            self.filter = ui.input("filter lines", placeholder="a port or text in the value",
                                   on_change=lambda e: self.set_filter(e.value)).props(
                "dense clearable").classes("w-full").mark("debug-filter")
            self.stats = ui.label("").classes("text-caption text-grey-7").mark("debug-stats")
            self.list = DebugList(empty="Click the small square right of an output on the graph (or pick ports "
                                        "above) to list its frames here.").classes("w-full").mark("debug-list")
        self.refresh_ports()
        self.timer = ui.timer(TICK, self._tick)
        ui.context.client.on_delete(self.close)  # the page went away: unsubscribe

    # -- which ports --------------------------------------------------------------------------
    @property
    def watched(self) -> list[str]:
        return list(self.watches)

    def refresh_ports(self) -> None:
        """The picker's options: the deployment's outputs (and what is watched, were it gone)."""
        options = list(dict.fromkeys([*self._outputs(), *self.watches]))
        if options != self.picker.options:
            self.picker.set_options(options, value=self.watched)

    def set_deployed(self, deployed: bool) -> None:
        """Shown while the deployment is deployed; once it is not, every port is unwatched (nothing flows)."""
        self.root.visible = deployed
        if not deployed:
            for ref in list(self.watches):
                self.unwatch(ref)

    def toggle(self, ref: str) -> None:
        if ref in self.watches:
            self.unwatch(ref)
        else:
            self.watch(ref)

    def watch(self, ref: str) -> bool:
        """Show ``task.port``'s frames (they start with the next frame); False, and a notice, when it is no
        output of the deployment."""
        if ref in self.watches:
            return True
        outputs = list(self._outputs())
        if ref not in outputs:
            ui.notify(f"{ref} is not an output of {self.dep} (its outputs: {', '.join(outputs) or 'none'})",
                      type="warning")
            return False
        try:
            topic = self.panel.controller.port_topic(f"{self.dep}/{ref}")
        except (ConfigError, ValueError) as exc:
            ui.notify(str(exc), type="warning")
            return False
        self.watches[ref] = _Watch(ref, topic)  # subscribed at the next tick
        self._watch_changed()
        return True

    def unwatch(self, ref: str) -> None:
        watch = self.watches.pop(ref, None)
        if watch is None:
            return
        if watch.sub is not None:
            self._closing.append(watch.sub)
        self._watch_changed()

    def _picked(self, value: Any) -> None:
        wanted = [str(v) for v in value] if isinstance(value, list) else []
        for ref in [r for r in self.watches if r not in wanted]:
            self.unwatch(ref)
        for ref in wanted:
            if ref not in self.watches and not self.watch(ref):
                self.picker.set_value(self.watched)

    def _watch_changed(self) -> None:
        self.refresh_ports()
        if sorted(self.picker.value or []) != sorted(self.watched):
            self.picker.set_value(self.watched)
        if self._on_watch is not None:
            self._on_watch(self.watched)
        self._show_stats()

    # -- pause, clear, filter -------------------------------------------------------------------
    def toggle_pause(self) -> None:
        self.paused = not self.paused
        self.pause.text = "live" if self.paused else "pause"
        self.pause.props(f"icon={'play_arrow' if self.paused else 'pause'}")
        if not self.paused:  # back to live: the newest lines, those kept meanwhile included
            self._reset_view()
        self._show_stats()

    def clear(self) -> None:
        self.ring.clear()
        self.list.reset([])
        self._show_stats()

    def set_filter(self, text: str | None) -> None:
        needle = (text or "").strip().lower()
        if needle != self._needle:
            self._needle = needle
            self._reset_view()

    def shown(self) -> list[Entry]:
        """The entries of the ring the filter keeps, at most :data:`VIEW`, oldest first."""
        kept: list[Entry] = []
        for entry in reversed(self.ring):
            if len(kept) >= VIEW:
                break
            if entry.matches(self._needle):
                kept.append(entry)
        kept.reverse()
        return kept

    def _reset_view(self) -> None:
        self.list.reset([e.row() for e in self.shown()])

    # -- the subscriptions and the tick ---------------------------------------------------------
    async def _open(self, watch: _Watch) -> None:
        if self._lease is None:  # agents handing this deployment's streams over in-process publish them
            self._lease = Watching(self.panel.bus, self.panel.controller.topics,
                                   self.panel.controller.topics.all_streams(self.dep)).start()
        try:
            sub = await self.panel.bus.subscribe(watch.topic, maxsize=QUEUE, overflow=Overflow.DROP_OLDEST)
        except EdgeError as exc:  # refused by the broker (its ACL): say so once, and stop trying
            ui.notify(f"cannot show {watch.ref}: {exc}", type="warning")
            if self.watches.get(watch.ref) is watch:
                del self.watches[watch.ref]
                self._watch_changed()
            return
        if self._closed or self.watches.get(watch.ref) is not watch:  # closed or toggled off meanwhile
            await sub.aclose()
            return
        watch.sub = sub
        DebugSidebar.open_count += 1
        log.info("debug sidebar subscribed to %s", watch.topic)

    async def _release(self, sub: Subscription) -> None:
        DebugSidebar.open_count -= 1
        await sub.aclose()

    async def close(self) -> None:
        """Stop and unsubscribe from everything (idempotent)."""
        self._closed = True
        self.timer.cancel()
        lease, self._lease = self._lease, None
        if lease is not None:
            await lease.aclose()
        subs = [w.sub for w in self.watches.values() if w.sub is not None] + self._closing
        self._closing = []
        for watch in self.watches.values():
            watch.sub = None
        for sub in subs:
            await self._release(sub)
        if subs:
            log.info("debug sidebar of %s closed %d subscriptions", self.dep, len(subs))

    async def _tick(self) -> None:
        if self._closed:
            return
        closing, self._closing = self._closing, []
        for sub in closing:
            await self._release(sub)
        for watch in list(self.watches.values()):
            if watch.sub is None:
                await self._open(watch)
        now = time.monotonic()
        new: list[Entry] = []
        for watch in self.watches.values():
            if watch.sub is not None:
                new += self._drain(watch, now)
        new.sort(key=lambda e: (e.ts, e.n))
        self.ring.extend(new)
        if not self.paused:
            kept = [e for e in new if e.matches(self._needle)]
            drawn = kept[-ROWS_PER_TICK:]
            self.not_drawn += len(kept) - len(drawn)
            self.list.push([e.row() for e in drawn])
        self._show_stats()

    def _drain(self, watch: _Watch, now: float) -> list[Entry]:
        sub = watch.sub
        assert sub is not None
        messages = []
        for _ in range(QUEUE):  # bounded: what the queue holds
            try:
                messages.append(sub.get_nowait())
            except asyncio.QueueEmpty:
                break
        watch.dropped = sub.dropped
        entries: list[Entry] = []
        newest_image = -1
        newest_value: object = None
        for message in messages:
            self._n += 1
            try:
                frame = decode_frame(message.payload)
            except FrameError as exc:
                self.not_frames += 1
                entries.append(Entry(self._n, int(time.time() * 1000), watch.ref,
                                     f"not a frame ({len(message.payload)} bytes): {exc}"))
                continue
            self.frames += 1
            value = frame.value
            if classify(value) == "image":
                entries.append(Entry(self._n, frame.ts, watch.ref, _image_text(value)))
                newest_image = len(entries) - 1
                newest_value = value
            else:
                entries.append(Entry(self._n, frame.ts, watch.ref, describe(value, TEXT)))
        # one thumbnail per port at most every IMAGE_INTERVAL: the newest image of the batch
        if newest_image >= 0 and not self.paused and now - watch.last_image >= IMAGE_INTERVAL:
            entry = entries[newest_image]
            url = thumbnail(newest_value)
            if url is not None:
                watch.last_image = now
                entries[newest_image] = Entry(entry.n, entry.ts, entry.source, entry.text, url)
        return entries

    def _show_stats(self) -> None:
        dropped = sum(w.dropped for w in self.watches.values())
        parts = [f"{len(self.watches)} ports", f"{self.frames} frames"]
        if self.paused:
            parts.append("paused")
        if self.not_drawn:
            parts.append(f"{self.not_drawn} not drawn (more than {int(ROWS_PER_TICK / TICK)} lines/s)")
        if dropped:
            parts.append(f"{dropped} dropped")
        if self.not_frames:
            parts.append(f"{self.not_frames} not frames")
        text = " · ".join(parts)
        if self.stats.text != text:
            self.stats.text = text
