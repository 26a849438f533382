"""The live inspector: the frames of one port as they flow, in the browser.

It subscribes through the controller's bus with a **bounded** queue (the oldest frames are
dropped, and counted, when the browser cannot keep up) and redraws on a timer, a few times a
second, whatever the frame rate: numbers as a live plot, text as a log, images as images
(PNG, at most a few per second), anything else as decoded CBOR, one line per frame. The
subscription opens when the page is connected and closes with the page or the dialog.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import Any

from nicegui import ui

from edge.bus import Overflow, Subscription
from edge.errors import ConfigError, FrameError
from edge.frames import decode_frame
from edge.watch import Watching
from ui.app import Panel
from ui.charts import RENDERER, time_axis
from ui.preview import classify, describe, image_data_url

__all__ = ["Inspector", "inspector_dialog"]

log = logging.getLogger("ui")

TICK = 0.25  # seconds between redraws
QUEUE = 256  # frames kept between two redraws
PLOT_POINTS = 300
LOG_LINES = 200
LINES_PER_TICK = 20
IMAGE_INTERVAL = 0.4  # seconds between two images


class Inspector:
    """``Inspector(panel, title="demo/add.out", topic=...)`` builds the view where it is created."""

    #: inspectors subscribed right now, in this process
    open_count = 0

    def __init__(self, panel: Panel, *, title: str, topic: str) -> None:
        self.panel = panel
        self.topic = topic
        self.frames = 0
        self.not_frames = 0
        self.dropped = 0
        self.paused = False
        self._sub: Subscription | None = None
        self._lease: Watching | None = None  # agents handing the stream over in-process publish it meanwhile
        self._closed = False
        self._points: deque[list[float]] = deque(maxlen=PLOT_POINTS)
        self._counts: deque[tuple[float, int]] = deque(maxlen=12)
        self._last_image = 0.0
        with ui.column().classes("w-full gap-2") as self.root:
            with ui.row().classes("items-center gap-3 w-full"):
                ui.label(title).classes("text-subtitle1 font-bold edge-mono")
                ui.label(topic).classes("text-caption text-grey-7 edge-mono")
                ui.space()
                self.stats = ui.label("0 frames").classes("text-caption").mark("inspector-stats")
                self.pause = ui.button("pause", on_click=self.toggle_pause).props("flat dense").mark(
                    "inspector-pause")
                ui.button("clear", on_click=self.clear).props("flat dense")
            self.last = ui.label("waiting for frames…").classes("edge-mono").mark("inspector-last")
            self.plot = ui.echart({
                "animation": False,
                "grid": {"left": 50, "right": 16, "top": 12, "bottom": 28},
                "xAxis": time_axis(),
                "yAxis": {"type": "value", "scale": True},
                "series": [{"type": "line", "showSymbol": False, "data": []}],
            }, renderer=RENDERER).classes("w-full h-64").mark("inspector-plot")
            # a plain <img> swapped when the next picture has loaded: no fade from white at every refresh
            self.image = ui.interactive_image().classes("w-full max-w-[640px]").mark("inspector-image")
            self.log = ui.log(max_lines=LOG_LINES).classes("w-full h-48").mark("inspector-log")
        for view in (self.plot, self.image, self.log):
            view.visible = False
        self.timer = ui.timer(TICK, self._tick)
        ui.context.client.on_delete(self.close)  # the page went away: unsubscribe

    async def _open(self) -> None:
        self._lease = Watching(self.panel.bus, self.panel.controller.topics, self.topic).start()
        sub = await self.panel.bus.subscribe(self.topic, maxsize=QUEUE, overflow=Overflow.DROP_OLDEST)
        if self._closed:  # closed while subscribing
            await sub.aclose()
            return
        self._sub = sub
        Inspector.open_count += 1
        log.info("inspector subscribed to %s", self.topic)

    async def close(self) -> None:
        """Stop redrawing and unsubscribe (idempotent)."""
        self._closed = True
        self.timer.cancel()
        lease, self._lease = self._lease, None
        if lease is not None:
            await lease.aclose()
        sub, self._sub = self._sub, None
        if sub is not None:
            Inspector.open_count -= 1
            await sub.aclose()
            log.info("inspector left %s", self.topic)

    def toggle_pause(self) -> None:
        self.paused = not self.paused
        self.pause.text = "resume" if self.paused else "pause"

    def clear(self) -> None:
        self._points.clear()
        self.plot.options["series"][0]["data"] = []
        self.plot.update()
        self.log.clear()

    async def _tick(self) -> None:
        if self._closed:
            return
        if self._sub is None:
            await self._open()  # the first tick comes once the page is connected
        sub = self._sub
        if sub is None:
            return
        batch = []
        while True:
            try:
                batch.append(sub.get_nowait())
            except asyncio.QueueEmpty:
                break
        self.dropped = sub.dropped
        now = time.monotonic()
        self._counts.append((now, len(batch)))
        if batch and not self.paused:
            self._show(batch)
        self._show_stats(now, len(batch))

    def _show_stats(self, now: float, _new: int) -> None:
        span = now - self._counts[0][0]
        rate = sum(n for _, n in list(self._counts)[1:]) / span if span > 0 else 0.0
        text = f"{self.frames} frames · {rate:.1f}/s · {self.dropped} dropped"
        if self.not_frames:
            text += f" · {self.not_frames} not frames"
        self.stats.text = text

    def _show(self, batch: list[Any]) -> None:
        numbers = False
        lines: list[str] = []
        image: Any = None
        last: Any = None
        for message in batch:
            try:
                frame = decode_frame(message.payload)
            except FrameError as exc:
                self.not_frames += 1
                lines.append(f"not a frame ({len(message.payload)} bytes): {exc}")
                continue
            self.frames += 1
            value = frame.value
            last = frame
            kind = classify(value)
            if kind == "number":
                self._points.append([frame.ts, float(value)])
                numbers = True
            elif kind == "image":
                image = value
            else:
                lines.append(f"#{frame.seq}  {describe(value)}")
        if last is not None:
            self.last.text = f"last value: {describe(last.value, 200)}  (#{last.seq})"
        if numbers:
            self.plot.visible = True
            self.plot.options["series"][0]["data"] = list(self._points)
            self.plot.update()
        if image is not None and time.monotonic() - self._last_image >= IMAGE_INTERVAL:
            self._last_image = time.monotonic()
            self.image.visible = True
            self.image.set_source(image_data_url(image))
        if lines:
            self.log.visible = True
            for line in lines[-LINES_PER_TICK:]:
                self.log.push(line)


def inspector_dialog(panel: Panel, *, title: str, topic: str, page: str | None = None) -> None:
    """The inspector of ``topic`` in a dialog (with a link to ``page``, its page of its own); closing it
    unsubscribes."""
    with ui.dialog() as dialog, ui.card().classes("w-[56rem] max-w-full"):
        inspector = Inspector(panel, title=title, topic=topic)
        with ui.row().classes("gap-4"):
            if page is not None:
                ui.link("open on its own page", page)
            ui.button("close", on_click=dialog.close).props("flat").mark("inspector-close")

    async def closed(e: Any) -> None:
        if not e.value:
            await inspector.close()
            dialog.delete()

    dialog.on_value_change(closed)
    dialog.open()


def port_topic(panel: Panel, dep: str, task: str, port: str, side: str) -> str:
    """The topic to inspect for a port: an output's stream, or the source an input reads."""
    if side == "out":
        return panel.controller.port_topic(f"{dep}/{task}.{port}")
    spec = panel.fleet.deployments.get(dep)
    source = spec.sources(task, panel.controller.topics).get(port) if spec else None
    if source is None:
        raise ConfigError(f"input {task}.{port} of {dep} is not connected: nothing to inspect", field="port")
    return source


def open_inspector(panel: Panel, dep: str, task: str, port: str, side: str) -> None:
    """The inspector of a port in a dialog; closing it unsubscribes."""
    try:
        topic = port_topic(panel, dep, task, port, side)
    except ConfigError as exc:
        ui.notify(str(exc), type="warning")
        return
    inspector_dialog(panel, title=f"{dep}/{task}.{port}", topic=topic,
                     page=f"/deployments/{dep}/inspect/{task}/{port}?side={side}")
