"""mediaswitch: forward one of several inputs, switching cleanly.

A number on ``select`` (0 to 3, or ``"in2"``) asks for another input. Raw frames switch at
once; encoded packets switch at the new input's next keyframe, and until then the old input
keeps flowing, so a decoder downstream never sees a packet it cannot decode (it reopens
itself on the new input's keyframe, whose extradata says what the stream is). The output's
timeline stays continuous: each input's pts are shifted so that its first forwarded frame
follows the last one sent, whatever the inputs' own pts origins and time bases.
"""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction
from typing import Any, Final

from pydantic import Field, model_validator

from edge._inbox import Lane, Policy
from edge.errors import FrameError
from edge.frames import Frame
from edge.ports import PortRule
from edge.task import Port
from tasks.media.mediatask import MediaConfig, MediaTask, Received
from tasks.media.packets import EncodedPacket, is_packet
from tasks.media.raw import MS, encode_time_base, parse_time_base

__all__ = ["MediaSwitch"]

INPUTS: Final = ("in0", "in1", "in2", "in3")  # those of the default config
MAX_INPUTS: Final = 16
_DEFAULT_STEP: Final = Fraction(1, 30)


class MediaSwitchConfig(MediaConfig):
    queue: int = Field(default=16, ge=1, le=10_000)
    inputs: int = Field(default=len(INPUTS), ge=1, le=MAX_INPUTS, description="how many inputs in<k> (k from 0)")
    active: int = Field(default=0, ge=0, le=MAX_INPUTS - 1, description="the input forwarded at start")

    @model_validator(mode="after")
    def _active(self) -> MediaSwitchConfig:
        if self.active >= self.inputs:
            raise ValueError(f"active must be an input's number: 0 to {self.inputs - 1}")
        return self


class MediaSwitch(MediaTask):
    """Forward one of its inputs (raw frames or encoded packets of one kind); switch at the next keyframe.

    The config's `inputs` (default 4) is how many inputs `in<k>` it has (k from 0).
    """

    type_name = "mediaswitch"
    Config = MediaSwitchConfig
    inputs = {**{name: Port(label=f"input {i}") for i, name in enumerate(INPUTS)},
              "select": Port(content="number", label="input to forward (its number)")}
    ports_from = (PortRule(side="inputs", field="inputs", kind="count", name="in{}", label="input {}"),)
    outputs = {"out": Port()}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: the stream inputs in0, in1, ... of this instance
        self.streams = tuple(port for port in self.inputs if port != "select")
        self.active = self.streams[self.config.active]
        self.pending: str | None = None
        #: switches made, and the media time (s) the next output frame should start at
        self.switches = 0
        self._next: Fraction | None = None
        self._step = _DEFAULT_STEP
        self._last: Fraction | None = None
        self._shift: dict[str, Fraction] = dict.fromkeys(self.streams, Fraction(0))

    def make_lane(self, port: str, meta: Port) -> Lane[Received]:
        if port != "select":
            return self.lane(self.config.queue, Policy.KEYFRAME)
        return super().make_lane(port, meta)

    def parse(self, port: str, frame: Frame) -> Received:
        if port != "select" and is_packet(frame.value):
            return EncodedPacket.from_value(frame.value).with_ts(frame.ts)
        return frame

    # -- selecting --------------------------------------------------------------------------------
    def _select(self, value: Any) -> None:
        if isinstance(value, str) and value in self.streams:
            wanted = value
        elif isinstance(value, int | float) and not isinstance(value, bool) and value in range(len(self.streams)):
            wanted = self.streams[int(value)]
        else:
            self.in_metrics["select"].errors += 1
            self.warn("select:value", "select wants 0-%d or in0-in%d, got %r", len(self.streams) - 1,
                      len(self.streams) - 1, value)
            return
        self.pending = None if wanted == self.active else wanted

    # -- timeline ---------------------------------------------------------------------------------
    def _start(self, port: str, media: Fraction | None) -> None:
        """``port`` becomes active with a frame at ``media`` seconds: shift it to follow the output."""
        if self._next is not None and media is not None:
            self._shift[port] = self._next - media
        self.active, self.pending = port, None
        self.switches += 1

    def _advance(self, media: Fraction | None, duration: Fraction | None) -> None:
        if media is None:
            return
        if self._last is not None and media > self._last:
            self._step = media - self._last
        self._last = media
        self._next = media + (duration or self._step)

    def _forward(self, port: str, item: Received) -> tuple[Any, int, dict[str, Any] | None]:
        """The value, ts and control fields to send for ``item``, its times shifted."""
        shift = self._shift[port]
        if isinstance(item, EncodedPacket):
            tb = item.time_base
            delta = round(shift / tb)
            shifted = replace(item, pts=None if item.pts is None else item.pts + delta,
                              dts=None if item.dts is None else item.dts + delta)
            media = None if shifted.pts is None else shifted.pts * tb
            self._advance(media, item.duration * tb if item.duration else None)
            return shifted.to_value(), item.ts or 0, None
        assert isinstance(item, Frame)
        extra = dict(item.extra)
        pts = extra.get("pts")
        if type(pts) is int:
            try:
                tb = parse_time_base(extra.get("time_base"))
            except FrameError:
                tb = MS
            pts += round(shift / tb)
            extra["pts"], extra["time_base"] = pts, encode_time_base(tb)
            self._advance(pts * tb, None)
        return item.value, item.ts, extra or None

    @staticmethod
    def _media(item: Received) -> Fraction | None:
        if isinstance(item, EncodedPacket):
            return None if item.pts is None else item.pts * item.time_base
        if isinstance(item, Frame) and type(item.extra.get("pts")) is int:
            try:
                return int(item.extra["pts"]) * parse_time_base(item.extra.get("time_base"))
            except FrameError:
                return None
        return None

    async def serve(self) -> None:
        while True:
            port, item = await self.lanes.get_any()
            if port == "select":
                assert isinstance(item, Frame)
                self._select(item.value)
                continue
            if port == self.pending and (not isinstance(item, EncodedPacket) or item.keyframe):
                self._start(port, self._media(item))
            if port != self.active:
                continue  # not forwarded: other inputs, and the new one until its keyframe
            value, ts, extra = self._forward(port, item)
            await self.emit("out", value, ts=ts, extra=extra)
