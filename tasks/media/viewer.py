"""video_viewer: a live picture for the control panel, as JPEG images at a limited rate.

The panel does not decode video. It subscribes to the viewer's ``view`` output (the stream
topic ``{root}/streams/{deployment}/{task}/view``) and shows each frame's value, a complete
JPEG image (``image/jpeg``), e.g. as ``data:image/jpeg;base64,…``. Frames carry ``width`` and
``height`` as control fields and the source frame's capture ``ts``. At most ``max_fps``
images a second are made, no wider than ``max_width``: frames in between are skipped (by
design, so not counted as dropped), which keeps the cost to the device and the broker small
whatever the source's rate and size.
"""

from __future__ import annotations

import time
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from pydantic import Field

from edge.task import Port
from tasks.media.mediatask import RAW_VIDEO, MediaConfig, MediaTask
from tasks.media.raw import RawVideo
from tasks.media.vprocess import scaled_size

if TYPE_CHECKING:
    import av
    import av.codec.context
    from av.video.reformatter import VideoReformatter as Scaler
else:
    from tasks.media._av import av

    def Scaler() -> Any:
        return av.video.reformatter.VideoReformatter()

__all__ = ["JpegEncoder", "VideoViewer"]

_FF_QP2LAMBDA = 118


class JpegEncoder:
    """Still JPEG images of frames, with one encoder per size (worker thread only)."""

    def __init__(self, quality: int) -> None:
        self.quality = quality
        self._ctx: av.VideoCodecContext | None = None
        self._scaler = Scaler()

    def encode(self, raw: RawVideo, width: int, height: int) -> bytes:
        ctx = self._ctx
        if ctx is None or (ctx.width, ctx.height) != (width, height):
            created = av.CodecContext.create("mjpeg", "w")
            assert isinstance(created, av.VideoCodecContext)
            ctx = created
            ctx.width, ctx.height, ctx.pix_fmt = width, height, "yuvj420p"
            ctx.time_base = Fraction(1, 1000)
            ctx.flags |= av.codec.context.Flags.qscale
            ctx.global_quality = self.quality * _FF_QP2LAMBDA
            ctx.open()
            self._ctx = ctx
        frame = self._scaler.reformat(raw.to_av(), width=width, height=height, format="yuvj420p")
        frame.pts = None
        return b"".join(bytes(packet) for packet in ctx.encode(frame))


class VideoViewerConfig(MediaConfig):
    queue: int = Field(default=1, ge=1, le=10_000)
    max_fps: float = Field(default=5.0, gt=0, le=60, description="images per second at most")
    max_width: int = Field(default=640, ge=16, le=7680, description="images are scaled down to this width")
    quality: int = Field(default=5, ge=2, le=31, description="JPEG quantizer: 2 is best, 31 smallest")


class VideoViewer(MediaTask):
    """Show raw video in the control panel: JPEG images at a limited rate on output ``view``."""

    Config = VideoViewerConfig
    inputs = {"in": RAW_VIDEO}
    outputs = {"view": Port(content="image", codec="jpeg", extra={"mime": "image/jpeg"})}
    drop_oldest = frozenset({"in"})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: frames left out to keep to max_fps
        self.skipped = 0

    async def serve(self) -> None:
        c = self.config
        jpeg = JpegEncoder(c.quality)
        interval = 1 / c.max_fps
        last: float | None = None
        while True:
            _, item = await self.lanes.get_any()
            assert isinstance(item, RawVideo)
            now = time.monotonic()
            if last is not None and now - last < interval:
                self.skipped += 1
                continue
            last = now
            width, height = item.width, item.height
            if width > c.max_width:
                width, height = scaled_size(width, height, c.max_width // 2 * 2, None)
            data = await self.work(jpeg.encode, item, width, height)
            await self.emit("view", data, ts=item.ts, extra={"width": width, "height": height})
