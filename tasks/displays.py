"""Dashboard displays: a status light, a text box, a bar and a live plot, drawn by the control panel.

A display is a sink whose ``view`` the panel draws (contract in :mod:`tasks.dashboard`). It
publishes its view when it starts, then after changes at most every ``refresh_ms``, so a fast
input costs the broker and the panel a bounded rate.
"""

from __future__ import annotations

import asyncio
import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from edge.frames import Frame
from edge.ports import PortRule
from edge.protocol import PlotSeries, PlotView, StatusDisplayView, TextDisplayView, ValueBarView
from edge.topics import is_valid_id
from tasks.base import NUMBER, TEXT, is_pause
from tasks.dashboard import COLOR_PATTERN, VIEW, DashboardTask
from tasks.hass import Entity, HomeAssistant, HomeAssistantSetting, entity_fields, home_assistant_field
from tasks.ordering import handle_inputs

__all__ = ["Plot", "StatusDisplay", "TextDisplay", "ValueBar"]

PLOT_SERIES = ("a", "b", "c", "d")  # the default series
MAX_SERIES = 32


class DisplayConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: str = Field(default="", max_length=200, description="the caption the panel shows")
    refresh_ms: int = Field(default=100, ge=10, le=60_000, description="publish the view at most this often")


class EntityConfig(DisplayConfig):
    """A display that can be a Home Assistant sensor (every one but the plot)."""

    home_assistant: HomeAssistantSetting = home_assistant_field()


class DisplayTask(DashboardTask):
    """A display: ``update()`` takes input frames into the state that ``view()`` shows."""

    def update(self, port: str, frame: Frame) -> bool:
        """Take a frame into the state; False if nothing changed."""
        raise NotImplementedError

    async def serve(self) -> None:
        await self.publish_view()
        dirty = asyncio.Event()

        async def publish() -> None:
            while True:
                await dirty.wait()
                dirty.clear()
                await self.publish_view()
                await asyncio.sleep(self.config.refresh_ms / 1000)  # the rate limit, not a synchronization

        async def handle(port: str, frame: Frame) -> None:
            if not is_pause(frame) and self.update(port, frame):
                dirty.set()

        async with asyncio.TaskGroup() as group:
            group.create_task(publish())
            group.create_task(handle_inputs(self, handle))


class Level(BaseModel):
    """From ``min`` up (to the next level), the status reads ``text`` in ``color``."""

    model_config = ConfigDict(extra="forbid")

    min: float = Field(description="the lowest value of this level")
    text: str = Field(max_length=200, description="what the status says")
    color: str = Field(pattern=COLOR_PATTERN, description="#rgb, #rrggbb or a CSS colour name")


class StatusDisplay(DisplayTask):
    """A status light: a number becomes a text and a colour by thresholds (e.g. good / bad).

    The level shown is the one with the highest `min` that the value reaches (`>=`); below all
    of them, `below_text` in `below_color`. Before the first value the view has `value: null` and
    empty text. A value that is not a number is an input error. View: `{kind: status_display, label,
    value, text, color}`.
    """

    kind = "status_display"

    class Config(EntityConfig):
        levels: list[Level] = Field(default_factory=lambda: [Level(min=0.5, text="good", color="#4caf50")],
                                    max_length=20, description="the levels, each from its min up")
        below_text: str = Field(default="bad", max_length=200, description="the text below every level")
        below_color: str = Field(default="#f44336", pattern=COLOR_PATTERN, description="the colour below every level")

    inputs = {"in": NUMBER("value")}
    outputs = {"view": VIEW}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.value: float | None = None

    def update(self, port: str, frame: Frame) -> bool:
        number = self.number(port, frame)
        if number is None:
            return False
        self.value = float(number)
        return True

    def view(self) -> StatusDisplayView:
        config: StatusDisplay.Config = self.config
        text: str = ""
        color: str | None = None
        if self.value is not None:
            reached = [level for level in config.levels if self.value >= level.min]
            level = max(reached, key=lambda lv: lv.min) if reached else None
            text, color = (level.text, level.color) if level else (config.below_text, config.below_color)
        return StatusDisplayView(kind="status_display", label=config.label, value=self.value, text=text, color=color)

    def home_assistant_entity(self, option: HomeAssistant) -> Entity:
        config: StatusDisplay.Config = self.config
        return entity_fields(self.view(), option, levels=[*(level.text for level in config.levels), config.below_text])


