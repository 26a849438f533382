"""Synthetic sources for demos and tests without devices: a test pattern with a tone, rendered text.

``test_pattern`` draws colour bars (or a gradient, checkers, a solid colour) with a box moving
across and the frame number, and a sine tone, both on the same clock: frame ``i`` is due at
``i / rate`` seconds and audio sample ``n`` at ``n / sample_rate``, and a frame's ``ts`` is its
due time, so a recorder can line the tracks up. In real time a source that falls more than
0.2 s (and two frames) behind skips frames (counted in ``dropped``) instead of drifting ever later.
"""

from __future__ import annotations

import asyncio
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Final, Literal

from pydantic import Field, field_validator

from edge.frames import Frame, now_ms
from edge.task import Port
from tasks.media.audio import SampleFormat
from tasks.media.font import CELL_HEIGHT, draw_text, text_mask
from tasks.media.mediatask import RAW_AUDIO, RAW_VIDEO, MediaConfig, MediaTask
from tasks.media.raw import audio_extra, from_float, video_array, video_extra
from tasks.media.video import PixelFormat

if TYPE_CHECKING:
    import av
    import numpy as np
    import numpy.typing as npt
else:
    from tasks._lazy import numpy as np
    from tasks.media._av import av

__all__ = ["TestPattern", "TextRenderer", "render_pattern"]

Color = tuple[int, int, int]
_BARS: Final = ((192, 192, 192), (192, 192, 0), (0, 192, 192), (0, 192, 0), (192, 0, 192), (192, 0, 0),
                (0, 0, 192))
_MAX_BEHIND = 0.2  # seconds (and at least two frames) a real-time source may be late before it skips
_MAX_TEXT = 2000


