"""Text tasks: numbers and times to text, templates, matching, concatenation."""

from __future__ import annotations

import re
import string
from collections.abc import Collection, Mapping
from datetime import datetime, tzinfo
from functools import reduce
from typing import Any, Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from edge.frames import Frame
from edge.ports import PortRule
from tasks.base import ANY, NUMBER, TEXT, BuiltinTask, is_pause
from tasks.ordering import SyncFlag, SyncTimeoutMs, handle_inputs

__all__ = ["NumberToText", "StringConcatenator", "StringMatcher", "Template", "TextFormatter", "TimeToText"]

_MAX_WIDTH = 1000
MAX_FIELD: Final = 64
"""Longest field name (a field is an input port: a port id)."""
MAX_FIELDS: Final = 64
"""Most distinct fields of one template (each is an input)."""
MAX_TEXT: Final = 1_000_000
"""The longest text a template renders; a longer one is an input error."""
_REGEX_FLAGS = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL, "x": re.VERBOSE}


class Template:
    """A ``str.format`` template limited to ``{name}``, ``{name:spec}``, ``{name!r}`` and ``{name!s}`` with
    ``name`` among the allowed names: no attribute or index access, no nested fields. ValueError if not."""

    def __init__(self, template: str, names: Collection[str] | None = None) -> None:
        try:
            self.parts = list(string.Formatter().parse(template))
        except ValueError as exc:
            raise ValueError(f"invalid template: {exc} (write {{{{ and }}}} for literal braces)") from None
        for _, name, spec, conversion in self.parts:
            if name is None:
                continue
            if names is None and not (name.isidentifier() and name.isascii() and len(name) <= MAX_FIELD):
                raise ValueError(f"field {{{name[:70]}}} is not a name of at most {MAX_FIELD} letters, digits "
                                 f"and _ (fields are inputs: {{a}}, {{temperature}})")
            if names is not None and name not in names:
                raise ValueError(f"unknown field {{{name}}} in the template (fields: "
                                 f"{', '.join('{' + n + '}' for n in names)})")
            if conversion not in (None, "s", "r"):
                raise ValueError(f"conversion !{conversion} is not supported (use !s or !r)")
            if spec and ("{" in spec or any(int(n) > _MAX_WIDTH for n in re.findall(r"\d+", spec))):
                raise ValueError(f"format spec {spec!r} nests fields or asks for more than {_MAX_WIDTH} characters")
        self.fields = {name for _, name, _, _ in self.parts if name is not None}
        if len(self.fields) > MAX_FIELDS:
            raise ValueError(f"more than {MAX_FIELDS} fields")

    def render(self, values: Mapping[str, Any], missing: Mapping[str, str] | None = None) -> str:
        """The text; a field with no value is its ``missing`` text as is (else empty). ValueError or
        TypeError if a value does not fit its format spec, or the text would be over :data:`MAX_TEXT`."""
        out: list[str] = []
        size = 0
        for literal, name, spec, conversion in self.parts:
            out.append(literal)
            size += len(literal)
            if name is None:
                continue
            if name not in values:
                out.append((missing or {}).get(name, ""))
                size += len(out[-1])
                continue
            value = values[name]
            try:
                if conversion == "r":
                    value = repr(value)
                elif conversion == "s":
                    value = str(value)
                out.append(format(value, spec or ""))
            except ArithmeticError as exc:  # a bignum in a float format: 'int too large to convert to float'
                raise ValueError(str(exc)) from None
            size += len(out[-1])
            if size > MAX_TEXT:  # a huge value in a template that repeats it must not take gigabytes
                raise ValueError(f"the text would be over {MAX_TEXT:,} characters")
        return "".join(out)


class NumberToText(BuiltinTask):
    """Turn numbers into text with a template, e.g. `{value:.1f} °C`.

    `{value}` is replaced by the number, with an optional Python format spec (`{value:.2f}`,
    `{value:,}`, `{value:>8}`). Booleans count as 1 and 0. A value that is not a number is an input
    error; pause frames are ignored.
    """

    category = "text"
    stateless = True  # each frame on its own: a spec may give it replicas

    class Config(BaseModel):
        model_config = ConfigDict(extra="forbid")

        template: str = Field(default="{value}", max_length=1000,
                              description="the text, with {value} or {value:spec} where the number goes")

        @field_validator("template")
        @classmethod
        def _template(cls, value: str) -> str:
            Template(value, ("value",))
            return value

    inputs = {"in": NUMBER("number")}
    outputs = {"out": TEXT("text")}

    async def run(self) -> None:
        template = Template(self.config.template, ("value",))
        async for frame in self.receive("in"):
            if is_pause(frame):
                continue
            number = self.number("in", frame)
            if number is None:
                continue
            try:
                text = template.render({"value": number})
            except (ValueError, TypeError) as exc:
                self.reject("in", f"{number} does not fit the template {self.config.template!r}: {exc}")
                continue
            await self.send("out", text, ts=frame.ts)


