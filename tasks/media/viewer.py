"""video_viewer: a live picture for the control panel, as H.264 at the source's rate and JPEG images.

Two outputs, both no wider than ``max_width``:

* ``video``: every frame, encoded with libx264 (ultrafast, zerolatency: no frame held back, no
  B-frames), as encoded-packet maps (:mod:`tasks.media.packets`; keyframes every
  ``keyframe_interval`` frames carry the SPS/PPS). The panel forwards them over a websocket to the
  browser, which plays them with WebCodecs or Media Source Extensions (``docs/ui.md``). With
  ``h264: watched`` (the default) only while someone watches: the panel sends a frame on input
  ``keyframe`` when a browser joins and every few seconds while it plays (unwired, that input
  reads its stream topic ``{root}/streams/{deployment}/{task}/keyframe``), and the viewer encodes
  until :data:`WATCH_LEASE` seconds after the last; so a device nobody watches spends nothing on
  it. ``always``: every frame whoever watches (for a recorder wired to ``video``); ``off``: never.
  A frame whose value is ``true`` on ``keyframe`` also makes the next frame a keyframe, at most one
  every :data:`MIN_FORCED_GAP` seconds, so a new viewer need not wait for the schedule.
* ``view``: at most ``max_fps`` complete JPEG images (``image/jpeg``) a second, the fallback for a
  browser that cannot decode H.264 (and what the panel shows until the first keyframe). Frames
  carry ``width`` and ``height`` as control fields and the source frame's capture ``ts``; frames
  in between are skipped (by design, so not counted as dropped).
"""

from __future__ import annotations

import time
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from edge.task import Port, TaskContext
from edge.topics import sibling_topic
from tasks.media.mediatask import RAW_VIDEO, MediaConfig, MediaTask
from tasks.media.packets import EncodedPacket
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

__all__ = ["MIN_FORCED_GAP", "WATCH_LEASE", "H264Encoder", "JpegEncoder", "VideoViewer"]

_FF_QP2LAMBDA = 118
MIN_FORCED_GAP = 0.5  # seconds between two keyframes asked for on input keyframe: many browsers cost no more
WATCH_LEASE = 15.0  # seconds h264: watched encodes after the last frame on input keyframe (the panel: every 5 s)


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


class H264Encoder:
    """Frames to H.264 packets for a browser: libx264 ultrafast, zerolatency, SPS/PPS on keyframes (worker
    thread only). Reopened when the size changes; each frame's pts is its capture ts (ms)."""

    def __init__(self, keyframe_interval: int) -> None:
        self.keyframe_interval = keyframe_interval
        self._ctx: av.VideoCodecContext | None = None
        self._scaler = Scaler()
        self._template: EncodedPacket | None = None
        self._last_pts = -1
        #: the next frame is encoded as a keyframe (set from the event loop, read in the worker)
        self.force_keyframe = False

    def _open(self, width: int, height: int) -> av.VideoCodecContext:
        created = av.CodecContext.create("libx264", "w")
        assert isinstance(created, av.VideoCodecContext)
        ctx = created
        ctx.width, ctx.height, ctx.pix_fmt = width, height, "yuv420p"
        ctx.time_base = Fraction(1, 1000)
        ctx.gop_size = self.keyframe_interval
        ctx.max_b_frames = 0
        ctx.flags |= av.codec.context.Flags.global_header
        # baseline: what every WebCodecs and MSE decoder takes; no scene-cut keyframes: on schedule only
        ctx.options = {"preset": "ultrafast", "tune": "zerolatency", "profile": "baseline", "sc_threshold": "0",
                       "crf": "26", "forced-idr": "1"}  # a forced keyframe is an IDR: a decoder starts there
        ctx.open()
        self._template = EncodedPacket(kind="video", codec="h264", data=b"", pts=None, dts=None,
                                       time_base=ctx.time_base, keyframe=True, extradata=ctx.extradata or None,
                                       width=width, height=height, pixel_format="yuv420p")
        return ctx

    @property
    def is_open(self) -> bool:
        return self._ctx is not None

    def encode(self, raw: RawVideo, width: int, height: int) -> list[EncodedPacket]:
        ctx = self._ctx
        if ctx is None or (ctx.width, ctx.height) != (width, height):
            ctx = self._ctx = self._open(width, height)
        assert self._template is not None
        frame = self._scaler.reformat(raw.to_av(), width=width, height=height, format="yuv420p")
        pts = max(raw.ts, self._last_pts + 1)  # strictly increasing, whatever the capture clock did
        self._last_pts = pts
        frame.pts, frame.time_base = pts, ctx.time_base
        if self.force_keyframe:
            self.force_keyframe = False
            frame.pict_type = av.video.frame.PictureType.I
        return [EncodedPacket.from_av(packet, template=self._template, ts=raw.ts) for packet in ctx.encode(frame)]


