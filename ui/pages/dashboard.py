"""A deployment's dashboard: its dashboard tasks (sliders, toggles, radio buttons, text inputs,
status lights, text boxes, bars, plots, spectra) drawn as live widgets.

The contract is the task library's (``tasks/dashboard.py``): a dashboard type says
``"dashboard": kind`` in its catalog entry; the task publishes what to draw, retained, on its
``view`` output's stream topic (an empty retained payload: it is not running); a control takes
new values as frames on ``{root}/streams/{deployment}/{task}/set`` unless the spec wires its
``set`` input. The panel holds no state of its own: the views it subscribes to are the state,
so every open panel shows the same values and a reload loses nothing.

A **video viewer** (a type whose ``view`` output has the metadata ``"mime": "image/jpeg"``, such
as ``video_viewer``; contract in ``docs/media.md``) is drawn as live video: its ``video`` output's
H.264 played by the browser at the source's rate (:mod:`ui.video_player`), or, where the browser
cannot, the fallback: each frame on its ``view`` topic is a whole JPEG image, shown as it comes
(at most every redraw), with its size, rate and age; a label says which of the two the card shows.
Its images are not retained: until the first one comes, and when none has come for
:data:`STALE_AFTER` seconds, the card says so.

A deployment has one dashboard or several (the spec's ``dashboards``, laid out by
:mod:`ui.dashboard_layout`): the first at ``/deployments/{dep}/dashboard``, each at
``/deployments/{dep}/dashboard/{id}``, with tabs between them, cards in a grid of ``w`` columns by
``h`` rows (one column on a phone), and an arrange mode that saves the layout by republishing the
spec (:mod:`ui.dashboard_arrange`). A plot is a chart card (:mod:`ui.chart_card`).

A card is ``live`` only while its task runs on an online agent (the state every view shows,
:mod:`edge.controller.views`); otherwise its retained view is old news: the card is dimmed and
says ``stale``, why (``agent offline 25 s``, ``failed``…) and how old its value is.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from nicegui import ui

from edge.bus import Message, Subscription
from edge.controller.views import TaskView, format_age, task_view
from edge.errors import FrameError, TopicError
from edge.frames import decode_frame, encode_frame, now_ms
from edge.graph import DeploymentSpec, TaskSpec
from edge.protocol import (
    DashboardView,
    PlotView,
    RadioButtonsView,
    SliderView,
    SpectrumView,
    StatusDisplayView,
    TextDisplayView,
    TextInputView,
    ToggleView,
    ValidationError,
    ValueBarView,
    ViewFrame,
    WebViewerView,
    problem,
    web_url_problem,
)
from edge.topics import is_valid_id
from ui.app import Panel, current
from ui.chart_card import ChartCard
from ui.charts import RENDERER
from ui.dashboard_arrange import CSS, Dragging, card_controls, draggable, save_layout, tabs
from ui.dashboard_layout import Board, Layout
from ui.display_text import show_newest
from ui.frame import deployment_nav, frame
from ui.preview import encoded_image_mime, image_data_url
from ui.video_player import VideoPlayer

__all__ = ["KINDS", "Widget", "create", "dashboard_tasks"]

log = logging.getLogger("ui")

ECHO_GUARD = 1.0  # seconds during which a control ignores views after the user moved it
STALE_AFTER = 3.0  # seconds without a picture after which a video viewer says it has none
VIDEO = "video_viewer"
SPECTRUM = "audio_frequency_display"
WEB = "web_viewer"
#: what a shown web page may do in its frame: run its scripts, use its own origin's storage, submit forms,
#: open pop-ups; not navigate the panel's page (no allow-top-navigation)
WEB_SANDBOX = "allow-scripts allow-same-origin allow-forms allow-popups"


def dashboard_tasks(spec: DeploymentSpec, types: dict[str, dict[str, Any]]) -> list[tuple[TaskSpec, str]]:
    """The tasks of a spec the dashboard draws, with their kind, in spec order."""
    result = []
    for task in spec.tasks:
        entry = types.get(task.type, {})
        kind = entry.get("dashboard")
        if isinstance(kind, str) and kind:
            result.append((task, kind))
        elif is_video_viewer(entry):
            result.append((task, VIDEO))
    return result


def is_video_viewer(entry: dict[str, Any]) -> bool:
    """A catalog entry whose ``view`` output sends JPEG images (the video viewer contract)."""
    outputs = entry.get("outputs")
    view = outputs.get("view") if isinstance(outputs, dict) else None
    return isinstance(view, dict) and view.get("mime") == "image/jpeg"


class Widget:
    """One dashboard task's card: :meth:`show` draws a view, ``send`` publishes a value on its ``set``."""

    def __init__(self, task: TaskSpec, kind: str, *, send: Callable[[Any], Awaitable[None]] | None,
                 driven_by: str | None, w: int = 1, h: int = 1,
                 controls: Callable[[], None] | None = None, windows: dict[str, int] | None = None,
                 deployment: str | None = None) -> None:
        self.task = task
        self.deployment = deployment  # a video viewer plays its H.264 from this deployment's stream
        self.kind = kind
        self._send = send
        self.driven_by = driven_by
        self._touched = 0.0
        self._updating = False
        self._value_ts: int | None = None  # when the view shown was published (ms), None: no view
        self._stale = False
        self.rows = h
        self._windows = windows
        with ui.card().classes(f"edge-w{w} edge-h{h}").mark(f"widget-{task.id}") as self.card:
            if controls is not None:  # the arrange mode's buttons
                controls()
            self.title = ui.label(task.label or task.id).classes("text-subtitle1 font-bold")
            ui.label(f"{task.id} · {kind}").classes("text-caption text-grey-7")
            self.state = ui.label("not running").classes("text-caption text-grey-7").mark(f"state-{task.id}")
            self.body = ui.column().classes("w-full gap-1")
            if driven_by:
                ui.label(f"set by {driven_by}").classes("text-caption")
        with self.body:
            self._build()

    # -- building ---------------------------------------------------------------------------------------
    def _build(self) -> None:
        disabled = self._send is None
        self.control: Any = None
        if self.kind == "slider":
            self.control = ui.slider(min=0, max=1, step=0.001, value=0, on_change=self._changed).props(
                "label thumb-size=28px track-size=6px")  # a thumb a finger hits
        elif self.kind == "toggle":
            self.control = ui.switch(on_change=self._changed)
        elif self.kind == "radio_buttons":
            self.control = ui.radio([], on_change=self._changed)
        elif self.kind == "text_input":
            self.control = ui.input("text").classes("w-full").on("keydown.enter", self._send_text)
            ui.button("send", on_click=self._send_text).props("flat dense").mark(f"send-{self.task.id}")
        elif self.kind == "status_display":
            with ui.row().classes("items-center gap-2"):
                self.light = ui.element("div").classes("w-6 h-6 rounded-full").style("background: #bdbdbd")
                self.text = ui.label()
        elif self.kind == "text_display":
            self.text = ui.label().classes("edge-mono w-full max-h-60 overflow-auto")
        elif self.kind == "value_bar":
            with ui.element("div").classes("w-full h-5 rounded bg-grey-3 overflow-hidden") as self.track:
                self.bar = ui.element("div").classes("h-full").style("width: 0%; background: #2196f3")
            self.text = ui.label()
        elif self.kind == VIDEO:
            self.player = VideoPlayer(self.deployment, self.task.id, on_change=self._player_changed) \
                if self.deployment else None
            self.picture = ui.interactive_image().classes("w-full bg-grey-3").style("min-height: 40px")
            self.picture.mark(f"picture-{self.task.id}").props(f'data-picture="{self.task.id}"')
            self.text = ui.label("waiting for the first picture").classes("text-caption").mark(
                f"picture-info-{self.task.id}")
            self.mode = ui.label(self.player.label if self.player else "JPEG").classes(
                "text-caption text-grey-7").mark(f"video-mode-{self.task.id}")
            self._arrivals: list[float] = []
            self._last_picture = 0.0
        elif self.kind == WEB:
            self.page = ui.element("iframe").classes("w-full border-0 bg-grey-2").style("height: 400px")
            self.page.props.update({"sandbox": WEB_SANDBOX, "referrerpolicy": "no-referrer", "data-web": self.task.id})
            self.page.mark(f"web-{self.task.id}")
            # the URL, a link that opens the page (for a site that refuses to be shown in a frame)
            self.link = ui.link("no page yet", new_tab=True).classes("text-caption break-all").mark(
                f"web-url-{self.task.id}")
            self.refused = ui.label().classes("text-caption text-negative").mark(f"web-refused-{self.task.id}")
            self.refused.visible = False
        elif self.kind == "plot":
            self.plot = ChartCard(self.task.id, rows=self.rows, picked=self._windows)
            self.chart = self.plot.chart
        elif self.kind == SPECTRUM:
            self.chart = ui.echart({
                "animation": False, "grid": {"left": 44, "right": 12, "top": 12, "bottom": 36},
                "xAxis": {"type": "category", "data": [], "name": "Hz", "nameLocation": "middle", "nameGap": 22},
                "yAxis": {"type": "value", "max": 0, "name": "dB"},
                "series": [{"type": "bar", "data": [], "barCategoryGap": "10%"}],
            }, renderer=RENDERER).classes("w-full h-48").mark(f"spectrum-{self.task.id}")
        else:
            self.text = ui.label(f"this panel does not know the dashboard kind {self.kind!r}").classes(
                "text-caption text-negative")
        if self.control is not None:
            self.control.mark(f"control-{self.task.id}")
            if disabled:
                self.control.disable()

    # -- sending ----------------------------------------------------------------------------------------
    async def _changed(self, e: Any) -> None:
        if self._updating or self._send is None:
            return
        value = e.value
        if self.kind == "toggle":
            value = bool(value)
        self._touched = time.monotonic()
        await self._send(value)

    async def _send_text(self) -> None:
        if self._send is not None and self.kind == "text_input":
            self._touched = time.monotonic()
            await self._send(self.control.value or "")

    # -- drawing ----------------------------------------------------------------------------------------
    def show(self, view: DashboardView | None, ts: int | None = None) -> None:
        self._value_ts = ts if view is not None else None
        if view is None:
            self.state.text = "not running"
            self.card.classes(add="opacity-60")
            return
        if not self._stale:
            self.card.classes(remove="opacity-60")
            self.state.text = "live"
        if view.label:
            self.title.text = view.label
        user_busy = time.monotonic() - self._touched < ECHO_GUARD
        self._updating = True
        try:
            getattr(self, f"_show_{self.kind}", self._show_unknown)(view, user_busy)
        finally:
            self._updating = False

    def _player_changed(self) -> None:
        """The browser plays H.264 (the JPEG picture hidden) or shows the pictures; the label says which."""
        assert self.player is not None
        self.picture.set_visibility(not self.player.playing)
        self.mode.text = self.player.label
        if (text := self.player.text()) is not None:
            self.text.text = text

    def show_picture(self, image: bytes, frame_ts: int, width: Any, height: Any) -> None:
        """Draw one JPEG image of a video viewer, with its size, the rate pictures come at and their age."""
        if self.player is not None and self.player.playing:  # H.264 on the card: the pictures just say it is live
            self._last_picture = time.monotonic()
            self.card.classes(remove="opacity-60")
            self.state.text = "live"
            return
        now = time.monotonic()
        self._last_picture = now
        recent = [t for t in self._arrivals if now - t < 2.0][-60:]
        recent.append(now)
        self._arrivals = recent
        span = now - self._arrivals[0]
        rate = (len(self._arrivals) - 1) / span if span > 0 else 0.0
        self.picture.set_source(image_data_url(image))
        self.card.classes(remove="opacity-60")
        self.state.text = "live"
        size = f"{width}x{height}" if isinstance(width, int) and isinstance(height, int) else "?"
        age = max(0, time.time_ns() // 1_000_000 - frame_ts)
        self.text.text = f"{size} · {rate:.1f} pictures/s · {age} ms old · {len(image) // 1024} KiB"

    def check_live(self, task: TaskView, now: int) -> None:
        """Mark the card stale, with why and its value's age, unless its task runs on an online agent."""
        if self.kind == VIDEO or self._value_ts is None:  # a video viewer ages by its pictures; no view: said so
            return
        if task.state == "running":
            if self._stale:
                self._stale = False
                self.card.classes(remove="opacity-60")
                self.state.text = "live"
            return
        self._stale = True
        text = f"stale · {task.label} · value {format_age((now - self._value_ts) / 1000)} old"
        if self.state.text != text:
            self.state.text = text
            self.card.classes(add="opacity-60")

    def check_stale(self) -> None:
        """A video viewer with no picture for a while says so (its images are not retained)."""
        if self.kind != VIDEO or not self._last_picture:
            return
        silent = time.monotonic() - self._last_picture
        text = f"no picture for {silent:.0f} s"
        if silent > STALE_AFTER and self.state.text != text:  # the page hears of it once a second, not per redraw
            self.state.text = text
            self.card.classes(add="opacity-60")

    def show_invalid(self, line: str) -> None:
        """A view that breaks its kind's model: said on the card, in one line; the last good one stays drawn."""
        self.state.text = line
        self.card.classes(add="opacity-60")

    def _show_unknown(self, view: Any, _busy: bool) -> None:
        del view

    def _show_slider(self, view: SliderView, busy: bool) -> None:
        low, high, step = view.min, view.max, view.step
        props = self.control.props
        if (props.get("min"), props.get("max")) != (low, high) or props.get("step") != (step or (high - low) / 1000):
            props["min"], props["max"], props["step"] = low, high, step or (high - low) / 1000
            self.control.update()
        if not busy:
            self.control.value = view.value

    def _show_toggle(self, view: ToggleView, busy: bool) -> None:
        if not busy:
            self.control.value = view.value

    def _show_radio_buttons(self, view: RadioButtonsView, busy: bool) -> None:
        wanted = dict(enumerate(view.options))
        if self.control.options != wanted:
            self.control.set_options(wanted)
        if not busy and view.selected in wanted:
            self.control.value = view.selected

    def _show_text_input(self, view: TextInputView, busy: bool) -> None:
        if not busy and not self.control.value:  # never overwrite what the user is typing
            self.control.value = view.value
        self.state.text = f"live · current: {view.value}"

    def _show_status_display(self, view: StatusDisplayView, _busy: bool) -> None:
        self.light.style(f"background: {view.color or '#bdbdbd'}")  # the model checked it: safe in a style
        self.text.text = view.text + (f" ({view.value:g})" if view.value is not None else "")

    def _show_text_display(self, view: TextDisplayView, _busy: bool) -> None:
        show_newest(self.text, view.text, self.task.config)

    def _show_value_bar(self, view: ValueBarView, _busy: bool) -> None:
        fraction, color = view.fraction, view.color
        if view.direction == "vertical":
            self.track.classes(replace="w-8 h-40 rounded bg-grey-3 overflow-hidden flex flex-col justify-end")
            self.bar.style(replace=f"width: 100%; height: {fraction * 100:.1f}%; background: {color}")
        else:
            self.track.classes(replace="w-full h-5 rounded bg-grey-3 overflow-hidden")
            self.bar.style(replace=f"height: 100%; width: {fraction * 100:.1f}%; background: {color}")
        self.text.text = f"{view.value:g}  ({view.min:g} … {view.max:g})"

    def _show_plot(self, view: PlotView, _busy: bool) -> None:
        self.plot.show(view, self._value_ts)


    def _show_web_viewer(self, view: WebViewerView, _busy: bool) -> None:
        """The page in the frame (its model took only http and https URLs; checked again before it is set)."""
        url = view.url if view.url is not None and web_url_problem(view.url) is None else None
        if self.page.props.get("src") != url:
            if url is None:
                self.page.props.pop("src", None)
            else:
                self.page.props["src"] = url
            self.page.update()
        self.page.style(f"height: {view.height}px")
        self.link.text = url or "no page yet"
        if self.link.props.get("href") != (url or ""):
            self.link.props["href"] = url or ""
        self.refused.text = view.refused
        self.refused.visible = bool(view.refused)

    def _show_audio_frequency_display(self, view: SpectrumView, _busy: bool) -> None:
        """Bars from the floor up, one per band, labelled with the band's centre frequency."""
        options = self.chart.options
        centres = [(lo * hi) ** 0.5 for lo, hi in zip(view.edges, view.edges[1:], strict=False)]
        options["xAxis"]["data"] = [f"{c / 1000:.1f}k" if c >= 1000 else f"{c:.0f}" for c in centres]
        options["yAxis"]["min"] = view.floor_db
        options["series"][0]["data"] = [round(level, 1) for level in view.levels]
        self.chart.update()


KINDS = ("slider", "toggle", "radio_buttons", "text_input", "status_display", "text_display", "value_bar", "plot",
         "audio_frequency_display", WEB, VIDEO)
VIEW_KINDS = frozenset(KINDS) - {VIDEO}  # those whose views are maps, each kind's of edge.protocol


class Dashboard:
    """The widgets of one deployment, fed by one subscription to its views, redrawn on a timer."""

    def __init__(self, panel: Panel, dep: str, board_id: str | None = None) -> None:
        self.panel = panel
        self.dep = dep
        self.board_id = board_id  # None: the first dashboard
        #: the layout being arranged (None: not arranging) and the version it was arranged on
        self.arranging: Layout | None = None
        self._arranged_on = 0
        self._dragging = Dragging()
        self._windows: dict[str, int] = {}  # the window each chart card shows, kept across redraws
        self._tasks: list[tuple[TaskSpec, str]] = []
        self.topics = panel.controller.topics
        self.widgets: dict[str, Widget] = {}
        self._views: dict[str, bytes] = {}  # the newest view payload per task: the only state, and bounded
        self._dirty: set[str] = set()
        self._sub: Subscription | None = None
        self._spec: DeploymentSpec | None = None
        self._shown: list[tuple[str, str]] | None = None
        self._types_seen = -1
        self._types_checked = 0.0
        self._live_checked = 0.0
        self._closed = False
        #: video viewer frames that were not JPEG images; views that broke their kind's model (or no frame)
        self.bad_pictures = 0
        self.bad_views = 0
        ui.add_css(CSS, shared=False)
        deployment_nav(dep, "Dashboard")
        self.tabs = ui.row().classes("edge-tabs items-center gap-1 w-full")
        self.toolbar = ui.row().classes("items-center gap-2 w-full")
        self.note = ui.label().classes("text-grey-7").mark("dashboard-note")
        self.grid = ui.element("div").classes("edge-board").mark("board")
        self.timer = ui.timer(0.25, self._tick)
        ui.context.client.on_delete(self.close)

    def _on_view(self, message: Message) -> None:
        try:
            parsed = self.topics.parse(message.topic)
        except TopicError:
            return
        if parsed.task_id is not None:
            self._views[parsed.task_id] = message.payload
            self._dirty.add(parsed.task_id)

    async def close(self) -> None:
        self._closed = True
        self.timer.cancel()
        sub, self._sub = self._sub, None
        if sub is not None:
            await sub.aclose()

    def _send_for(self, task: TaskSpec) -> Callable[[Any], Awaitable[None]]:
        topic = self.topics.stream(self.dep, task.id, "set")

        async def send(value: Any) -> None:
            await self.panel.bus.publish(topic, encode_frame(value), qos=1)

        return send

    def _build(self, spec: DeploymentSpec | None, tasks: list[tuple[TaskSpec, str]]) -> None:
        self._spec, self._tasks = spec, tasks
        self._shown = [(task.id, kind) for task, kind in tasks]
        for container in (self.grid, self.tabs, self.toolbar):
            container.clear()
        self.widgets.clear()
        board: Board | None = None
        if spec is None:
            self.arranging = None
            self.note.text = f"{self.dep} is not deployed: its dashboard shows once it runs."
        else:
            kinds = {task.id: kind for task, kind in tasks}
            layout = self.arranging or Layout.of(list(spec.dashboards), kinds)
            board = layout.board(self.board_id)
            if board is None:
                self.note.text = (f"{self.dep} has no dashboard {self.board_id!r}; its dashboards: "
                                  + ", ".join(b.id for b in layout.boards))
            elif not tasks:
                self.note.text = ("this deployment has no dashboard tasks: add a slider, toggle, radio buttons, "
                                  "text input, status display, text display, value bar, plot or video viewer in "
                                  "the editor")
            elif not any(card.task in kinds for card in board.cards):
                self.note.text = (f"no cards on {board.title}: arrange, then move cards here with 'move to' "
                                  "on another dashboard")
            else:
                self.note.text = ""
            with self.tabs:
                tabs(layout, board or layout.boards[0], arranging=self.arranging is not None, switch=self._switch)
            with self.toolbar:
                self._draw_toolbar(layout, board)
        with self.grid:
            by_id = dict((task.id, (task, kind)) for task, kind in tasks)
            for card in board.cards if board is not None and spec is not None else []:
                if card.task not in by_id:
                    continue  # kept in the layout, not a dashboard task (now): not drawn
                task, kind = by_id[card.task]
                wired = next((str(e.source) for e in spec.edges if e.target.task == task.id
                              and e.target.port == "set"), None) if spec else None
                send = self._send_for(task) if kind in ("slider", "toggle", "radio_buttons", "text_input") \
                    and wired is None else None
                controls = partial(card_controls, self.arranging, board, task.id, self._rearranged) \
                    if self.arranging is not None and board is not None else None
                self.widgets[task.id] = Widget(task, kind, send=send, driven_by=wired, w=card.w, h=card.h,
                                               controls=controls, windows=self._windows, deployment=self.dep)
                if self.arranging is not None and board is not None:
                    draggable(self.widgets[task.id].card, self.arranging, board, task.id, dragging=self._dragging,
                              changed=self._rearranged)
        self._dirty = set(self.widgets)
        # pictures come at up to a few a second: redraw faster while a video viewer is shown
        self.timer.interval = 0.1 if any(w.kind == VIDEO for w in self.widgets.values()) else 0.25

    # -- tabs and arranging ------------------------------------------------------------------------------
    def _switch(self, board_id: str) -> None:
        if self.arranging is None:
            ui.navigate.to(f"/deployments/{self.dep}/dashboard/{board_id}")
            return
        self.board_id = board_id
        self._rearranged()

    def _rearranged(self) -> None:
        self._build(self._spec, self._tasks)

    def _draw_toolbar(self, layout: Layout, board: Board | None) -> None:
        if self.arranging is None:
            ui.button("arrange", icon="dashboard_customize", on_click=self._start).props("flat no-caps").mark(
                "arrange").tooltip("move and resize the cards, add dashboards")
            return
        ui.button("save layout", icon="save", on_click=self._save).props("color=positive no-caps").mark(
            "save-layout")
        ui.button("cancel", on_click=self._cancel).props("flat no-caps").mark("cancel-layout")
        if board is not None:
            ui.input("dashboard label", value=board.label or "",
                     on_change=lambda e: setattr(board, "label", (e.value or "").strip()[:200] or None)).props(
                "dense").classes("w-48").mark("dashboard-label")
            if len(layout.boards) > 1:
                ui.button("delete dashboard", icon="delete", on_click=lambda: self._remove(layout, board)).props(
                    "flat color=negative no-caps").mark("delete-dashboard")
        name = ui.input("new dashboard").props("dense").classes("w-40").mark("new-dashboard")
        ui.button("add", icon="add", on_click=lambda: self._add(layout, name.value or "")).props(
            "flat no-caps").mark("add-dashboard")

    def _start(self) -> None:
        if self._spec is None:
            return
        self.arranging = Layout.of(list(self._spec.dashboards), {t.id: k for t, k in self._tasks})
        self._arranged_on = self._spec.version
        self._rearranged()

    def _cancel(self) -> None:
        self.arranging = None
        self._rearranged()

    def _add(self, layout: Layout, label: str) -> None:
        board = layout.add(label or "dashboard")
        if board is None:
            ui.notify("a deployment has 16 dashboards at most", type="warning")
            return
        self._switch(board.id)

    def _remove(self, layout: Layout, board: Board) -> None:
        if layout.remove(board):
            self.board_id = layout.boards[0].id
            self._rearranged()

    async def _save(self) -> None:
        if self.arranging is None:
            return
        saved = await save_layout(self.panel, self.dep, self.arranging, self._arranged_on)
        if saved is not None:
            self.arranging = None
            self._build(saved, dashboard_tasks(saved, self.panel.fleet.types(online_only=False)))

    async def _tick(self) -> None:
        if self._closed:
            return
        if self._sub is None:
            pattern = self.topics.all_streams_of_port("view", self.dep)
            self._sub = await self.panel.bus.subscribe(pattern, qos=1, callback=self._on_view)
        spec = self.panel.fleet.deployments.get(self.dep)
        now = time.monotonic()
        # a new spec, or (checked every 2 s) a catalog that now tells which of its tasks are dashboard tasks
        catalog_moved = self.panel.changes.since(self._types_seen, "agent") and now - self._types_checked > 2
        if spec is not self._spec or self._shown is None or catalog_moved:
            self._types_seen, self._types_checked = self.panel.changes.revision, now
            tasks = dashboard_tasks(spec, self.panel.fleet.types(online_only=False)) if spec else []
            if spec is not self._spec or self._shown != [(t.id, k) for t, k in tasks]:
                if self.arranging is not None and spec is not None and spec is not self._spec:
                    ui.notify(f"{self.dep} version {spec.version} was deployed meanwhile: saving this layout "
                              "will be refused; cancel and arrange again", type="warning", multi_line=True)
                self._build(spec, tasks)
        for task_id in list(self._dirty):
            widget = self.widgets.get(task_id)
            if widget is None:
                continue
            self._dirty.discard(task_id)
            payload = self._views.get(task_id)
            if widget.kind == VIDEO:
                if payload:
                    self._show_picture(widget, payload)
                continue
            if not payload:
                widget.show(None)
            elif widget.kind in VIEW_KINDS:
                self._show_view(widget, payload)
            # a kind this panel does not know: its card says so, its views are not read
        for widget in self.widgets.values():
            widget.check_stale()
        if spec is not None and now - self._live_checked >= 1.0:  # ages move on by the second
            self._live_checked = now
            wall = now_ms()
            for widget in self.widgets.values():
                widget.check_live(task_view(self.panel.fleet, self.dep, widget.task, now=wall), wall)

    def _show_view(self, widget: Widget, payload: bytes) -> None:
        """Draw a view parsed by its kind's model (:class:`edge.protocol.ViewFrame`); one that is not a frame,
        breaks the model or is of another kind is counted and said on its card."""
        try:
            decoded = decode_frame(payload)
            frame = ViewFrame.model_validate({**decoded.extra, "ts": decoded.ts, "seq": decoded.seq,
                                              "value": decoded.value})
        except FrameError as exc:
            why = f"not a frame: {exc}"
        except ValidationError as exc:
            why = f"not a {widget.kind} view: {problem(exc)}"
        else:
            if frame.value.kind == widget.kind:
                widget.show(frame.value, frame.ts)
                return
            why = f"a {frame.value.kind} view, not a {widget.kind} one"
        self.bad_views += 1
        widget.show_invalid(f"invalid view ({self.bad_views} so far): {why}"[:200])
        if self.bad_views == 1:  # the cards count the rest: a flood of bad views does not flood the log
            log.warning("dashboard %s: the view of %s is invalid (the next ones are counted on their cards): %s",
                        self.dep, widget.task.id, why)

    def _show_picture(self, widget: Widget, payload: bytes) -> None:
        try:
            frame = decode_frame(payload)
        except FrameError as exc:
            self.bad_pictures += 1
            widget.text.text = f"not a frame ({self.bad_pictures} bad so far): {exc}"
            return
        if encoded_image_mime(frame.value) != "image/jpeg":
            self.bad_pictures += 1
            widget.text.text = (f"not a JPEG image but {type(frame.value).__name__} "
                                f"({self.bad_pictures} bad so far)")
            return
        widget.show_picture(bytes(frame.value), frame.ts, frame.extra.get("width"), frame.extra.get("height"))


def create() -> None:
    @ui.page("/deployments/{dep}/dashboard")
    def dashboard_page(dep: str) -> None:
        page(dep, None)

    @ui.page("/deployments/{dep}/dashboard/{board}")
    def board_page(dep: str, board: str) -> None:
        page(dep, board)


def page(dep: str, board: str | None) -> None:
    """A deployment's dashboard: ``board`` names one of its dashboards (None: the first)."""
    panel = current()
    with frame(f"{dep} dashboard", active="/deployments"):
        if not is_valid_id(dep):
            ui.label(f"{dep!r} is not a deployment id").classes("text-negative")
            return
        if board is not None and not is_valid_id(board):
            ui.label(f"{board[:80]!r} is not a dashboard id").classes("text-negative")
            return
        try:
            Dashboard(panel, dep, board)
        except TopicError as exc:
            ui.label(str(exc)).classes("text-negative")