def _timezone(name: str) -> tzinfo | None:
    """None for the machine's local time zone."""
    if name == "local":
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}: use 'local', 'UTC' or an IANA name such as "
                         "'Europe/Berlin'") from None


class TimeToText(BuiltinTask):
    """Format times as text with `strftime`, e.g. `%H:%M:%S`: each frame's timestamp, or its value.

    By default the time is the frame's timestamp, so any stream works; with `source: value` it is
    the frame's value, a number of milliseconds since the Unix epoch (a value that is not a number,
    or a time out of range, is an input error). The output keeps the input's timestamp.
    """

    category = "text"
    stateless = True  # each frame on its own: a spec may give it replicas

    class Config(BaseModel):
        model_config = ConfigDict(extra="forbid")

        format: str = Field(default="%Y-%m-%d %H:%M:%S", min_length=1, max_length=200,
                            description="a strftime format")
        timezone: str = Field(default="local",
                              description="'local' (the agent's time zone), 'UTC' or an IANA name like 'Europe/Berlin'")
        source: Literal["timestamp", "value"] = Field(
            default="timestamp", description="format the frame's timestamp, or its value (ms since the epoch)")

        @field_validator("timezone")
        @classmethod
        def _zone(cls, value: str) -> str:
            _timezone(value)
            return value

    inputs = {"in": ANY("time")}
    outputs = {"out": TEXT("text")}

    async def run(self) -> None:
        config: TimeToText.Config = self.config
        zone = _timezone(config.timezone)
        async for frame in self.receive("in"):
            if is_pause(frame):
                continue
            if config.source == "value":
                number = self.number("in", frame)
                if number is None:
                    continue
                ms: float = number
            else:
                ms = frame.ts
            try:
                moment = datetime.fromtimestamp(ms / 1000, zone)
                text = (moment if zone is not None else moment.astimezone()).strftime(config.format)
            except (OverflowError, OSError, ValueError) as exc:
                self.reject("in", f"time {ms} ms cannot be formatted: {exc}")
                continue
            await self.send("out", text, ts=frame.ts)


class TextFormatter(BuiltinTask):
    """Fill a template with the values of its inputs, e.g. `{a} is {temperature:.1f} °C`.

    Each field of the template is an input port of that name (`{a}`, `{temperature}`; the
    default template `{a}` has `a`), with an optional format spec (`{b:.1f}`) or conversion
    (`{a!r}`): the editor redraws the inputs as the template changes. A text is sent each time an
    input of the template gets a frame; a field
    whose input has no value yet shows its text in `defaults` as it is (else nothing), unless
    `wait_for_all` holds the output back until every field has had a frame. A value that does not
    fit its format spec (`{a:.1f}` with text) is an input error on the port whose frame triggered
    the output. Pause frames are ignored.
    """

    category = "text"

    class Config(BaseModel):
        model_config = ConfigDict(extra="forbid")

        template: str = Field(default="{a}", max_length=10_000,
                              description="a template; each {field} is an input of that name")
        defaults: dict[str, str] = Field(default_factory=dict,
                                         description="text for fields before their input's first frame")
        wait_for_all: bool = Field(default=False,
                                   description="send nothing until every field of the template has had a frame")
        synchronized: SyncFlag = False
        sync_timeout_ms: SyncTimeoutMs = 500

        @field_validator("template")
        @classmethod
        def _template(cls, value: str) -> str:
            Template(value)
            return value

        @field_validator("defaults")
        @classmethod
        def _defaults(cls, value: dict[str, str]) -> dict[str, str]:
            unknown = sorted(name[:70] for name in value
                             if not (name.isidentifier() and name.isascii() and len(name) <= MAX_FIELD))
            if unknown:
                raise ValueError(f"{', '.join(unknown)}: not a field name")
            return value

    inputs = {"a": ANY("field a")}  # those of the default template
    outputs = {"out": TEXT("text")}
    ports_from = (PortRule(side="inputs", field="template", kind="fields", label="field {}",
                           metadata=ANY("").metadata()),)

    async def run(self) -> None:
        config: TextFormatter.Config = self.config
        template = Template(config.template)
        fields = template.fields
        values: dict[str, Any] = {}

        async def handle(port: str, frame: Frame) -> None:
            if port not in fields or is_pause(frame):
                return
            values[port] = frame.value
            if config.wait_for_all and len(values) < len(fields):
                return
            try:
                text = template.render(values, config.defaults)
            except (ValueError, TypeError) as exc:
                self.reject(port, f"the values do not fit the template: {exc}")
                return
            await self.send("out", text, ts=frame.ts)

        await handle_inputs(self, handle, synchronized=config.synchronized, timeout_ms=config.sync_timeout_ms)


