"""image_renderer: an image file from the agent's files folder as a video stream at a frame rate.

The image (PNG, JPEG, BMP, WebP, GIF's first frame, PPM…: whatever FFmpeg decodes) is read once,
scaled to ``width`` x ``height`` if set (one of them set keeps the aspect), converted to
``pixel_format``, and sent ``rate`` times a second, each frame stamped with its due time, as a
camera's would be. Its path follows the files folder's rules (:mod:`edge.files`): checked in the
config, and again when the file is opened. A text frame on ``path`` switches to another image of
the folder; one that cannot be shown is an input error, counted, and the current image stays.
"""

from __future__ import annotations

import asyncio
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from pydantic import Field, field_validator

from edge.errors import ConfigError
from edge.files import check_file_path
from edge.frames import Frame, now_ms
from edge.task import Port
from tasks.media.codecs import reason
from tasks.media.errors import ImageError
from tasks.media.mediatask import RAW_VIDEO, MediaConfig, MediaTask
from tasks.media.raw import video_array, video_extra
from tasks.media.video import PixelFormat
from tasks.media.vprocess import scaled_size

if TYPE_CHECKING:
    import av
    import numpy as np
    import numpy.typing as npt
else:
    from tasks._lazy import numpy as np
    from tasks.media._av import av

__all__ = ["ImageRenderer", "ImageRendererConfig", "load_image"]

#: files bigger than this are not read (a still image; a video file is for input_container)
MAX_FILE_BYTES: Final = 64 * 1024 * 1024
MAX_SIDE: Final = (7680, 4320)
MAX_PATH: Final = 1024
_MAX_BEHIND: Final = 0.2  # seconds (and two frames) late before frames are skipped rather than sent late


def load_image(path: Path, *, width: int | None, height: int | None, pixel_format: str) -> npt.NDArray[np.uint8]:
    """The first picture of the image file at ``path`` as a frame array, scaled and converted."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ImageError(f"cannot read image {path.name!r}: {exc.strerror or exc}") from exc
    if size > MAX_FILE_BYTES:
        raise ImageError(f"image {path.name!r} is {size} bytes, more than {MAX_FILE_BYTES}")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise ImageError(f"{path.name!r} holds no picture")
            frame = next(container.decode(video=0), None)
    except (av.error.FFmpegError, OSError) as exc:
        raise ImageError(f"cannot decode image {path.name!r}: {reason(exc)}") from exc
    if frame is None:
        raise ImageError(f"{path.name!r} holds no picture")
    if frame.width > MAX_SIDE[0] or frame.height > MAX_SIDE[1]:
        raise ImageError(f"image {path.name!r} is {frame.width}x{frame.height}, more than {MAX_SIDE[0]}x{MAX_SIDE[1]}")
    out_w, out_h = frame.width, frame.height
    if width or height:
        out_w, out_h = scaled_size(frame.width, frame.height, width, height)
    if pixel_format == "yuv420p":  # its chroma planes need even sizes
        out_w, out_h = max(2, out_w - out_w % 2), max(2, out_h - out_h % 2)
    if (out_w, out_h) != (frame.width, frame.height):
        frame = frame.reformat(width=out_w, height=out_h)
    return video_array(frame, pixel_format)


def _even(value: int | None) -> int | None:
    if value is not None and value % 2:
        raise ValueError("must be even (yuv420p and the codecs need even sizes)")
    return value


class ImageRendererConfig(MediaConfig):
    path: str = Field(default="image.png", min_length=1, max_length=MAX_PATH,
                      description="an image file in the agent's files folder (png, jpg, bmp, webp, gif, ppm…)")
    rate: float = Field(default=5.0, gt=0, le=120, description="frames per second")
    width: int | None = Field(default=None, ge=16, le=MAX_SIDE[0], description="scaled to this width; unset: "
                                                                              "the image's (or kept in aspect)")
    height: int | None = Field(default=None, ge=16, le=MAX_SIDE[1], description="scaled to this height; unset: "
                                                                               "the image's (or kept in aspect)")
    pixel_format: PixelFormat = "rgb24"
    frames: int | None = Field(default=None, ge=1, description="stop after this many frames; unset: run until "
                                                                 "stopped")

    _path = field_validator("path")(check_file_path)
    _even_sizes = field_validator("width", "height")(_even)


class ImageRenderer(MediaTask):
    """Send an image file of the agent's files folder as video frames at a rate; a path on ``path`` switches it."""

    Config = ImageRendererConfig
    inputs = {"path": Port(content="text")}
    outputs = {"out": RAW_VIDEO}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: frames left out after a stall (the same picture: nothing is lost)
        self.skipped = 0

    @classmethod
    def metadata_for(cls, config: Any, port: str, declared: Port) -> dict[str, Any]:
        c = config
        meta = {**RAW_VIDEO.metadata(), "rate": c.rate, "pixel_format": c.pixel_format}
        if c.width and c.height:  # else it depends on the image
            meta.update(width=c.width, height=c.height)
        return meta

    def load(self, value: str) -> npt.NDArray[np.uint8]:
        c = self.config
        return load_image(self.file_path(value), width=c.width, height=c.height, pixel_format=c.pixel_format)

    async def serve(self) -> None:
        c = self.config
        # a missing file fails the task (and the runtime retries): it may be copied in later
        image = await self.work(self.load, c.path)
        loop = asyncio.get_running_loop()
        start, start_ms = loop.time(), now_ms()
        time_base = Fraction(1, 1) / Fraction(c.rate).limit_denominator(1001)
        index = 0
        while c.frames is None or index < c.frames:
            due = index / c.rate
            behind = (loop.time() - start - due) * c.rate
            if behind > max(_MAX_BEHIND * c.rate, 2):  # the same picture again: skipped, not lost
                skip = min(int(behind), (c.frames - index) if c.frames is not None else int(behind))
                self.skipped += skip
                index += skip
                continue
            try:
                async with asyncio.timeout(max(0.0, start + due - loop.time())):
                    _, item = await self.lanes.get_any()
            except TimeoutError:
                await self.emit("out", image, ts=start_ms + round(due * 1000),
                                extra=video_extra(c.pixel_format, round(due / time_base), time_base))
                index += 1
                continue
            assert isinstance(item, Frame)
            image = await self.switch(item, image)

    async def switch(self, item: Frame, image: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
        """The image a ``path`` frame names, or ``image`` if it names none that can be shown (counted)."""
        metrics = self.in_metrics["path"]
        if not isinstance(item.value, str):
            self.count_error(metrics, "path:type", "a frame on 'path' holds a file name, not %s",
                             type(item.value).__name__)
            return image
        if len(item.value) > MAX_PATH:
            self.count_error(metrics, "path:long", "a frame on 'path' holds %d characters: a file name has at most %d",
                             len(item.value), MAX_PATH)
            return image
        try:
            check_file_path(item.value)
            return await self.work(self.load, item.value)
        except (ValueError, ConfigError) as exc:  # ImageError is a ValueError
            self.count_error(metrics, "path:bad", "cannot show %r: %s", item.value, exc)
            return image
