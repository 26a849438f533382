"""``clock_video``: raw video whose pixels say when each frame was made, for bench/video_latency.py.

Each rgb24 frame carries the wall clock (ms, modulo 2**24, about 4.7 hours) as two rows of 24
black/white blocks at the top, the same bits twice (a reader takes a value only when both rows
agree, so a picture caught mid-update or smeared by compression is not misread), a white and a
black block at the left of each row giving the reader its threshold. Blocks are
:data:`BLOCK` pixels high and ``width // 26`` wide: big enough for H.264 at CRF 26 and for JPEG.
Loaded by an agent as a task source (``EDGE_TASKS=bench/clock_source.py``), as users load theirs.
"""

from __future__ import annotations

import asyncio
from fractions import Fraction
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from pydantic import Field

from edge.frames import now_ms
from edge.task import Port
from tasks.media.mediatask import RAW_VIDEO, MediaConfig, MediaTask
from tasks.media.raw import video_extra
from tasks.media.synthetic import render_pattern

__all__ = ["BITS", "BLOCK", "ClockVideo", "draw_clock", "read_clock"]

BITS: Final = 24
BLOCK: Final = 24  # rows of a block
_COLUMNS: Final = BITS + 2  # the white and the black reference blocks, then the bits


def draw_clock(image: npt.NDArray[np.uint8], value: int) -> None:
    """Draw ``value`` (mod 2**24) into the top 2 * BLOCK rows of an H x W x 3 image."""
    width = image.shape[1] // _COLUMNS
    for row in range(2):
        top = row * BLOCK
        strip = image[top:top + BLOCK]
        strip[:, :width] = 255
        strip[:, width:2 * width] = 0
        for bit in range(BITS):
            on = (value >> (BITS - 1 - bit)) & 1
            strip[:, (bit + 2) * width:(bit + 3) * width] = 255 if on else 0


def read_clock(grey: npt.NDArray[np.uint8]) -> int | None:
    """The value of a picture's blocks (H x W luminance), None if its two rows disagree (the Python twin of
    the page's reader in bench/video_latency.py, tested against draw_clock)."""
    width = grey.shape[1] // _COLUMNS
    values = []
    for row in range(2):
        y = row * BLOCK + BLOCK // 2
        centre = [int(grey[y, c * width + width // 2]) for c in range(_COLUMNS)]
        threshold = (centre[0] + centre[1]) / 2
        value = 0
        for level in centre[2:]:
            value = value << 1 | (level > threshold)
        values.append(value)
    return values[0] if values[0] == values[1] else None


class ClockVideoConfig(MediaConfig):
    width: int = Field(default=640, ge=26 * 4, le=3840, multiple_of=2)
    height: int = Field(default=480, ge=2 * BLOCK + 2, le=2160, multiple_of=2)
    rate: float = Field(default=30.0, gt=0, le=120)


class ClockVideo(MediaTask):
    """Colour bars with the wall clock (ms) drawn as blocks at the top, in real time."""

    Config = ClockVideoConfig
    outputs = {"video": RAW_VIDEO}

    @classmethod
    def metadata_for(cls, config: Any, port: str, declared: Port) -> dict[str, Any]:
        return {**RAW_VIDEO.metadata(), "width": config.width, "height": config.height, "rate": config.rate,
                "pixel_format": "rgb24"}

    async def serve(self) -> None:
        c = self.config
        loop = asyncio.get_running_loop()
        still = render_pattern("bars", c.width, c.height, (0, 0, 0))
        time_base = Fraction(1, 1000)
        start = loop.time()
        index = 0
        while True:
            due = start + index / c.rate
            await asyncio.sleep(max(0.0, due - loop.time()))
            if loop.time() - due > 2 / c.rate:  # behind: skip to now rather than send a burst
                index = int((loop.time() - start) * c.rate) + 1
                continue
            image = still.copy()
            ts = now_ms()
            draw_clock(image, ts % 2**BITS)
            await self.emit("video", image, ts=ts, extra=video_extra("rgb24", ts, time_base))
            index += 1