def render_pattern(pattern: str, width: int, height: int, color: Color) -> npt.NDArray[np.uint8]:
    """The still part of a test pattern, H x W x 3 rgb24."""
    if pattern == "bars":
        columns = (np.arange(width) * len(_BARS) // width).clip(0, len(_BARS) - 1)
        return np.ascontiguousarray(np.broadcast_to(np.array(_BARS, dtype=np.uint8)[columns], (height, width, 3)))
    if pattern == "gradient":
        x = np.linspace(0, 255, width, dtype=np.float32)
        y = np.linspace(0, 255, height, dtype=np.float32)[:, np.newaxis]
        return np.stack([np.broadcast_to(x, (height, width)), np.broadcast_to(y, (height, width)),
                         (255 - (x + y) / 2)], axis=-1).astype(np.uint8)
    if pattern == "checkers":
        cells = ((np.arange(height)[:, np.newaxis] // 16 + np.arange(width) // 16) % 2).astype(np.uint8) * 255
        return np.repeat(cells[:, :, np.newaxis], 3, axis=2)
    return np.full((height, width, 3), color, dtype=np.uint8)


def _even(value: int) -> int:
    if value % 2:
        raise ValueError("must be even (yuv420p and the codecs need even sizes)")
    return value


class TestPatternConfig(MediaConfig):
    width: int = Field(default=640, ge=16, le=7680)
    height: int = Field(default=480, ge=16, le=4320)
    rate: float = Field(default=30.0, gt=0, le=240, description="frames per second")
    pixel_format: PixelFormat = "rgb24"
    pattern: Literal["bars", "gradient", "checkers", "solid"] = "bars"
    color: Color = Field(default=(32, 64, 160), description="rgb of the solid pattern")
    moving_box: bool = Field(default=True, description="a white box moving across, so frames differ")
    counter: bool = Field(default=True, description="the frame number in the top-left corner")
    video: bool = True
    audio: bool = True
    sample_rate: int = Field(default=48000, ge=8000, le=192000)
    channels: int = Field(default=2, ge=1, le=8)
    sample_format: SampleFormat = "s16"
    frequency: float = Field(default=440.0, gt=0, le=20000, description="tone in Hz")
    amplitude: float = Field(default=0.5, ge=0, le=1, description="peak, 1.0 = full scale")
    audio_frame_ms: float = Field(default=20.0, ge=1, le=1000, description="duration of one audio frame")
    frames: int | None = Field(default=None, ge=1, description="stop after this many video frames (and as "
                                                                 "much audio); unset: run until stopped")
    realtime: bool = Field(default=True, description="pace by the clock; off: as fast as possible")

    _even_width = field_validator("width", "height")(_even)


class TestPattern(MediaTask):
    """Synthetic video (colour bars, a moving box, the frame number) and a sine tone, for demos without devices."""

    __test__ = False  # not a pytest class, whatever its name says
    Config = TestPatternConfig
    outputs = {"video": RAW_VIDEO, "audio": RAW_AUDIO}

    @classmethod
    def metadata_for(cls, config: Any, port: str, declared: Port) -> dict[str, Any]:
        c = config
        if port == "video":
            return {**RAW_VIDEO.metadata(), "width": c.width, "height": c.height, "rate": c.rate,
                    "pixel_format": c.pixel_format}
        return {**RAW_AUDIO.metadata(), "rate": c.sample_rate, "channels": c.channels,
                "sample_format": c.sample_format}

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        start, start_ms = loop.time(), now_ms()
        async with asyncio.TaskGroup() as group:
            if self.config.video:
                group.create_task(self._video(start, start_ms))
            if self.config.audio:
                group.create_task(self._audio(start, start_ms))

    def _draw(self, still: npt.NDArray[np.uint8], index: int) -> npt.NDArray[np.uint8]:
        c = self.config
        image = still.copy()
        if c.moving_box:
            size = max(c.height // 6, 4)
            x = (index * 4) % max(c.width - size, 1)
            image[(c.height - size) // 2 : (c.height + size) // 2, x : x + size] = 255
        if c.counter:
            scale = max(c.height // 120, 1)
            draw_text(image, str(index), x=4 * scale, y=4 * scale, color=(255, 255, 255), scale=scale)
        if c.pixel_format == "rgb24":
            return image
        return video_array(av.VideoFrame.from_ndarray(image, format="rgb24"), c.pixel_format)

    async def _video(self, start: float, start_ms: int) -> None:
        c = self.config
        loop = asyncio.get_running_loop()
        still = render_pattern(c.pattern, c.width, c.height, c.color)
        time_base = Fraction(1, 1) / Fraction(c.rate).limit_denominator(1001)
        index = 0
        while c.frames is None or index < c.frames:
            due = index / c.rate
            if c.realtime:
                behind = (loop.time() - start - due) * c.rate  # in frames
                if behind > max(_MAX_BEHIND * c.rate, 2):
                    skip = min(int(behind), (c.frames - index) if c.frames is not None else int(behind))
                    self.not_sent += skip
                    index += skip
                    continue
                await asyncio.sleep(max(0.0, start + due - loop.time()))
            image = await self.work(self._draw, still, index)
            ts = start_ms + round(due * 1000) if c.realtime else now_ms()
            pts = round(due / time_base)
            await self.emit("video", image, ts=ts, extra=video_extra(c.pixel_format, pts, time_base))
            index += 1
            if not c.realtime:
                await asyncio.sleep(0)

    async def _audio(self, start: float, start_ms: int) -> None:
        c = self.config
        loop = asyncio.get_running_loop()
        chunk = max(round(c.sample_rate * c.audio_frame_ms / 1000), 1)
        total = None if c.frames is None else round(c.frames / c.rate * c.sample_rate)
        time_base = Fraction(1, c.sample_rate)
        omega = 2 * np.pi * c.frequency / c.sample_rate
        position = 0
        while total is None or position < total:
            count = chunk if total is None else min(chunk, total - position)
            due = position / c.sample_rate
            if c.realtime:
                await asyncio.sleep(max(0.0, start + due - loop.time()))
            phase = omega * (position + np.arange(count, dtype=np.float64))
            tone = (c.amplitude * np.sin(phase)).astype(np.float32)
            samples = from_float(np.repeat(tone[:, np.newaxis], c.channels, axis=1), c.sample_format)
            ts = start_ms + round(due * 1000) if c.realtime else now_ms()
            await self.emit("audio", samples, ts=ts, extra=audio_extra(c.sample_format, c.sample_rate, position,
                                                                         time_base))
            position += count
            if not c.realtime:
                await asyncio.sleep(0)


class TextRendererConfig(MediaConfig):
    text: str = Field(default="edgetasks", max_length=_MAX_TEXT,
                      description="shown until a frame on 'text' replaces it")
    width: int = Field(default=640, ge=16, le=7680)
    height: int = Field(default=64, ge=16, le=4320)
    pixel_format: PixelFormat = Field(default="rgba", description="rgba keeps the background's transparency "
                                                                  "for a video_mixer")
    scale: int = Field(default=3, ge=1, le=64, description="pixels per font pixel (the font is 5x7 in 6x8 cells)")
    color: Color = (255, 255, 255)
    background: Color = (0, 0, 0)
    background_alpha: int = Field(default=160, ge=0, le=255)
    align: Literal["left", "center"] = "left"
    rate: float = Field(default=1.0, ge=0, le=60, description="frames per second while the text stays the same "
                                                              "(0: only when it changes)")

    _even_width = field_validator("width", "height")(_even)


class TextRenderer(MediaTask):
    """Render text onto a video frame (a built-in 5x7 bitmap font, numpy only), e.g. as an overlay to mix."""

    Config = TextRendererConfig
    inputs = {"text": Port(content="text")}
    outputs = {"out": RAW_VIDEO}

    @classmethod
    def metadata_for(cls, config: Any, port: str, declared: Port) -> dict[str, Any]:
        c = config
        return {**RAW_VIDEO.metadata(), "width": c.width, "height": c.height, "pixel_format": c.pixel_format}

    def render(self, text: str) -> npt.NDArray[np.uint8]:
        c = self.config
        image = np.zeros((c.height, c.width, 4), dtype=np.uint8)
        image[:, :] = (*c.background, c.background_alpha)
        mask_width = text_mask(text, c.scale).shape[1] if text else 0
        margin = c.scale * 2
        x = (c.width - mask_width) // 2 if c.align == "center" else margin
        lines = text.count("\n") + 1
        y = max((c.height - lines * CELL_HEIGHT * c.scale) // 2, 0) + c.scale
        draw_text(image, text, x=x, y=y, color=(*c.color, 255), scale=c.scale)
        if c.pixel_format == "rgba":
            return image
        return video_array(av.VideoFrame.from_ndarray(image, format="rgba"), c.pixel_format)

    async def serve(self) -> None:
        c = self.config
        text = c.text
        start = now_ms()
        while True:
            image = await self.work(self.render, text)
            ts = now_ms()
            await self.emit("out", image, ts=ts, extra=video_extra(c.pixel_format, ts - start, Fraction(1, 1000)))
            try:
                async with asyncio.timeout(1 / c.rate if c.rate else None):
                    _, item = await self.lanes.get_any()
            except TimeoutError:
                continue
            if isinstance(item, Frame):
                text = (item.value if isinstance(item.value, str) else str(item.value))[:_MAX_TEXT]

