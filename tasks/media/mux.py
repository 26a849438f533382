"""Writing media: the output_container task and its thread-side :class:`Muxer`.

Each connected input becomes one track. Encoded packets are remuxed as they are (no
re-encoding); raw frames are encoded first (``video_codec``, ``audio_codec``). The header is
written once every connected input has delivered its first keyframe, or ``start_timeout``
after the first one did (a track that is late is then left out); packets that arrive before
are held (bounded).

**Sync.** Tracks come from different sources with unrelated pts origins; what they share is
``ts``, the capture time carried by every frame. Each track starts at the offset of its first
``ts`` from the earliest first ``ts`` of all tracks and then follows its own pts, so the
tracks line up as they were captured without inheriting the jitter of ``ts``. dts are kept
strictly increasing per track, as muxers demand.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Final, Literal, TypeAlias
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from tasks.media.audio import AudioEncoderConfig, AudioEncoderState
from tasks.media.demux import check_format, check_options, check_url, is_file_path
from tasks.media.errors import CodecError
from tasks.media.mediatask import ANY_AUDIO, ANY_VIDEO, MediaConfig, MediaTask, Received
from tasks.media.packets import EncodedPacket
from tasks.media.raw import RawAudio, RawVideo, layout_for
from tasks.media.video import RecordCodec, VideoEncoderConfig, VideoEncoderState

if TYPE_CHECKING:
    import av
    import av.container
else:
    from tasks.media._av import av

__all__ = ["OUTPUT_SCHEMES", "Muxer", "OutputContainer"]

log = logging.getLogger("tasks.media")

#: muxers that write files named by their options or by the url's parts (playlists, segments, tee): refused
REFUSED_OUTPUT_FORMATS: Final = frozenset({"tee", "fifo", "hls", "dash", "segment", "ssegment", "stream_segment",
                                           "webm_chunk", "webm_dash_manifest", "smoothstreaming"})
_PLAYLIST_SUFFIXES: Final = frozenset({".m3u8", ".m3u", ".mpd", ".ism"})
OUTPUT_SCHEMES: Final = frozenset({"rtmp", "rtmps", "srt", "rtsp", "udp", "tcp"})
_FORMAT_BY_SCHEME: Final = {"rtmp": "flv", "rtmps": "flv", "srt": "mpegts", "rtsp": "rtsp", "udp": "mpegts",
                            "tcp": "mpegts"}
_MAX_PENDING: Final = 2000  # packets held before the header is written (and at most 64 MiB of them)
_MAX_PENDING_BYTES: Final = 64 * 1024 * 1024

_Packet: TypeAlias = "tuple[av.Packet[Any], EncodedPacket]"


@dataclass
class _Track:
    stream: av.stream.Stream
    first_ts: int
    first_dts: int
    time_base: Fraction
    encoder: VideoEncoderState | AudioEncoderState | None = None
    offset: int = 0
    last_dts: int | None = None


class Muxer:
    """One output being written; every method runs in the task's worker thread."""

    def __init__(self, url: str, *, format: str | None, options: dict[str, str], video_codec: RecordCodec,
                 audio_codec: Literal["aac", "opus"], wanted: list[str]) -> None:
        self.url = url
        scheme = urlsplit(url).scheme.lower() if "://" in url else ""
        self.format = format or _FORMAT_BY_SCHEME.get(scheme)
        self.options = options
        self.video_codec = video_codec
        self.audio_codec = audio_codec
        self.wanted = wanted
        self.container: av.container.OutputContainer | None = None
        self.tracks: dict[str, _Track] = {}
        self.encoders: dict[str, VideoEncoderState | AudioEncoderState] = {}
        self.pending: list[tuple[str, av.Packet[Any], EncodedPacket]] = []
        self._pending_bytes = 0
        self.started = False
        self.dropped = 0
        self.written = dict.fromkeys(wanted, 0)

    # -- feeding ----------------------------------------------------------------------------------
    # Packets travel as (PyAV packet, description): what came in encoded is made a PyAV packet once;
    # what this muxer encoded itself stays the encoder's packet (no copy of a rawvideo frame's bytes).
    def feed(self, port: str, item: RawVideo | RawAudio | EncodedPacket) -> None:
        for packet, info in self._packets(port, item):
            if self.started:
                self._write(port, packet, info)
            else:
                self._hold(port, packet, info)

    def _packets(self, port: str, item: RawVideo | RawAudio | EncodedPacket) -> list[_Packet]:
        if isinstance(item, EncodedPacket):
            return [(item.to_av(), item)]
        encoder = self.encoders.get(port)
        if isinstance(item, RawVideo):
            if not isinstance(encoder, VideoEncoderState) or encoder.size != (item.width, item.height):
                encoder = VideoEncoderState(VideoEncoderConfig(), item, codec=self.video_codec)
                self.encoders[port] = encoder
            encoded = encoder.encode_av(item)
        else:
            if not isinstance(encoder, AudioEncoderState):
                encoder = AudioEncoderState(AudioEncoderConfig(codec=self.audio_codec), item)
                self.encoders[port] = encoder
            encoded = encoder.encode_av(item)
        template = encoder.template
        return [(packet, EncodedPacket.from_av(packet, template=template, ts=ts, data=False))
                for packet, ts in encoded]

    def _hold(self, port: str, packet: av.Packet[Any], info: EncodedPacket) -> None:
        if port not in self.tracks and not info.keyframe:
            self.dropped += 1  # a track starts at a keyframe
            return
        if port not in self.tracks:
            self.tracks[port] = self._add_track(port, info)
        self.pending.append((port, packet, info))
        self._pending_bytes += packet.size
        while len(self.pending) > _MAX_PENDING or self._pending_bytes > _MAX_PENDING_BYTES:
            self._pending_bytes -= self.pending.pop(0)[1].size
            self.dropped += 1
        if all(p in self.tracks for p in self.wanted):
            self.start()

    def _add_track(self, port: str, packet: EncodedPacket) -> _Track:
        if self.container is None:
            try:
                self.container = av.open(self.url, "w", format=self.format, options=self.options)
            except (av.error.FFmpegError, ValueError) as exc:
                raise CodecError(f"cannot open {self.url} for writing: {exc}", codec=self.format or "?") from exc
        try:
            with av.open(io.BytesIO(), "w", format="matroska") as scratch:
                template = scratch.add_stream(packet.codec)
                stream = self.container.add_stream_from_template(template)
        except (av.error.FFmpegError, ValueError) as exc:
            raise CodecError(f"cannot put {packet.codec} into {self.url}: {exc}", codec=packet.codec) from exc
        ctx = stream.codec_context
        ctx.extradata = packet.extradata
        if isinstance(ctx, av.VideoCodecContext):
            ctx.width, ctx.height = packet.width or 0, packet.height or 0
            if packet.pixel_format:
                ctx.pix_fmt = packet.pixel_format
        elif isinstance(ctx, av.AudioCodecContext):
            ctx.sample_rate = packet.rate or 48000
            ctx.layout = layout_for(packet.channels or 2)
        ctx.time_base = packet.time_base
        stream.time_base = packet.time_base
        first = packet.dts if packet.dts is not None else packet.pts or 0
        return _Track(stream, packet.ts or 0, first, packet.time_base)

    def start(self) -> None:
        """Write the header with the tracks there are and the packets held so far."""
        if self.started or not self.tracks:
            return
        origin = min(track.first_ts for track in self.tracks.values())
        for track in self.tracks.values():
            track.offset = round(Fraction(track.first_ts - origin, 1000) / track.time_base) - track.first_dts
        self.started = True
        missing = [p for p in self.wanted if p not in self.tracks]
        if missing:
            log.warning("%s: starting without %s: nothing came in time", self.url, ", ".join(missing))
        pending, self.pending, self._pending_bytes = self.pending, [], 0
        for port, packet, info in pending:
            self._write(port, packet, info)

    def _write(self, port: str, packet: av.Packet[Any], info: EncodedPacket) -> None:
        track = self.tracks.get(port)
        if track is None or self.container is None:
            self.dropped += 1  # a track that missed the header
            return
        if info.time_base != track.time_base:
            info = _rescale(info, track.time_base)
        pts = None if info.pts is None else info.pts + track.offset
        dts = (info.dts if info.dts is not None else info.pts or 0) + track.offset
        if track.last_dts is not None and dts <= track.last_dts:
            dts = track.last_dts + 1
        if pts is not None and pts < dts:
            pts = dts
        track.last_dts = dts
        packet.pts, packet.dts, packet.time_base = pts, dts, track.time_base
        if info.duration is not None:
            packet.duration = info.duration
        packet.stream = track.stream
        self.container.mux(packet)
        self.written[port] = self.written.get(port, 0) + 1

    def close(self) -> None:
        """Flush the encoders of raw inputs, write the trailer, close."""
        try:
            if self.started:
                for port, encoder in self.encoders.items():
                    if isinstance(encoder, VideoEncoderState):
                        for packet, ts in encoder.encode_av(None):
                            info = EncodedPacket.from_av(packet, template=encoder.template, ts=ts, data=False)
                            self._write(port, packet, info)
        finally:
            if self.container is not None:
                self.container.close()
                self.container = None


