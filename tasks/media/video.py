"""Video codecs: raw frames to encoded packets and back.

``video_encoder`` opens its codec on the first frame (and again when the size changes) with
the global-header flag, so the parameter sets go into ``extradata``, which every keyframe
carries (``packets.py``). It never holds more than the codec's own delay: with the defaults
(x264 ``zerolatency``, libvpx ``realtime`` with no lag, no B-frames) one packet comes out per
frame. ``video_decoder`` opens a decoder at the first keyframe and again whenever a keyframe
announces another codec, size or extradata; its input lane drops until the next keyframe on
loss (``Policy.KEYFRAME`` of ``edge/_inbox.py``), so what it decodes is always decodable.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Final, Literal, get_args

from pydantic import Field

from edge.task import Port
from tasks.media.codecs import (
    CodecName,
    CodecOptions,
    codec_problems,
    decoder_problems,
    encoder_candidates,
    encoder_pixel_format,
    hardware_decoders,
    missing,
    open_checked,
    option_values,
    resolve_encoder,
)
from tasks.media.errors import CodecError
from tasks.media.mediatask import RAW_VIDEO, VIDEO_PACKETS, MediaConfig, MediaTask
from tasks.media.packets import EncodedPacket
from tasks.media.raw import MS, VIDEO_FORMATS, RawVideo, video_array, video_extra
from tasks.media.timing import MonotonicPts, TsMap

if TYPE_CHECKING:
    import av
    import av.codec.context
else:
    from tasks.media._av import av

__all__ = ["VideoDecoder", "VideoEncoder", "VideoEncoderState", "VideoDecoderState"]

log = logging.getLogger("tasks.media")

#: what output_container can also write raw video as (uncompressed: for files, never for MQTT)
RecordCodec = Literal["h264", "mpeg4", "vp9", "mjpeg", "rawvideo"]
PixelFormat = Literal["rgb24", "bgr24", "rgba", "bgra", "gray", "yuv420p"]
#: our short names of video encoders (any other name is FFmpeg's)
ENCODERS: Final = {"h264": "libx264", "hevc": "libx265", "mpeg4": "mpeg4", "vp9": "libvpx-vp9", "mjpeg": "mjpeg",
                   "rawvideo": "rawvideo"}
#: bits per second when the config sets none; libx264/libx265 use CRF, mjpeg a quantizer instead
_DEFAULT_BITRATE: Final = {"mpeg4": 2_000_000, "libvpx-vp9": 1_000_000}
_NO_DEFAULT_BITRATE: Final = frozenset({"libx264", "libx264rgb", "libx265", "mjpeg", "rawvideo", "libvpx-vp9"})
_FF_QP2LAMBDA: Final = 118
_MAX_MPEG4_TB: Final = 65535


class VideoEncoderConfig(MediaConfig):
    codec: CodecName = Field(default="h264", description="h264 (libx264), mpeg4, vp9 (libvpx), mjpeg, any FFmpeg "
                                                         "video encoder by name (h264_v4l2m2m, libx265…), or "
                                                         "auto_h264 / auto_hevc: the first hardware encoder that "
                                                         "opens here, else the software one")
    codec_options: CodecOptions = Field(default_factory=dict, description="FFmpeg options of the encoder "
                                                                          "(e.g. crf: 20, profile: baseline); "
                                                                          "they override ours")
    preset: Literal["ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower",
                    "veryslow"] = Field(default="veryfast", description="x264/x265 speed/quality preset")
    zerolatency: bool = Field(default=True, description="no frame held back: x264 tune zerolatency, "
                                                        "libvpx realtime without lag, no B-frames")
    bitrate: int | None = Field(default=None, ge=10_000, le=1_000_000_000,
                                description="bits per second; unset: h264 CRF 23, mjpeg q 4, mpeg4 2M, vp9 1M, "
                                            "others 2M")
    keyframe_interval: int = Field(default=30, ge=1, le=1000, description="a keyframe every N frames")
    rate: float = Field(default=30.0, gt=0, le=1000, description="nominal frame rate, for rate control")
    threads: int = Field(default=0, ge=0, le=64, description="codec threads; 0: FFmpeg chooses")


def encoder_options(name: str, config: VideoEncoderConfig) -> dict[str, str]:
    """What we set on encoder ``name`` by default (keyframes on schedule, low latency), then the
    config's ``codec_options`` over them."""
    options: dict[str, str] = {}
    # keyframes exactly every keyframe_interval frames, none added on scene cuts: late subscribers,
    # mediaswitch and segmenting muxers can then count on them
    if name in ("libx264", "libx264rgb", "libx265"):
        options["preset"] = config.preset
        if config.zerolatency:
            options["tune"] = "zerolatency"
        if name == "libx265":
            options["x265-params"] = "scenecut=0:log-level=error"
        else:
            options["sc_threshold"] = "0"
    elif name == "libvpx-vp9" and config.zerolatency:
        options.update({"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0", "row-mt": "1"})
    elif name == "mpeg4":
        options["sc_threshold"] = "1000000000"
    return {**options, **option_values(config.codec_options)}


