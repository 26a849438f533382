"""Dashboard controls: a slider, a toggle, radio buttons and a text input, drawn by the control panel.

Each sends its value when it starts, whenever the panel (or a wired ``set``) changes it, and
again every ``repeat_ms``; the contract with the panel is in :mod:`tasks.dashboard`.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import Field, model_validator

from edge.frames import Frame
from edge.ports import PortRule
from edge.protocol import RadioButtonsView, SliderView, TextInputView, ToggleView
from tasks.base import ANY, NUMBER, TEXT, as_number
from tasks.dashboard import VIEW, ControlConfig, ControlTask
from tasks.hass import Entity, HomeAssistant, entity_fields

__all__ = ["RadioButtons", "Slider", "TextInput", "Toggle"]

MAX_OPTIONS = 32


class Slider(ControlTask):
    """A slider on the dashboard: sends a number between `min_value` and `max_value`.

    A value set from the panel (or on `set`) is clamped to the range and, with `step`, rounded to
    the nearest step from `min_value`. View: `{kind: slider, label, value, min, max, step}`.
    """

    kind = "slider"

    class Config(ControlConfig):
        min_value: float = Field(default=0.0, description="the left end")
        max_value: float = Field(default=1.0, description="the right end")
        step: float = Field(default=0.0, ge=0, description="the values are min_value + n * step (0: any value)")
        default: float = Field(default=0.0, description="the value when the task starts")

        @model_validator(mode="after")
        def _range(self) -> Slider.Config:
            if not all(map(math.isfinite, (self.min_value, self.max_value, self.step, self.default))):
                raise ValueError("the range, step and default must be finite numbers")
            if self.min_value >= self.max_value:
                raise ValueError("min_value must be below max_value")
            if not self.min_value <= self.default <= self.max_value:
                raise ValueError("default must lie between min_value and max_value")
            return self

    inputs = {"set": NUMBER("set")}
    outputs = {"out": NUMBER("value"), "view": VIEW}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.value: float = self.config.default

    def apply(self, frame: Frame) -> bool:
        number = self.number("set", frame)
        if number is None:
            return False
        config: Slider.Config = self.config
        value = min(max(float(number), config.min_value), config.max_value)
        steps = (value - config.min_value) / config.step if config.step else math.inf
        if math.isfinite(steps):  # a range of more steps than a float holds has no step to round to
            value = min(config.min_value + round(steps) * config.step, config.max_value)
        self.value = value
        return True

    async def emit(self) -> None:
        await self.send("out", self.value)

    def view(self) -> SliderView:
        config: Slider.Config = self.config
        return SliderView(kind="slider", label=config.label, value=self.value, min=config.min_value,
                          max=config.max_value, step=config.step)


class Toggle(ControlTask):
    """An on/off switch on the dashboard: sends 1 or 0.

    `set` takes a number (on above 0.5) or a bool. View: `{kind: toggle, label, value}` with a
    bool value.
    """

    kind = "toggle"

    class Config(ControlConfig):
        default: bool = Field(default=False, description="on or off when the task starts")

    inputs = {"set": NUMBER("set")}
    outputs = {"out": NUMBER("value"), "view": VIEW}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.value: bool = self.config.default

    def apply(self, frame: Frame) -> bool:
        on = self.flag("set", frame)
        if on is None:
            return False
        self.value = on
        return True

    async def emit(self) -> None:
        await self.send("out", int(self.value))

    def view(self) -> ToggleView:
        return ToggleView(kind="toggle", label=self.config.label, value=self.value)


class RadioButtons(ControlTask):
    """A choice among options on the dashboard: sends the chosen index, its text, and 1/0 per option.

    `index` is the chosen option's number (from 0), `label` its text, and `opt<k>` is 1 for the
    chosen option and 0 for the others: one output per option (`opt0` … `opt<n-1>` for n options,
    redrawn in the editor as options are added): wire them into a switch's
    controls. `set` takes an index or an option's text. View: `{kind: radio_buttons, label,
    options, selected}`.
    """

    kind = "radio_buttons"

    class Config(ControlConfig):
        options: list[str] = Field(default_factory=lambda: ["off", "on"], min_length=1, max_length=MAX_OPTIONS,
                                   description=f"the options' texts (1 to {MAX_OPTIONS}, distinct)")
        default: int = Field(default=0, ge=0, description="the option chosen when the task starts (from 0)")

        @model_validator(mode="after")
        def _options(self) -> RadioButtons.Config:
            if len(set(self.options)) != len(self.options):
                raise ValueError("the options must be distinct")
            if any(not 1 <= len(option) <= 200 for option in self.options):
                raise ValueError("each option is 1 to 200 characters")
            if self.default >= len(self.options):
                raise ValueError(f"default must be an option's index: 0 to {len(self.options) - 1}")
            return self

    inputs = {"set": ANY("set")}
    outputs = {"index": NUMBER("index"), "label": TEXT("label"),
               **{f"opt{k}": NUMBER(f"option {k}") for k in range(2)}, "view": VIEW}  # of the default options
    ports_from = (PortRule(side="outputs", field="options", kind="count", name="opt{}", label="option {}",
                           metadata=NUMBER("").metadata()),)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.selected: int = self.config.default

    def apply(self, frame: Frame) -> bool:
        options: list[str] = self.config.options
        value = frame.value
        number = as_number(value)
        if isinstance(value, str) and value in options:
            self.selected = options.index(value)
            return True
        if number is not None and number == int(number) and 0 <= number < len(options):
            self.selected = int(number)
            return True
        self.reject("set", f"{value!r} is neither an option's index (0 to {len(options) - 1}) nor its text")
        return False

    async def emit(self) -> None:
        await self.send("index", self.selected)
        await self.send("label", self.config.options[self.selected])
        for k in range(len(self.config.options)):
            await self.send(f"opt{k}", int(k == self.selected))

    def view(self) -> RadioButtonsView:
        return RadioButtonsView(kind="radio_buttons", label=self.config.label, options=list(self.config.options),
                                selected=self.selected)


class TextInput(ControlTask):
    """A text field on the dashboard: sends the text entered.

    A blank text is not sent (unless `send_empty`); texts over `max_length` characters are refused
    as input errors. It does not repeat by default. View: `{kind: text_input, label, value}`.
    """

    kind = "text_input"

    class Config(ControlConfig):
        repeat_ms: int = Field(default=0, ge=0, le=3_600_000,
                               description="re-send the text at this interval (0: only when it is set)")
        default: str = Field(default="", max_length=10_000, description="the text when the task starts")
        send_empty: bool = Field(default=False, description="send blank texts too")
        max_length: int = Field(default=10_000, ge=1, le=1_000_000, description="longest text accepted")

    inputs = {"set": TEXT("set")}
    outputs = {"out": TEXT("text"), "view": VIEW}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.value: str = self.config.default

    def apply(self, frame: Frame) -> bool:
        text = self.text("set", frame)
        if text is None:
            return False
        if len(text) > self.config.max_length:
            self.reject("set", f"a text of {len(text)} characters is over max_length {self.config.max_length}")
            return False
        self.value = text
        return True

    async def emit(self) -> None:
        if self.value.strip() or self.config.send_empty:
            await self.send("out", self.value)

    def view(self) -> TextInputView:
        return TextInputView(kind="text_input", label=self.config.label, value=self.value)

    def home_assistant_entity(self, option: HomeAssistant) -> Entity:
        return entity_fields(self.view(), option, max_length=self.config.max_length)