def _rescale(packet: EncodedPacket, time_base: Fraction) -> EncodedPacket:
    def scale(value: int | None) -> int | None:
        return None if value is None else round(value * packet.time_base / time_base)

    return replace(packet, pts=scale(packet.pts), dts=scale(packet.dts), duration=scale(packet.duration),
                   time_base=time_base)


class OutputContainerConfig(MediaConfig):
    url: str = Field(min_length=1, max_length=4096, description="a file path (.mp4, .mkv, .webm, .ts, .nut…), "
                                                                "or an rtmp://, srt://, rtsp:// destination")
    format: str | None = Field(default=None, max_length=64, description="FFmpeg muxer; unset: from the file name "
                                                                        "(rtmp: flv, srt: mpegts)")
    options: dict[str, str] = Field(default_factory=dict, description="muxer options, e.g. movflags: +faststart")
    queue: int = Field(default=64, ge=1, le=10_000, description="items each input lane holds")
    video_codec: RecordCodec = Field(default="h264", description="codec for raw video input (rawvideo: "
                                                                  "uncompressed yuv420p, e.g. into .nut or .mkv)")
    audio_codec: Literal["aac", "opus"] = Field(default="aac", description="codec for raw audio input")
    start_timeout: float = Field(default=3.0, gt=0, le=600, description="seconds to wait for every connected "
                                                                         "input's first keyframe")

    @field_validator("url")
    @classmethod
    def _url(cls, url: str) -> str:
        check_url(url, OUTPUT_SCHEMES)
        if is_file_path(url) and os.path.splitext(url)[1].lower() in _PLAYLIST_SUFFIXES:
            raise ValueError(f"{url!r}: playlists (HLS, DASH) write segment files of their own naming: not allowed")
        return url

    _options = field_validator("options")(check_options)

    @field_validator("format")
    @classmethod
    def _format(cls, value: str | None) -> str | None:
        check_format(value, REFUSED_OUTPUT_FORMATS)
        if value is not None and value not in av.formats_available:
            raise ValueError(f"FFmpeg has no {value!r} format here")
        return value


