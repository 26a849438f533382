"""Flow control: pass a value only when it changed (filter), at most so many per interval (throttle),
send something and something else after a delay, or when a stream goes quiet (trigger)."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, model_validator

from edge.errors import FrameError
from edge.frames import Frame, encode_value
from edge.task import Port
from tasks.base import ANY, BuiltinTask, as_number, content_of, is_pause
from tasks.deadline import Deadline
from tasks.ordering import handle_inputs

__all__ = ["Filter", "Throttle", "Trigger", "same_value"]

DAY_MS = 86_400_000


def same_value(a: Any, b: Any) -> bool:
    """Whether two values of frames are equal: numbers by value (1 and 1.0 and ``true``), anything else
    by type and content (maps with the same items in the same order; arrays of one dtype and shape)."""
    x, y = as_number(a), as_number(b)
    if x is not None and y is not None:
        return x == y
    if type(a) is not type(b):
        return False
    if a is None or isinstance(a, str | bytes):
        return bool(a == b)
    try:
        return encode_value(a) == encode_value(b)
    except FrameError:  # a value that came in a frame always encodes: this is for safety only
        return False


class Filter(BuiltinTask):
    """Report by exception: pass a value only when it changed, or changed by more than a band (deadband).

    `mode: changed` passes a value that differs from the reference; `mode: deadband` passes a
    number that differs from the reference by more than `band` (absolute) or `band_percent` (percent
    of the reference's magnitude), or by at least that much with `inclusive`. Values that are not
    numbers (text, maps, lists, NaN) pass in either mode when they are not equal to the reference
    (numbers compare by value, so 1, 1.0 and `true` are equal; other values by type and content).

    The reference is the last value sent (`compare: sent`, the default: a slow drift passes once it
    has added up to more than the band) or the last value received (`compare: received`: only a
    step between two successive values passes), Node-RED's rbe node's two choices. The first
    value passes and becomes the reference (`initial: skip`: it only becomes the reference). A pause
    frame passes and clears the reference, so the first value after it passes again.
    """

    category = "flow"

    class Config(BaseModel):
        model_config = ConfigDict(extra="forbid")

        mode: Literal["changed", "deadband"] = Field(
            default="changed", description="pass values that changed, or numbers that changed by more than the band")
        band: float = Field(default=0.0, ge=0, allow_inf_nan=False,
                            description="deadband: the absolute change a number must exceed")
        band_percent: float = Field(default=0.0, ge=0, le=1_000_000, allow_inf_nan=False,
                                    description="deadband: the change a number must exceed, in percent of the "
                                                "reference (instead of band)")
        inclusive: bool = Field(default=False, description="deadband: a change equal to the band passes too")
        compare: Literal["sent", "received"] = Field(
            default="sent", description="the reference: the last value sent, or the last value received")
        initial: Literal["send", "skip"] = Field(
            default="send", description="whether the first value (and the first after a pause) passes")

        @model_validator(mode="after")
        def _one_band(self) -> Filter.Config:
            if self.band and self.band_percent:
                raise ValueError("set band or band_percent, not both")
            return self

    inputs = {"in": ANY("input")}
    outputs = {"out": ANY("output")}

    async def run(self) -> None:
        config: Filter.Config = self.config
        reference: Any = None
        known = False
        async for frame in self.receive("in"):
            if is_pause(frame):
                known = False
                await self.send("out", frame.value, ts=frame.ts, paused=True)
                continue
            value = frame.value
            passes = config.initial == "send" if not known else self.differs(reference, value)
            if passes:
                await self.send("out", value, ts=frame.ts)
            if passes or config.compare == "received" or not known:
                reference, known = value, True

    def differs(self, reference: Any, value: Any) -> bool:
        config: Filter.Config = self.config
        a, b = as_number(reference), as_number(value)
        if config.mode == "changed" or a is None or b is None:
            return not same_value(reference, value)
        band = abs(a) * config.band_percent / 100 if config.band_percent else config.band
        change = abs(float(b) - float(a))  # in floats: two big ints' difference would not fit one
        return change >= band if config.inclusive else change > band


class Throttle(BuiltinTask):
    """At most `count` frames per interval: the first ones pass, the rest are dropped or the newest held.

    An interval starts with a frame that arrives when none is running; its first `count` frames
    pass at once. What comes after them in the same interval is dropped (`keep: first`), or
    (`keep: latest`) the newest of them is held and sent when the interval ends, which starts the
    next interval, so the last value of a burst always comes through. Frames left out are counted
    in the task's `dropped` metric (shown in its status). Pause frames pass at once and drop a
    held frame.
    """

    category = "flow"

    class Config(BaseModel):
        model_config = ConfigDict(extra="forbid")

        count: int = Field(default=1, ge=1, le=10_000, description="frames that pass per interval")
        interval_ms: int = Field(default=1000, ge=1, le=DAY_MS, description="the length of an interval")
        keep: Literal["first", "latest"] = Field(
            default="first", description="drop the frames over count, or send the newest of them when the interval "
                                         "ends")

    inputs = {"in": ANY("input")}
    outputs = {"out": ANY("output")}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: frames left out so far (part of ``dropped``)
        self.throttled = 0

    def dropped(self) -> int:
        return super().dropped() + self.throttled

    async def run(self) -> None:
        config: Throttle.Config = self.config
        interval = config.interval_ms / 1000
        window = Deadline()
        sent = 0
        held: Frame | None = None

        async def read() -> None:
            nonlocal sent, held
            async for frame in self.receive("in"):
                if is_pause(frame):
                    if held is not None:
                        held = None
                        self.throttled += 1
                    await self.send("out", frame.value, ts=frame.ts, paused=True)
                    continue
                if not window.pending:
                    window.after(interval)
                    sent = 0
                if sent < config.count:
                    sent += 1
                    await self.send("out", frame.value, ts=frame.ts)
                elif config.keep == "latest":
                    if held is not None:
                        self.throttled += 1
                    held = frame
                else:
                    self.throttled += 1

        async def tick() -> None:
            nonlocal sent, held
            while True:
                await window.passed()
                if held is not None:
                    frame, held = held, None
                    window.after(interval)
                    sent = 1
                    await self.send("out", frame.value, ts=frame.ts)

        async with asyncio.TaskGroup() as group:
            group.create_task(read())
            group.create_task(tick())


Source = Literal["value", "frame", "nothing"]


class Trigger(BuiltinTask):
    """Send a value on a frame, then another after a delay; or watch a stream and report when it goes quiet.

    `mode: trigger` (Node-RED's trigger node): a frame on `in` sends `first` at once and starts
    the delay; when it has passed, `second` is sent. Frames that arrive while the delay runs are
    ignored (`retrigger: ignore`), or each starts the delay again (`extend`), or each also sends
    `first` again (`restart`). A frame on `reset` stops the delay: `second` is not sent.

    `mode: watchdog`: the delay starts when the task starts and again with every frame on `in`;
    when it passes (the stream went quiet for `delay_ms`), `second` is sent, once. The next
    frame (and the very first one) sends `first`: the stream is alive again. A frame on `reset`
    starts the watch over.

    What is sent: the config's value (`send_first: value`, `send_second: value`), the value of
    the frame (`frame`: for `second`, the newest frame received), or nothing. Pause frames on
    `in` are ignored.
    """

    category = "flow"

    class Config(BaseModel):
        model_config = ConfigDict(extra="forbid")

        mode: Literal["trigger", "watchdog"] = Field(
            default="trigger", description="first then second after the delay; or second when the stream is quiet "
                                           "for the delay")
        delay_ms: int = Field(default=1000, ge=1, le=DAY_MS,
                              description="the delay before second (trigger); the silence that sends second (watchdog)")
        send_first: Source = Field(default="value",
                                   description="on a frame: the config's first, the frame's value, or nothing")
        first: JsonValue = Field(default=1, description="the value sent first (send_first: value)")
        send_second: Source = Field(default="value",
                                    description="after the delay: the config's second, the newest frame's value, or "
                                                "nothing")
        second: JsonValue = Field(default=0, description="the value sent after the delay (send_second: value)")
        retrigger: Literal["ignore", "extend", "restart"] = Field(
            default="ignore", description="trigger: frames during the delay are ignored, extend it, or extend it and "
                                          "send first again")

    inputs = {"in": ANY("trigger"), "reset": ANY("reset")}
    outputs = {"out": ANY("output")}

    @classmethod
    def metadata_for(cls, config: Any, port: str, declared: Port) -> dict[str, Any]:
        if "frame" in (config.send_first, config.send_second):
            return declared.metadata()
        sent = [v for source, v in ((config.send_first, config.first), (config.send_second, config.second))
                if source == "value"]
        return content_of(*sent)

    async def run(self) -> None:
        config: Trigger.Config = self.config
        delay = config.delay_ms / 1000
        watchdog = config.mode == "watchdog"
        timer = Deadline()
        latest: Any = None
        state: Literal["idle", "alive", "quiet"] = "idle"  # trigger: "alive" while the delay runs

        async def emit(source: Source, configured: Any, value: Any, ts: int | None = None) -> None:
            if source != "nothing":
                await self.send_or_count("in", "out", configured if source == "value" else value, ts=ts)

        async def handle(port: str, frame: Frame) -> None:
            nonlocal latest, state
            if port == "reset":
                state = "idle"
                if watchdog:
                    timer.after(delay)
                else:
                    timer.clear()
                return
            if is_pause(frame):
                return
            latest = frame.value
            if watchdog:
                timer.after(delay)
                if state != "alive":
                    state = "alive"
                    await emit(config.send_first, config.first, frame.value, frame.ts)
                return
            if state == "alive":
                if config.retrigger != "ignore":
                    timer.after(delay)
                    if config.retrigger == "restart":
                        await emit(config.send_first, config.first, frame.value, frame.ts)
                return
            state = "alive"
            timer.after(delay)
            await emit(config.send_first, config.first, frame.value, frame.ts)

        async def expire() -> None:
            nonlocal state
            while True:
                await timer.passed()
                if watchdog and state == "quiet":
                    continue
                state = "quiet" if watchdog else "idle"
                await emit(config.send_second, config.second, latest)

        if watchdog:
            timer.after(delay)
        async with asyncio.TaskGroup() as group:
            group.create_task(handle_inputs(self, handle))
            group.create_task(expire())