def _matcher(pattern: str, *, regex: bool, flags: str) -> re.Pattern[str]:
    bits = reduce(lambda acc, letter: acc | _REGEX_FLAGS[letter], flags, re.NOFLAG)
    try:
        return re.compile(pattern if regex else re.escape(pattern), bits)
    except re.error as exc:
        raise ValueError(f"invalid regular expression {pattern!r}: {exc}") from None


class StringMatcher(BuiltinTask):
    """Send 1 when a text contains a pattern (a plain substring, or a regular expression), else 0.

    `flags` are regular expression flags by letter: `i` ignore case, `m` multiline, `s` dot
    matches newline, `x` verbose; they apply to a plain pattern too (`i` by default). A regular
    expression matches anywhere in the text (`re.search`): anchor it with `^…$` to match the
    whole. A value that is not text is an input error; pause frames are ignored.
    """

    category = "text"
    stateless = True  # each frame on its own: a spec may give it replicas

    class Config(BaseModel):
        model_config = ConfigDict(extra="forbid")

        pattern: str = Field(default="", max_length=1000,
                             description="the substring or regular expression (empty: every text matches)")
        regex: bool = Field(default=False, description="the pattern is a regular expression")
        flags: str = Field(default="i", pattern=r"^[imsx]*$", description="regular expression flags: i, m, s, x")

        @model_validator(mode="after")
        def _compiles(self) -> StringMatcher.Config:
            _matcher(self.pattern, regex=self.regex, flags=self.flags)
            return self

    inputs = {"in": TEXT("text")}
    outputs = {"out": NUMBER("match")}

    async def run(self) -> None:
        config: StringMatcher.Config = self.config
        matcher = _matcher(config.pattern, regex=config.regex, flags=config.flags)
        async for frame in self.receive("in"):
            if is_pause(frame):
                continue
            text = self.text("in", frame)
            if text is not None:
                await self.send("out", int(matcher.search(text) is not None), ts=frame.ts)


class StringConcatenator(BuiltinTask):
    """Collect texts and send them joined when the control turns on.

    Texts arriving on `in` are appended (with `separator` between them); when `control` goes
    from off to on (crossing 0.5), the collected text is sent and the collection starts anew (an
    empty collection sends nothing). Only the last `max_length` characters are kept. With
    `synchronized`, a text and a control frame with the same timestamp are taken text first.
    """

    category = "text"

    class Config(BaseModel):
        model_config = ConfigDict(extra="forbid")

        separator: str = Field(default="", max_length=1000, description="put between two texts")
        max_length: int = Field(default=100_000, ge=1, le=10_000_000, description="most characters kept")
        synchronized: SyncFlag = False
        sync_timeout_ms: SyncTimeoutMs = 500

    inputs = {"in": TEXT("text"), "control": NUMBER("send")}
    outputs = {"out": TEXT("text")}

    async def run(self) -> None:
        config: StringConcatenator.Config = self.config
        parts: list[str] = []
        size = 0
        control = False

        async def handle(port: str, frame: Frame) -> None:
            nonlocal size, control
            if is_pause(frame):
                return
            if port == "in":
                text = self.text(port, frame)
                if text is not None:
                    size += len(text) + (len(config.separator) if parts else 0)
                    parts.append(text)
                    if size > 2 * config.max_length:  # keep memory bounded without joining every time
                        joined = config.separator.join(parts)[-config.max_length:]
                        parts[:] = [joined]
                        size = len(joined)
                return
            on = self.flag(port, frame)
            if on is None:
                return
            if on and not control and parts:
                await self.send("out", config.separator.join(parts)[-config.max_length:], ts=frame.ts)
                parts.clear()
                size = 0
            control = on

        await handle_inputs(self, handle, synchronized=config.synchronized, timeout_ms=config.sync_timeout_ms,
                            priority={"in": 0, "control": 1})