class VideoEncoderState:
    """An open encoder and what it needs to turn frames into packets (used in the worker thread)."""

    def __init__(self, config: VideoEncoderConfig, first: RawVideo, *, codec: str | None = None) -> None:
        self.size = (first.width, first.height)
        time_base = first.time_base if first.time_base.denominator <= _MAX_MPEG4_TB else MS
        # auto_…: the encoders that opened at the check's size, in order; the first that opens at this one
        names = encoder_candidates(codec or config.codec, aliases=ENCODERS)
        failures: list[CodecError] = []
        for name in names:
            try:
                ctx = self._open(name, config, time_base)
                break
            except CodecError as exc:
                failures.append(exc)
        else:
            if len(failures) == 1:
                raise failures[0]
            raise CodecError("; ".join(map(str, failures)), codec=codec or config.codec)
        self.name = name
        self.pixel_format = str(ctx.pix_fmt)
        self.ctx = ctx
        self.pts = MonotonicPts(time_base)
        self.ts = TsMap()
        self.template = EncodedPacket(kind="video", codec=ctx.codec.canonical_name, data=b"", pts=None, dts=None,
                                      time_base=time_base, keyframe=True, extradata=ctx.extradata or None,
                                      width=self.size[0], height=self.size[1], pixel_format=self.pixel_format)

    def _open(self, name: str, config: VideoEncoderConfig, time_base: Fraction) -> av.VideoCodecContext:
        try:
            ctx = av.CodecContext.create(name, "w")
        except (av.error.FFmpegError, ValueError) as exc:
            raise CodecError(missing(name, "video", "w"), codec=name) from exc
        if not isinstance(ctx, av.VideoCodecContext):
            raise CodecError(f"{name} is not a video encoder", codec=name)
        ctx.width, ctx.height = self.size
        ctx.pix_fmt = encoder_pixel_format(name)
        ctx.time_base = time_base
        ctx.framerate = Fraction(config.rate).limit_denominator(1001)
        ctx.gop_size = config.keyframe_interval
        ctx.thread_count = config.threads
        ctx.flags |= av.codec.context.Flags.global_header
        bitrate = config.bitrate or _DEFAULT_BITRATE.get(name, None if name in _NO_DEFAULT_BITRATE else 2_000_000)
        if bitrate:
            ctx.bit_rate = bitrate
        if name == "mjpeg" and not config.bitrate:
            ctx.flags |= av.codec.context.Flags.qscale
            ctx.global_quality = 4 * _FF_QP2LAMBDA
        if config.zerolatency:
            ctx.max_b_frames = 0
        try:
            open_checked(ctx, name, encoder_options(name, config), what="encoder")
        except CodecError as exc:
            raise CodecError(f"{exc} (at {self.size[0]}x{self.size[1]})", codec=name) from exc.__cause__
        return ctx

    def encode_av(self, raw: RawVideo | None) -> list[tuple[av.Packet[Any], int | None]]:
        """PyAV's packets for one frame (None: flush), each with the capture ts of its frame."""
        frame: av.VideoFrame | None = None
        if raw is not None:
            frame = raw.to_av()
            if frame.format.name != self.pixel_format:
                frame = frame.reformat(format=self.pixel_format)
            frame.pts = self.pts(raw.pts, raw.time_base)
            frame.time_base = self.pts.time_base
            self.ts.put(frame.pts, raw.ts)
        return [(packet, self.ts.pop(packet.pts)) for packet in self.ctx.encode(frame)]

    def encode(self, raw: RawVideo | None) -> list[EncodedPacket]:
        """The packets for one frame (None: flush)."""
        return [EncodedPacket.from_av(packet, template=self.template, ts=ts) for packet, ts in self.encode_av(raw)]


