"""Video processing: change size, pixel format and frame rate; measure how much a picture moves.

``video_reformatter`` scales and converts with swscale (one cached context per task). With a
``rate`` it sends a constant frame rate: on each tick the newest frame that came (older ones
are skipped: that is the point of lowering a rate), or the previous one again if none came
(raising it), until the input has been silent for a second.
"""

from __future__ import annotations

import asyncio
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator

from edge.task import Port
from tasks.media.mediatask import RAW_VIDEO, MediaConfig, MediaTask
from tasks.media.raw import RawVideo, video_array, video_extra
from tasks.media.video import PixelFormat

if TYPE_CHECKING:
    import av
    import numpy as np
    import numpy.typing as npt
    from av.video.reformatter import VideoReformatter as Scaler
else:
    from tasks._lazy import numpy as np
    from tasks.media._av import av

    def Scaler() -> Any:
        return av.video.reformatter.VideoReformatter()

__all__ = ["VideoActivityMeter", "VideoReformatter", "scaled_size"]

_STALE = 1.0  # seconds without input after which a constant-rate output stops repeating


def scaled_size(width: int, height: int, want_width: int | None, want_height: int | None) -> tuple[int, int]:
    """The output size: as asked, or keeping the aspect ratio when one side is unset (even numbers)."""
    if want_width and want_height:
        return want_width, want_height
    if want_width:
        return want_width, max(2, round(height * want_width / width / 2) * 2)
    if want_height:
        return max(2, round(width * want_height / height / 2) * 2), want_height
    return width, height


def _even_or_none(value: int | None) -> int | None:
    if value is not None and value % 2:
        raise ValueError("must be even")
    return value


class VideoReformatterConfig(MediaConfig):
    queue: int = Field(default=2, ge=1, le=10_000)
    width: int | None = Field(default=None, ge=2, le=7680, description="unset: from height keeping the aspect, "
                                                                        "or the input's")
    height: int | None = Field(default=None, ge=2, le=4320)
    pixel_format: PixelFormat | None = Field(default=None, description="unset: the input's")
    rate: float | None = Field(default=None, gt=0, le=240, description="constant output frame rate; unset: "
                                                                        "every frame, as it comes")
    interpolation: Literal["fast_bilinear", "bilinear", "bicubic", "area", "point"] = "bilinear"

    _even = field_validator("width", "height")(_even_or_none)


class VideoReformatter(MediaTask):
    """Change the size, pixel format and frame rate of raw video."""

    Config = VideoReformatterConfig
    inputs = {"in": RAW_VIDEO}
    outputs = {"out": RAW_VIDEO}
    drop_oldest = frozenset({"in"})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sws = Scaler()
        #: input frames a lower output rate left out (by design: not counted as dropped)
        self.skipped = 0

    @classmethod
    def metadata_for(cls, config: Any, port: str, declared: Port) -> dict[str, Any]:
        c = config
        extra = {"width": c.width, "height": c.height, "pixel_format": c.pixel_format, "rate": c.rate}
        return {**super().metadata_for(config, port, declared), **{k: v for k, v in extra.items() if v is not None}}

    def convert(self, raw: RawVideo) -> npt.NDArray[np.uint8]:
        c = self.config
        width, height = scaled_size(raw.width, raw.height, c.width, c.height)
        fmt = c.pixel_format or raw.pixel_format
        if (width, height, fmt) == (raw.width, raw.height, raw.pixel_format):
            return raw.array
        frame = self._sws.reformat(raw.to_av(), width=width, height=height, format=fmt,
                                   interpolation=c.interpolation.upper())
        return video_array(frame, fmt)

    async def serve(self) -> None:
        if self.config.rate is None:
            while True:
                _, item = await self.lanes.get_any()
                assert isinstance(item, RawVideo)
                array = await self.work(self.convert, item)
                fmt = self.config.pixel_format or item.pixel_format
                await self.emit("out", array, ts=item.ts, extra=video_extra(fmt, item.pts, item.time_base))
        await self._constant_rate(self.config.rate)

    async def _constant_rate(self, rate: float) -> None:
        loop = asyncio.get_running_loop()
        time_base = Fraction(1, 1) / Fraction(rate).limit_denominator(1001)
        newest: RawVideo | None = None
        arrived = asyncio.Event()

        async def keep_newest() -> None:
            nonlocal newest
            while True:
                _, item = await self.lanes.get_any()
                if isinstance(item, RawVideo):
                    if newest is not None:
                        self.skipped += 1
                    newest = item
                    arrived.set()

        async def tick() -> None:
            nonlocal newest
            while True:
                await arrived.wait()  # the first frame after a silence starts the clock
                start, count, last_input = loop.time(), 0, loop.time()
                current: tuple[npt.NDArray[np.uint8], str, int] | None = None
                while loop.time() - last_input < _STALE:
                    if newest is not None:
                        raw, newest = newest, None
                        arrived.clear()
                        last_input = loop.time()
                        fmt = self.config.pixel_format or raw.pixel_format
                        current = (await self.work(self.convert, raw), fmt, raw.ts)
                    if current is not None:
                        array, fmt, ts = current
                        await self.emit("out", array, ts=ts, extra=video_extra(fmt, count, time_base))
                    count = max(count + 1, int((loop.time() - start) * rate))  # behind: skip ticks, no burst
                    await asyncio.sleep(max(0.0, start + count / rate - loop.time()))

        async with asyncio.TaskGroup() as group:
            group.create_task(keep_newest())
            group.create_task(tick())


class VideoActivityMeterConfig(MediaConfig):
    queue: int = Field(default=2, ge=1, le=10_000)
    threshold: float = Field(default=0.02, ge=0, le=1, description="activity above which 'active' turns true")
    hold_ms: int = Field(default=1000, ge=0, le=600_000, description="how long 'active' stays true after the "
                                                                     "last activity above the threshold")


class VideoActivityMeter(MediaTask):
    """How much the picture changes: the mean absolute difference of consecutive frames (0..1), and a flag.

    Measured on a 64x48 grey thumbnail, so it costs little whatever the frame size. ``activity``
    gets one number per frame; ``active`` gets a bool whenever the state changes.
    """

    Config = VideoActivityMeterConfig
    inputs = {"in": RAW_VIDEO}
    outputs = {"activity": Port(content="number"), "active": Port(content="bool")}
    drop_oldest = frozenset({"in"})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sws = Scaler()
        self._previous: npt.NDArray[np.int16] | None = None

    def measure(self, raw: RawVideo) -> float | None:
        thumb = self._sws.reformat(raw.to_av(), width=64, height=48, format="gray", interpolation="AREA")
        current = thumb.to_ndarray().astype(np.int16)
        previous, self._previous = self._previous, current
        if previous is None:
            return None
        return float(np.abs(current - previous).mean() / 255.0)

    async def serve(self) -> None:
        active: bool | None = None
        last_active_ts = 0
        while True:
            _, item = await self.lanes.get_any()
            assert isinstance(item, RawVideo)
            activity = await self.work(self.measure, item)
            if activity is None:
                continue
            await self.emit("activity", round(activity, 6), ts=item.ts)
            if activity > self.config.threshold:
                last_active_ts = item.ts
            now_active = item.ts - last_active_ts <= self.config.hold_ms and last_active_ts > 0
            if now_active != active:
                active = now_active
                await self.emit("active", active, ts=item.ts)