class VideoViewerConfig(MediaConfig):
    queue: int = Field(default=1, ge=1, le=10_000)
    max_fps: float = Field(default=5.0, gt=0, le=60, description="images per second at most")
    max_width: int = Field(default=640, ge=16, le=7680, description="images are scaled down to this width")
    quality: int = Field(default=5, ge=2, le=31, description="JPEG quantizer: 2 is best, 31 smallest")
    h264: Literal["watched", "always", "off"] = Field(
        default="watched", description="every frame as H.264 on output video, which the panel plays at the source's "
                                       "rate: while a panel watches, always, or off (JPEG images only)")
    keyframe_interval: int = Field(default=30, ge=1, le=600,
                                   description="an H.264 keyframe every N frames: how long a new viewer waits at most")


class VideoViewer(MediaTask):
    """Show raw video in the control panel: H.264 at the source's rate on ``video``, JPEG images at a
    limited rate on ``view`` (the fallback)."""

    Config = VideoViewerConfig
    inputs = {"in": RAW_VIDEO,
              "keyframe": Port(content="event", label="any frame: the next H.264 frame is a keyframe")}
    outputs = {"view": Port(content="image", codec="jpeg", extra={"mime": "image/jpeg"}),
               "video": Port(content="video", codec="h264", extra={"packets": True, "mime": "video/h264"})}
    drop_oldest = frozenset({"in"})

    def __init__(self, *args: Any, context: TaskContext | None = None, **kwargs: Any) -> None:
        super().__init__(*args, context=context, **kwargs)
        #: frames left out to keep to max_fps
        self.skipped = 0
        #: keyframes made on request (input keyframe); frames not encoded as H.264 because nobody watched
        self.forced = 0
        self.unwatched = 0
        if context is not None and "keyframe" not in context.sources and context.targets.get("video"):
            topic = sibling_topic(context.targets["video"][0], "keyframe")
            if topic is not None:
                context.sources["keyframe"] = topic

    async def serve(self) -> None:
        c = self.config
        jpeg = JpegEncoder(c.quality)
        h264 = H264Encoder(c.keyframe_interval) if c.h264 != "off" else None
        interval = 1 / c.max_fps
        last: float | None = None
        forced_at = -MIN_FORCED_GAP
        watched_until = -1.0
        while True:
            port, item = await self.lanes.get_any()
            if port == "keyframe":
                watched_until = time.monotonic() + WATCH_LEASE
                wants = getattr(item, "value", None) is True
                if h264 is not None and wants and time.monotonic() - forced_at >= MIN_FORCED_GAP:
                    forced_at = time.monotonic()
                    h264.force_keyframe = True
                    self.forced += 1
                continue
            assert isinstance(item, RawVideo)
            if c.h264 == "watched" and h264 is not None and time.monotonic() > watched_until:
                if h264.is_open:  # nobody watches: the encoder closed, the next watcher starts at a keyframe
                    h264 = H264Encoder(c.keyframe_interval)
                self.unwatched += 1
                encode = None
            else:
                encode = h264
            width, height = item.width, item.height
            if width > c.max_width:
                width, height = scaled_size(width, height, c.max_width // 2 * 2, None)
            if encode is not None:
                # yuv420p takes even sizes only: an odd one loses its last row or column
                even = (max(2, width // 2 * 2), max(2, height // 2 * 2))
                try:
                    packets = await self.work(encode.encode, item, *even)
                except av.error.FFmpegError as exc:  # a size libx264 refuses: the JPEG images still go out
                    h264 = H264Encoder(c.keyframe_interval)
                    self.count_error(self.in_metrics["in"], "in:h264", "cannot encode a %dx%d frame as H.264: %s",
                                     *even, exc)
                    packets = []
                for packet in packets:
                    await self.emit("video", packet.to_value(), ts=packet.ts if packet.ts is not None else item.ts)
            now = time.monotonic()
            if last is not None and now - last < interval:
                self.skipped += 1
                continue
            last = now
            data = await self.work(jpeg.encode, item, width, height)
            await self.emit("view", data, ts=item.ts, extra={"width": width, "height": height})