class VideoEncoder(MediaTask):
    """Encode raw video frames into packets: libx264 with zerolatency by default; mpeg4, vp9, mjpeg.

    Keyframes carry the codec's extradata and the stream's size, so a decoder that subscribes
    late starts at the next keyframe. The input lane holds ``queue`` frames; when the encoder
    falls behind, the oldest wait frames are dropped and counted.
    """

    Config = VideoEncoderConfig
    inputs = {"in": RAW_VIDEO}
    outputs = {"out": VIDEO_PACKETS}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.state: VideoEncoderState | None = None

    @classmethod
    def check(cls, config: Mapping[str, Any]) -> list[str]:
        if problems := super().check(config):
            return problems
        c = cls.Config.model_validate(dict(config))
        return codec_problems(c.codec, c.codec_options, kind="video", aliases=ENCODERS)

    @classmethod
    def metadata_for(cls, config: Any, port: str, declared: Port) -> dict[str, Any]:
        """The codec of the stream (``h264`` whichever encoder makes it) and the encoder (``h264_v4l2m2m``)."""
        meta = {**super().metadata_for(config, port, declared), "rate": config.rate}
        try:
            name = resolve_encoder(config.codec, aliases=ENCODERS)
            meta.update(codec=str(av.Codec(name, "w").canonical_name), encoder=name)
        except (CodecError, av.error.FFmpegError, ValueError):  # check() says why: it runs first
            meta["codec"] = config.codec
        return meta

    def encode_frame(self, raw: RawVideo) -> list[EncodedPacket]:
        if self.state is None or self.state.size != (raw.width, raw.height):
            if self.state is not None:
                log.info("%s: the frame size changed to %dx%d: reopening the encoder", self.instance_id,
                         raw.width, raw.height)
            self.state = VideoEncoderState(self.config, raw)
        return self.state.encode(raw)

    async def serve(self) -> None:
        while True:
            _, item = await self.lanes.get_any()
            assert isinstance(item, RawVideo)
            try:
                packets = await self.work(self.encode_frame, item)
            except CodecError as exc:
                # the config's codec and options opened at check() time: what fails now is this frame's size
                # (4x1 for libx264), an input error; the encoder is opened again for the next frame
                self.state = None
                self.count_error(self.in_metrics["in"], "in:open", "cannot encode a %dx%d frame: %s", item.width,
                                 item.height, exc)
                continue
            for packet in packets:
                await self.emit("out", packet.to_value(), ts=packet.ts if packet.ts is not None else item.ts)

    def release(self) -> None:
        self.state = None


class VideoDecoderConfig(MediaConfig):
    queue: int = Field(default=16, ge=1, le=10_000, description="packets the input lane holds before it drops "
                                                                 "until the next keyframe")
    pixel_format: PixelFormat = Field(default="rgb24", description="pixel format of the frames sent on")
    threads: int = Field(default=0, ge=0, le=64, description="slice threads; 0: FFmpeg chooses")
    codec: CodecName | None = Field(default=None, description="FFmpeg decoder by name (h264_v4l2m2m, libdav1d…); "
                                                              "auto: a hardware decoder of the stream's codec "
                                                              "that opens here (v4l2m2m, cuvid), else FFmpeg's; "
                                                              "unset: FFmpeg's default for the stream's codec")
    codec_options: CodecOptions = Field(default_factory=dict, description="FFmpeg options of the decoder")