class TextDisplay(DisplayTask):
    """A text box: shows the texts that arrive, appended (with a separator) or the latest only.

    Only the last `max_length` characters are kept. A value that is not text is an input error
    (convert numbers with `number_to_text`). View: `{kind: text_display, label, text}`.
    """

    kind = "text_display"

    class Config(EntityConfig):
        append: bool = Field(default=True, description="append each text (else show the latest only)")
        separator: str = Field(default="\n", max_length=100, description="put between appended texts")
        max_length: int = Field(default=2000, ge=1, le=100_000, description="most characters shown (the last ones)")

    inputs = {"in": TEXT("text")}
    outputs = {"view": VIEW}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.shown: str = ""

    def update(self, port: str, frame: Frame) -> bool:
        text = self.text(port, frame)
        if text is None:
            return False
        config: TextDisplay.Config = self.config
        joined = self.shown + config.separator + text if config.append and self.shown else text
        self.shown = joined[-config.max_length:]
        return True

    def view(self) -> TextDisplayView:
        return TextDisplayView(kind="text_display", label=self.config.label, text=self.shown)


class ValueBar(DisplayTask):
    """A bar showing a number in a range, with the fraction of the range it fills.

    `fraction` is `(value - min_value) / (max_value - min_value)` clamped to 0..1. A value that is
    not a finite number is an input error. View: `{kind: value_bar, label, value, min, max, fraction,
    color, direction}`.
    """

    kind = "value_bar"

    class Config(EntityConfig):
        min_value: float = Field(default=0.0, description="the empty end")
        max_value: float = Field(default=1.0, description="the full end")
        default: float = Field(default=0.0, description="the value shown before the first frame")
        color: str = Field(default="#2196f3", pattern=COLOR_PATTERN, description="#rgb, #rrggbb or a CSS colour name")
        direction: Literal["vertical", "horizontal"] = Field(default="vertical", description="how the bar grows")

        @model_validator(mode="after")
        def _range(self) -> ValueBar.Config:
            if not all(map(math.isfinite, (self.min_value, self.max_value, self.default))):
                raise ValueError("the range and default must be finite numbers")
            if self.min_value >= self.max_value:
                raise ValueError("min_value must be below max_value")
            return self

    inputs = {"in": NUMBER("value")}
    outputs = {"view": VIEW}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.value: float = self.config.default

    def update(self, port: str, frame: Frame) -> bool:
        number = self.number(port, frame)
        if number is None:
            return False
        self.value = float(number)
        return True

    def view(self) -> ValueBarView:
        config: ValueBar.Config = self.config
        # in halves: the range of two huge numbers (-1e308 .. 1e308) does not overflow to a NaN fraction
        span = config.max_value / 2 - config.min_value / 2
        fraction = (self.value / 2 - config.min_value / 2) / span if span > 0 else float(self.value >= config.max_value)
        return ValueBarView(kind="value_bar", label=config.label, value=self.value, min=config.min_value,
                            max=config.max_value, fraction=min(max(fraction, 0.0), 1.0), color=config.color,
                            direction=config.direction)


def add_point(points: list[tuple[int, float, int]], ts: int, value: float, *, bucket_ms: int, limit: int) -> None:
    """Append a point ``(ts, value, how many it stands for)``: one in the same ``bucket_ms`` slice of
    time as the last point is merged into it (the mean of their values, at the newer time), so a
    long window keeps a bounded number of points; past ``limit`` the oldest goes."""
    if points and ts >= points[-1][0] and ts // bucket_ms == points[-1][0] // bucket_ms:
        _, mean, n = points[-1]
        points[-1] = (ts, mean + (value - mean) / (n + 1), n + 1)
        return
    points.append((ts, value, 1))
    if len(points) > limit:
        del points[0]