class OutputContainer(MediaTask):
    """Record or stream video and audio to a file or an RTMP/SRT/RTSP destination, tracks kept in sync.

    Encoded packets are written as they are; raw frames are encoded first. The file is
    finished (trailer written) when the task stops.
    """

    Config = OutputContainerConfig
    inputs = {"video": ANY_VIDEO, "audio": ANY_AUDIO}
    drop_oldest = frozenset({"audio"})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.muxer: Muxer | None = None

    def dropped(self) -> int:
        return super().dropped() + (self.muxer.dropped if self.muxer else 0)

    async def serve(self) -> None:
        c = self.config
        ctx = self._ctx()
        wanted = [port for port in self.inputs if port in ctx.sources]
        url = str(self.file_path(c.url)) if is_file_path(c.url) else c.url  # checked again: a symlink may be new
        self.muxer = muxer = Muxer(url, format=c.format, options=dict(c.options), video_codec=c.video_codec,
                                   audio_codec=c.audio_codec, wanted=wanted)
        loop = asyncio.get_running_loop()
        first_at: float | None = None
        while True:
            deadline = None
            if not muxer.started and first_at is not None:
                deadline = first_at + c.start_timeout
            try:
                async with asyncio.timeout_at(deadline):
                    port, item = await self.lanes.get_any()
            except TimeoutError:
                await self.work(muxer.start)
                continue
            await self.work(self._feed, port, item)
            if first_at is None and muxer.tracks:
                first_at = loop.time()

    def _feed(self, port: str, item: Received) -> None:
        assert self.muxer is not None
        if isinstance(item, RawVideo | RawAudio | EncodedPacket):
            self.muxer.feed(port, item)

    def release(self) -> None:
        """Write what was received but not written yet, then finish the file."""
        if self.muxer is not None:
            try:
                for port, item in self.lanes.drain():
                    self._feed(port, item)
                self.muxer.start()  # a header even if a track never came
            finally:
                self.muxer.close()