class VideoDecoderState:
    """An open decoder for one stream (as a keyframe described it); used in the worker thread."""

    def __init__(self, keyframe: EncodedPacket, *, threads: int, decoder: str | None = None,
                 options: Mapping[str, Any] | None = None) -> None:
        self.key = keyframe.stream_key()
        if decoder == "auto":  # a hardware decoder that opens here, else FFmpeg's own
            names = [*hardware_decoders(keyframe.codec), keyframe.codec]
            failures: list[CodecError] = []
            for name in names:
                try:
                    self.ctx = self._open(keyframe, name, threads=threads, named=False, options=options, probe=True)
                    break
                except CodecError as exc:
                    failures.append(exc)
            else:
                raise CodecError("; ".join(map(str, failures)), codec=keyframe.codec)
        else:
            name = decoder or keyframe.codec
            self.ctx = self._open(keyframe, name, threads=threads, named=decoder is not None, options=options,
                                  probe=False)
        self.name = name
        self.ts = TsMap()

    @staticmethod
    def _open(keyframe: EncodedPacket, name: str, *, threads: int, named: bool, options: Mapping[str, Any] | None,
              probe: bool) -> av.VideoCodecContext:
        try:
            ctx = av.CodecContext.create(name, "r")
        except (av.error.FFmpegError, ValueError) as exc:
            raise CodecError(f"no decoder for {name!r} here: {exc}", codec=name) from exc
        if not isinstance(ctx, av.VideoCodecContext):
            raise CodecError(f"{name} is not a video decoder", codec=name)
        if named and ctx.codec.canonical_name != keyframe.codec:
            raise CodecError(f"the {name} decoder decodes {ctx.codec.canonical_name}, the stream is "
                             f"{keyframe.codec}", codec=name)
        if keyframe.extradata:
            ctx.extradata = keyframe.extradata
        if keyframe.width and keyframe.height:
            ctx.width, ctx.height = keyframe.width, keyframe.height
        ctx.thread_type = "SLICE"  # frame threads would hold back one frame per thread
        ctx.thread_count = threads
        if options or probe:  # opened now (else at the first packet): a hardware decoder fails here if absent
            open_checked(ctx, name, option_values(options or {}), what="decoder")
        return ctx

    def decode(self, packet: EncodedPacket, pixel_format: str) -> list[tuple[Any, dict[str, Any], int]]:
        if packet.pts is not None and packet.ts is not None:
            self.ts.put(packet.pts, packet.ts)
        out = []
        for frame in self.ctx.decode(packet.to_av()):
            pts = frame.pts if frame.pts is not None else packet.pts or 0
            ts = self.ts.pop(frame.pts)
            out.append((video_array(frame, pixel_format), video_extra(pixel_format, pts, packet.time_base),
                        ts if ts is not None else packet.ts or 0))
        return out


class VideoDecoder(MediaTask):
    """Decode video packets into raw frames (HxWxC arrays in the configured pixel format).

    Starts at the first keyframe (a late subscriber drops what comes before it); on lost
    packets or a decoding error it drops until the next keyframe, counted in ``dropped``.
    """

    Config = VideoDecoderConfig
    inputs = {"in": VIDEO_PACKETS}
    outputs = {"out": RAW_VIDEO}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.state: VideoDecoderState | None = None

    @classmethod
    def check(cls, config: Mapping[str, Any]) -> list[str]:
        if problems := super().check(config):
            return problems
        c = cls.Config.model_validate(dict(config))
        return decoder_problems(None if c.codec == "auto" else c.codec, c.codec_options, kind="video")

    @classmethod
    def metadata_for(cls, config: Any, port: str, declared: Port) -> dict[str, Any]:
        meta = {**super().metadata_for(config, port, declared), "pixel_format": config.pixel_format}
        return {**meta, "decoder": config.codec} if config.codec else meta

    def decode_packet(self, packet: EncodedPacket) -> list[tuple[Any, dict[str, Any], int]] | None:
        """The frames of one packet; None if it cannot be decoded (no decoder for it)."""
        if packet.keyframe and (self.state is None or self.state.key != packet.stream_key()):
            self.state = None
            c = self.config
            self.state = VideoDecoderState(packet, threads=c.threads, decoder=c.codec, options=c.codec_options)
        if self.state is None:
            return None
        return self.state.decode(packet, self.config.pixel_format)

    async def serve(self) -> None:
        while True:
            _, item = await self.lanes.get_any()
            assert isinstance(item, EncodedPacket)
            if item.kind != "video":
                self.in_metrics["in"].errors += 1
                self.warn("in:kind", "got %s packets on a video decoder", item.kind)
                continue
            try:
                frames = await self.work(self.decode_packet, item)
            except (av.error.FFmpegError, CodecError) as exc:
                self.in_metrics["in"].errors += 1
                self.lanes["in"].resync()
                self.warn("in:decode", "cannot decode a %s packet (%s): waiting for a keyframe",
                          item.codec, exc)
                continue
            if frames is None:  # no decoder yet: only after a decoder could not be opened
                self.lanes["in"].dropped += 1
                self.lanes["in"].resync()
                continue
            for array, extra, ts in frames:
                await self.emit("out", array, ts=ts, extra=extra)

    def release(self) -> None:
        self.state = None


assert set(VIDEO_FORMATS) == set(get_args(PixelFormat))
