"""Reading media: a file, a URL or a capture device, one packet at a time, and the input_container task.

:class:`Reader` is the thread-side half shared with the camera and microphone tasks: it owns
the open container and turns each demuxed packet into what the outputs send, either raw
frames (decoded and converted to the wire formats of ``raw.py``) or encoded packets
(``packets.py``, the container's own bitstream, no decoding). Looping rewinds the input and
shifts the timeline by the input's length, so pts keep increasing.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from edge.files import check_file_path
from edge.frames import now_ms
from edge.task import Port
from tasks.media.audio import SampleFormat
from tasks.media.mediatask import ANY_AUDIO, ANY_VIDEO, MediaConfig, MediaTask
from tasks.media.packets import EncodedPacket
from tasks.media.raw import audio_array, audio_extra, video_array, video_extra
from tasks.media.timing import Pacer
from tasks.media.video import PixelFormat

if TYPE_CHECKING:
    import av
    import av.container
else:
    from tasks.media._av import av

__all__ = ["INPUT_SCHEMES", "InputContainer", "Output", "Reader", "check_url"]

INPUT_SCHEMES: Final = frozenset({"http", "https", "rtsp", "rtsps", "rtmp", "rtmps", "srt", "udp", "tcp",
                                  "rtp", "hls"})
#: demuxers that open files named inside the input (lists of files): refused
REFUSED_INPUT_FORMATS: Final = frozenset({"concat"})
_LATE: Final = 1.0  # seconds a real-time reader may fall behind before it restarts its clock


def is_file_path(url: str) -> bool:
    """Whether a container's ``url`` names a file (in the agent's files folder) rather than a network URL."""
    return "://" not in url


def check_url(url: str, schemes: frozenset[str]) -> str:
    """A file path in the agent's files folder (:mod:`edge.files`) or a URL with one of ``schemes``;
    ValueError (a config error) otherwise."""
    if not is_file_path(url):
        scheme = urlsplit(url).scheme.lower()
        if scheme not in schemes:
            raise ValueError(f"unsupported URL scheme {scheme!r} (use a file path in the agent's files folder, or "
                             f"{', '.join(sorted(schemes))})")
        return url
    return check_file_path(url)


def check_options(options: dict[str, str]) -> dict[str, str]:
    """ValueError for an FFmpeg option value that is a path out of the files folder (absolute, or with '..')."""
    for key, value in options.items():
        if os.path.isabs(value) or ".." in value.replace("\\", "/").split("/"):
            raise ValueError(f"option {key}: a path outside the agent's files folder is not allowed")
    return options


def check_format(format: str | None, refused: frozenset[str]) -> str | None:
    """ValueError for an FFmpeg format that reads or writes files the url check does not cover."""
    if format is not None and format in refused:
        raise ValueError(f"the {format!r} format reads or writes files of its own naming, beyond the url's check: "
                         "not allowed")
    return format


@dataclass(frozen=True, slots=True)
class Output:
    """One thing to send: on ``port``, ``value`` with ``extra``, due at ``seconds`` of media time."""

    port: str
    value: Any
    extra: dict[str, Any] | None
    seconds: float


@dataclass
class _Track:
    port: str
    stream: av.video.stream.VideoStream | av.audio.stream.AudioStream
    time_base: Fraction
    template: EncodedPacket | None = None
    converter: av.AudioResampler | None = None
    offset: int = 0  # pts added after each loop
    end: int = 0  # the largest pts + duration seen, for the next loop's offset
    first: int | None = None


@dataclass
class Reader:
    """An open input read packet by packet in a worker thread (not thread-safe: one thread at a time)."""

    url: str
    format: str | None = None
    options: dict[str, str] = field(default_factory=dict)
    timeout: float | None = None
    video: bool = True
    audio: bool = True
    decode: bool = True
    pixel_format: str = "rgb24"
    sample_format: str = "s16"

    def __post_init__(self) -> None:
        self.container = av.open(self.url, "r", format=self.format, options=self.options,
                                 timeout=self.timeout)
        self.tracks: dict[int, _Track] = {}
        streams = self.container.streams
        if self.video and streams.video:
            self._add("video", streams.video[0])
        if self.audio and streams.audio:
            self._add("audio", streams.audio[0])
        if not self.tracks:
            self.container.close()
            raise ValueError(f"{self.url} has no {' or '.join(self.ports) or 'selected'} stream")
        self._packets = self._demux()

    @property
    def ports(self) -> list[str]:
        return [p for p, wanted in (("video", self.video), ("audio", self.audio)) if wanted]

    def _add(self, port: str, stream: av.video.stream.VideoStream | av.audio.stream.AudioStream) -> None:
        time_base = stream.time_base or Fraction(1, 1000)
        track = _Track(port, stream, time_base)
        if not self.decode:
            ctx = stream.codec_context
            if isinstance(ctx, av.VideoCodecContext):
                track.template = EncodedPacket(kind="video", codec=ctx.name, data=b"", pts=None, dts=None,
                                               time_base=time_base, keyframe=True, extradata=ctx.extradata,
                                               width=ctx.width, height=ctx.height, pixel_format=ctx.pix_fmt)
            else:
                assert isinstance(ctx, av.AudioCodecContext)
                track.template = EncodedPacket(kind="audio", codec=ctx.name, data=b"", pts=None, dts=None,
                                               time_base=time_base, keyframe=True, extradata=ctx.extradata,
                                               rate=ctx.sample_rate, channels=ctx.channels)
        self.tracks[stream.index] = track

    def _demux(self) -> Any:
        return iter(self.container.demux(*(t.stream for t in self.tracks.values())))

    @property
    def streams(self) -> dict[str, dict[str, Any]]:
        """What the input holds, per port (for logs and metadata)."""
        info: dict[str, dict[str, Any]] = {}
        for track in self.tracks.values():
            ctx = track.stream.codec_context
            if isinstance(ctx, av.VideoCodecContext):
                info[track.port] = {"codec": ctx.name, "width": ctx.width, "height": ctx.height,
                                    "rate": float(track.stream.average_rate or 0)}
            elif isinstance(ctx, av.AudioCodecContext):
                info[track.port] = {"codec": ctx.name, "rate": ctx.sample_rate, "channels": ctx.channels}
        return info

    def read(self) -> list[Output] | None:
        """What the next packet gives (often nothing, sometimes several frames); None at the end."""
        try:
            packet = next(self._packets)
        except StopIteration:
            return None
        track = self.tracks.get(packet.stream_index)
        if track is None:
            return []
        if packet.pts is not None:
            if track.first is None:
                track.first = packet.pts
            track.end = max(track.end, packet.pts + (packet.duration or 0))
        if not self.decode:
            if packet.size == 0 or track.template is None:
                return []
            encoded = EncodedPacket.from_av(packet, template=track.template)
            shifted = _shift(encoded, track.offset)
            return [Output(track.port, shifted.to_value(), None, _seconds(shifted.pts, track.time_base))]
        return [out for frame in packet.decode() for out in self._outputs(track, frame)]

    def _outputs(self, track: _Track, frame: av.VideoFrame | av.AudioFrame) -> list[Output]:
        pts = (frame.pts if frame.pts is not None else 0) + track.offset
        if isinstance(frame, av.VideoFrame):
            array = video_array(frame, self.pixel_format)
            extra = video_extra(self.pixel_format, pts, track.time_base)
            return [Output(track.port, array, extra, _seconds(pts, track.time_base))]
        frames = [frame]
        if frame.format.name != self.sample_format:
            if track.converter is None:
                track.converter = av.AudioResampler(format=self.sample_format, layout=frame.layout,
                                                    rate=frame.sample_rate)
            frames = track.converter.resample(frame)
        outputs = []
        for part in frames:
            samples, fmt = audio_array(part)
            outputs.append(Output(track.port, samples, audio_extra(fmt, part.sample_rate, pts, track.time_base),
                                  _seconds(pts, track.time_base)))
            pts += round(part.samples / part.sample_rate / track.time_base)
        return outputs

    def rewind(self) -> None:
        """Start over from the beginning, the timeline continuing where this pass ended."""
        self.container.seek(0)
        for track in self.tracks.values():
            if track.first is not None:
                track.offset += track.end - track.first
                track.end = track.first
        self._packets = self._demux()

    def close(self) -> None:
        self.container.close()


def _seconds(pts: int | None, time_base: Fraction) -> float:
    return float((pts or 0) * time_base)


def _shift(packet: EncodedPacket, offset: int) -> EncodedPacket:
    if not offset:
        return packet
    return replace(packet, pts=None if packet.pts is None else packet.pts + offset,
                   dts=None if packet.dts is None else packet.dts + offset)


class InputContainerConfig(MediaConfig):
    url: str = Field(min_length=1, max_length=4096, description="a file path, or an http(s)/rtsp/rtmp/srt/udp URL")
    format: str | None = Field(default=None, max_length=64, description="FFmpeg demuxer; unset: guessed")
    options: dict[str, str] = Field(default_factory=dict, description="demuxer options, e.g. rtsp_transport: tcp")
    timeout: float = Field(default=10.0, gt=0, le=600, description="seconds to wait for a network input")
    realtime: bool = Field(default=True, description="send at the media's own pace; off: as fast as possible")
    speed: float = Field(default=1.0, gt=0, le=100, description="pace multiplier in real time")
    loop: bool = Field(default=False, description="start over at the end (files)")
    decode: bool = Field(default=True, description="send raw frames; off: the encoded packets as they are")
    video: bool = True
    audio: bool = True
    pixel_format: PixelFormat = "rgb24"
    sample_format: SampleFormat = "s16"

    _url = field_validator("url")(lambda url: check_url(url, INPUT_SCHEMES))
    _format = field_validator("format")(lambda format: check_format(format, REFUSED_INPUT_FORMATS))
    _options = field_validator("options")(check_options)


class InputContainer(MediaTask):
    """Read a media file or stream (mp4, mkv, webm, wav, flac, rtsp, rtmp, http…) and send its video and audio.

    Sends raw frames (decoded) or the encoded packets as they are, in real time (or at a
    multiple of it) or as fast as possible, once or looping. It stops at the end of the input.
    """

    Config = InputContainerConfig
    outputs = {"video": ANY_VIDEO, "audio": ANY_AUDIO}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reader: Reader | None = None

    @classmethod
    def metadata_for(cls, config: Any, port: str, declared: Port) -> dict[str, Any]:
        c = config
        meta = super().metadata_for(config, port, declared)
        if c.decode:
            meta.update({"codec": "raw", "packets": False})
            meta.update({"pixel_format": c.pixel_format} if port == "video" else {"sample_format": c.sample_format})
        else:
            meta["packets"] = True
        return meta

    def open_reader(self) -> Reader:
        c = self.config
        url = str(self.file_path(c.url)) if is_file_path(c.url) else c.url  # checked again: a symlink may be new
        return Reader(url, format=c.format, options=dict(c.options), timeout=c.timeout, video=c.video,
                      audio=c.audio, decode=c.decode, pixel_format=c.pixel_format, sample_format=c.sample_format)

    async def serve(self) -> None:
        self.reader = reader = await self.work(self.open_reader)
        pacer = Pacer(self.config.speed) if self.config.realtime else None
        while True:
            outputs = await self.work(reader.read)
            if outputs is None:
                if not self.config.loop:
                    return
                await self.work(reader.rewind)
                continue
            for out in outputs:
                if pacer is not None:
                    if pacer.lag(out.seconds) > _LATE:
                        pacer.reset()
                    await pacer.wait(out.seconds)
                await self.emit(out.port, out.value, ts=now_ms(), extra=out.extra)
            if pacer is None:
                await asyncio.sleep(0)

    def release(self) -> None:
        if self.reader is not None:
            self.reader.close()
            self.reader = None