class Plot(DisplayTask):
    """A live chart of number inputs over the last `window_s` seconds.

    The config's `series` names the inputs (default `a b c d`); each input is a series of
    `[timestamp ms, value]` points; points older than `window_s` before the newest are dropped.
    A series holds at most `max_points` points: the window is cut in `max_points` slices of time
    and the values that arrive in one slice become one point (their mean, at the newest time), so
    an hour's window at 10 values a second stays whole in a bounded view. The panel's chart card
    shows the whole window or a shorter one (1 min, 10 min, 1 h) within it. A value that
    is not a finite number is an input error. View: `{kind: plot, label, window_ms, y_min, y_max,
    series: [{input, label, points}]}` with a series for each connected input.
    """

    kind = "plot"

    class Config(DisplayConfig):
        refresh_ms: int = Field(default=250, ge=10, le=60_000, description="publish the view at most this often")
        series: list[str] = Field(default_factory=lambda: list(PLOT_SERIES), min_length=1, max_length=MAX_SERIES,
                                  description="the inputs, one per series (names of letters, digits, _ and -)")
        labels: dict[str, Annotated[str, Field(max_length=200)]] = Field(
            default_factory=dict, description="a name for each series, by input (at most 200 characters each)")
        window_s: float = Field(default=60.0, gt=0, le=86_400, description="how much history is shown")
        max_points: int = Field(default=300, ge=2, le=10_000, description="most points kept per series")
        y_min: float | None = Field(default=None, allow_inf_nan=False,
                                    description="the bottom of the y axis (null: automatic)")
        y_max: float | None = Field(default=None, allow_inf_nan=False,
                                    description="the top of the y axis (null: automatic)")

        @model_validator(mode="after")
        def _labels(self) -> Plot.Config:
            bad = [name[:70] for name in self.series if not is_valid_id(name)]
            if bad:
                raise ValueError(f"series {', '.join(map(repr, bad))}: a name is 1 to 64 letters, digits, _ or -")
            if len(set(self.series)) != len(self.series):
                raise ValueError("the series must be distinct")
            unknown = sorted(set(self.labels) - set(self.series))
            if unknown:
                raise ValueError(f"labels for unknown inputs {', '.join(unknown)} (inputs: {', '.join(self.series)})")
            return self

    inputs = {name: NUMBER(f"series {name}") for name in PLOT_SERIES}  # those of the default series
    outputs = {"view": VIEW}
    ports_from = (PortRule(side="inputs", field="series", kind="names", label="series {}",
                           metadata=NUMBER("").metadata()),)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.points: dict[str, list[tuple[int, float, int]]] = {name: [] for name in self.inputs}
        self.bucket_ms = max(1, int(self.config.window_s * 1000) // self.config.max_points)

    def update(self, port: str, frame: Frame) -> bool:
        number = self.number(port, frame)
        if number is None:
            return False
        add_point(self.points[port], frame.ts, float(number), bucket_ms=self.bucket_ms, limit=self.config.max_points)
        oldest = max(series[-1][0] for series in self.points.values() if series) - self.config.window_s * 1000
        for series in self.points.values():
            gone = next((i for i, point in enumerate(series) if point[0] >= oldest), len(series))
            del series[:gone]
        return True

    def view(self) -> PlotView:
        config: Plot.Config = self.config
        series = [PlotSeries(input=name, label=config.labels.get(name, name), points=[[p[0], p[1]] for p in points])
                  for name, points in self.points.items() if self.connected(name) or points]
        return PlotView(kind="plot", label=config.label, window_ms=round(config.window_s * 1000), y_min=config.y_min,
                        y_max=config.y_max, series=series)
