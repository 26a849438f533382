"""The dashboard's chart card: a ``plot`` task's series over time, in a window the user picks.

The task keeps its whole ``window_s`` in at most ``max_points`` points per series (``tasks/displays.py``);
the card shows that window or a shorter one picked in the card (1 min, 10 min, 1 h: those shorter
than the task's window), with clock times on the axis (:func:`ui.charts.time_axis`), a legend that
scrolls when there are many series, and at most :data:`MAX_DRAWN` points per series drawn: a longer
series is cut in :data:`MAX_DRAWN` / 2 slices of time, each drawn as its lowest and highest point,
so peaks stay visible. The window picked is the card's, not the task's: another panel shows its own.
"""

from __future__ import annotations

from nicegui import ui

from edge.protocol import PlotView
from ui.charts import RENDERER, time_axis

__all__ = ["MAX_DRAWN", "WINDOWS", "ChartCard", "downsample", "window_options"]

MAX_DRAWN = 400
WINDOWS = ((60_000, "1 min"), (600_000, "10 min"), (3_600_000, "1 h"))
WHOLE = 0  # the option "the task's whole window"


def span_text(ms: int) -> str:
    seconds = ms / 1000
    if seconds < 120:
        return f"{seconds:g} s"
    if seconds < 3600:
        return f"{seconds / 60:g} min"
    return f"{seconds / 3600:g} h"


def window_options(window_ms: int) -> dict[int, str]:
    """The windows a card offers for a task that keeps ``window_ms``: the shorter standard ones, then its own."""
    options = {ms: text for ms, text in WINDOWS if ms < window_ms}
    options[WHOLE] = f"all {span_text(window_ms)}" if options else span_text(window_ms)
    return options


def downsample(points: list[list[float]], start: float, end: float, limit: int = MAX_DRAWN) -> list[list[float]]:
    """The points from ``start`` on, at most ``limit``: past it, each of ``limit // 2`` slices of
    ``start..end`` keeps its lowest and its highest point (in time order)."""
    shown = [p for p in points if p[0] >= start]
    if len(shown) <= limit:
        return shown
    slices = max(1, limit // 2)
    width = max(end - start, 1) / slices
    kept: list[list[float]] = []
    low: list[float] | None = None
    high: list[float] | None = None
    current = -1
    for point in shown:
        index = min(int((point[0] - start) / width), slices - 1)
        if index != current:
            kept += _ordered(low, high)
            current, low, high = index, point, point
        else:
            assert low is not None and high is not None
            if point[1] < low[1]:
                low = point
            if point[1] > high[1]:
                high = point
    kept += _ordered(low, high)
    return kept


def _ordered(low: list[float] | None, high: list[float] | None) -> list[list[float]]:
    if low is None or high is None:
        return []
    if low is high:
        return [low]
    return [low, high] if low[0] <= high[0] else [high, low]


class ChartCard:
    """The body of a plot card: the window picker and the chart, redrawn from each view."""

    def __init__(self, task_id: str, *, rows: int = 1, picked: dict[str, int] | None = None) -> None:
        """``picked``: the window picked per task on this page, kept when the card is drawn again (arranging)."""
        self.task_id = task_id
        self.view: PlotView | None = None
        self.view_ts = 0
        self.picked = picked if picked is not None else {}
        self.window = ui.toggle({WHOLE: "…"}, value=WHOLE, on_change=self._picked).props(
            "dense no-caps size=md").mark(f"window-{task_id}")
        self.window.visible = False  # until a view tells the task's window
        self.chart = ui.echart({
            "animation": False,
            "legend": {"type": "scroll", "top": 0},
            "tooltip": {"trigger": "axis"},
            "grid": {"left": 44, "right": 16, "top": 32, "bottom": 28},
            "xAxis": time_axis(),
            "yAxis": {"type": "value", "scale": True},
            "series": [],
        }, renderer=RENDERER).classes("w-full").style(f"height: {192 + (rows - 1) * 170}px")

    def show(self, view: PlotView, ts: int | None) -> None:
        self.view, self.view_ts = view, ts or 0
        options = window_options(view.window_ms)
        if self.window.options != options:
            wanted = self.picked.get(self.task_id, WHOLE)
            self.window.set_options(options, value=wanted if wanted in options else WHOLE)
        self.window.visible = len(options) > 1
        self.redraw()

    def _picked(self) -> None:
        if self.view is not None:  # not the options' first setting
            self.picked[self.task_id] = self.window.value or WHOLE
        self.redraw()

    def redraw(self) -> None:
        view = self.view
        if view is None:
            return
        picked = self.window.value or WHOLE
        span = min(picked, view.window_ms) if picked else view.window_ms
        newest = max([self.view_ts, *(s.points[-1][0] for s in view.series if s.points)])
        start = newest - span
        options = self.chart.options
        options["series"] = [{"type": "line", "name": s.label or s.input, "showSymbol": False,
                              "data": downsample(s.points, start, newest)} for s in view.series]
        if newest:  # the axis spans the window picked, up to the newest point
            options["xAxis"]["min"], options["xAxis"]["max"] = start, newest
        y = options["yAxis"]
        for key, bound in (("min", view.y_min), ("max", view.y_max)):
            if bound is not None:
                y[key] = bound
            else:
                y.pop(key, None)
        self.chart.update()
