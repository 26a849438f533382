"""Audio codecs: raw sample frames to encoded packets (AAC, Opus) and back.

``audio_encoder`` resamples what it gets to what the codec takes (AAC: float planar at the
input rate; Opus: 48 kHz unless the input is at another Opus rate) and re-frames it into the
codec's frame size, so any raw audio can be fed to it. The media timeline of its packets is
the count of samples it encoded; their ``ts`` is interpolated from the input frames' ``ts``.
Every audio packet is a keyframe, so every one carries extradata, rate and channels.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Final, Literal

from pydantic import Field

from edge.task import Port
from tasks.media.codecs import (
    CodecName,
    CodecOptions,
    codec_problems,
    decoder_problems,
    missing,
    open_checked,
    option_values,
)
from tasks.media.errors import CodecError
from tasks.media.mediatask import AUDIO_PACKETS, RAW_AUDIO, MediaConfig, MediaTask
from tasks.media.packets import EncodedPacket
from tasks.media.raw import RawAudio, audio_array, audio_extra, layout_for
from tasks.media.timing import SampleClock

if TYPE_CHECKING:
    import av
    import av.codec.context
else:
    from tasks.media._av import av

__all__ = ["AudioDecoder", "AudioDecoderState", "AudioEncoder", "AudioEncoderState"]

log = logging.getLogger("tasks.media")

SampleFormat = Literal["u8", "s16", "s32", "flt", "dbl"]
#: our short names of audio encoders (any other name is FFmpeg's)
ENCODERS: Final = {"aac": "aac", "opus": "libopus", "mp3": "libmp3lame"}
_DEFAULT_BITRATE: Final = {"aac": 128_000, "libopus": 64_000, "libmp3lame": 128_000}
_MAX_CHANNELS: Final = {"libopus": 2, "libmp3lame": 2}


def _pick_rate(wanted: int, supported: list[int] | None) -> int:
    if not supported or wanted in supported:
        return wanted
    higher = sorted(r for r in supported if r >= wanted)
    return higher[0] if higher else max(supported)


class AudioEncoderConfig(MediaConfig):
    queue: int = Field(default=16, ge=1, le=10_000, description="frames the input lane holds")
    codec: CodecName = Field(default="aac", description="aac (FFmpeg's), opus (libopus), mp3 (libmp3lame) or any "
                                                        "FFmpeg audio encoder by name (flac, pcm_s16le…)")
    codec_options: CodecOptions = Field(default_factory=dict, description="FFmpeg options of the encoder")
    bitrate: int | None = Field(default=None, ge=6_000, le=1_000_000, description="bits per second; unset: "
                                                                                   "aac 128k, opus 64k, mp3 128k; "
                                                                                   "others the encoder's")
    rate: int | None = Field(default=None, ge=8000, le=96000, description="sample rate; unset: the input's "
                                                                          "(Opus: 48000 unless it takes the input's)")
    channels: int | None = Field(default=None, ge=1, le=8, description="unset: the input's (Opus: at most 2)")


class AudioEncoderState:
    """An open audio encoder with its resampler (used in the worker thread)."""

    def __init__(self, config: AudioEncoderConfig, first: RawAudio) -> None:
        name = ENCODERS.get(config.codec, config.codec)
        try:
            codec = av.Codec(name, "w")
        except (av.error.FFmpegError, ValueError) as exc:
            raise CodecError(missing(name, "audio", "w"), codec=name) from exc
        if codec.type != "audio":
            raise CodecError(f"{name} is not an audio encoder", codec=name)
        rate = _pick_rate(config.rate or first.rate, codec.audio_rates)
        channels = min(config.channels or first.channels, _MAX_CHANNELS.get(name, 8))
        layout = layout_for(channels)
        formats = [f.name for f in codec.audio_formats or ()]
        fmt = "flt" if "flt" in formats else formats[0] if formats else "fltp"
        ctx = av.CodecContext.create(name, "w")
        assert isinstance(ctx, av.AudioCodecContext)
        ctx.sample_rate = rate
        ctx.layout = layout
        ctx.format = fmt
        ctx.time_base = Fraction(1, rate)
        if bitrate := config.bitrate or _DEFAULT_BITRATE.get(name):
            ctx.bit_rate = bitrate
        ctx.flags |= av.codec.context.Flags.global_header
        try:
            open_checked(ctx, name, option_values(config.codec_options), what="encoder")
        except CodecError as exc:
            raise CodecError(f"{exc} (at {rate} Hz, {layout})", codec=name) from exc.__cause__
        self.ctx = ctx
        self.rate, self.layout, self.format = rate, layout, fmt
        self.frame_size = ctx.frame_size or 1024
        self.resampler: av.AudioResampler | None = None
        self.input_key: tuple[str, int, int] | None = None
        self.clock = SampleClock(rate)
        self.next_pts = 0
        self.template = EncodedPacket(kind="audio", codec=codec.canonical_name, data=b"", pts=None, dts=None,
                                      time_base=Fraction(1, rate), keyframe=True, extradata=ctx.extradata or None,
                                      rate=rate, channels=channels)

    def encode(self, raw: RawAudio) -> list[EncodedPacket]:
        return [EncodedPacket.from_av(packet, template=self.template, ts=ts) for packet, ts in self.encode_av(raw)]

    def encode_av(self, raw: RawAudio) -> list[tuple[av.Packet[Any], int | None]]:
        """PyAV's packets for one frame, each with its interpolated capture ts."""
        key = (raw.sample_format, raw.rate, raw.channels)
        if key != self.input_key or self.resampler is None:
            # the samples a replaced resampler still held are lost: a glitch, only when the input changes
            self.resampler = av.AudioResampler(format=self.format, layout=self.layout, rate=self.rate,
                                               frame_size=self.frame_size)
            self.input_key = key
        frame = raw.to_av()
        frame.pts = None
        self.clock.add(raw.samples.shape[0], raw.rate, raw.ts)
        packets: list[tuple[av.Packet[Any], int | None]] = []
        for out in self.resampler.resample(frame):
            out.pts = self.next_pts
            out.time_base = self.template.time_base
            self.next_pts += out.samples
            packets += [(p, self.clock.ts(p.pts)) for p in self.ctx.encode(out)]
        return packets


class AudioEncoder(MediaTask):
    """Encode raw audio into packets: AAC (default) or Opus, resampled and re-framed as the codec needs."""

    Config = AudioEncoderConfig
    inputs = {"in": RAW_AUDIO}
    outputs = {"out": AUDIO_PACKETS}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.state: AudioEncoderState | None = None

    @classmethod
    def metadata_for(cls, config: Any, port: str, declared: Port) -> dict[str, Any]:
        name = ENCODERS.get(config.codec, config.codec)
        try:
            codec = str(av.Codec(name, "w").canonical_name)
        except (av.error.FFmpegError, ValueError):  # check() says why: it runs first
            codec = config.codec
        return {**super().metadata_for(config, port, declared), "codec": codec, "encoder": name}

    @classmethod
    def check(cls, config: Mapping[str, Any]) -> list[str]:
        if problems := super().check(config):
            return problems
        c = cls.Config.model_validate(dict(config))
        return codec_problems(c.codec, c.codec_options, kind="audio", aliases=ENCODERS)

    def encode_frame(self, raw: RawAudio) -> list[EncodedPacket]:
        if self.state is None:
            self.state = AudioEncoderState(self.config, raw)
        return self.state.encode(raw)

    async def serve(self) -> None:
        while True:
            _, item = await self.lanes.get_any()
            assert isinstance(item, RawAudio)
            for packet in await self.work(self.encode_frame, item):
                await self.emit("out", packet.to_value(), ts=packet.ts if packet.ts is not None else item.ts)

    def release(self) -> None:
        self.state = None


class AudioDecoderConfig(MediaConfig):
    queue: int = Field(default=16, ge=1, le=10_000, description="packets the input lane holds (oldest dropped)")
    sample_format: SampleFormat = Field(default="s16", description="sample format of the frames sent on")
    codec: CodecName | None = Field(default=None, description="FFmpeg decoder by name (libopus, aac_fixed…); "
                                                              "unset: FFmpeg's default for the stream's codec")
    codec_options: CodecOptions = Field(default_factory=dict, description="FFmpeg options of the decoder")


class AudioDecoderState:
    """An open audio decoder for one stream, with the converter to the wire's packed format."""

    def __init__(self, packet: EncodedPacket, *, decoder: str | None = None,
                 options: Mapping[str, Any] | None = None) -> None:
        self.key = packet.stream_key()
        name = decoder or packet.codec
        try:
            ctx = av.CodecContext.create(name, "r")
        except (av.error.FFmpegError, ValueError) as exc:
            raise CodecError(f"no decoder for {name!r} here: {exc}", codec=name) from exc
        if not isinstance(ctx, av.AudioCodecContext):
            raise CodecError(f"{name} is not an audio decoder", codec=name)
        if decoder is not None and ctx.codec.canonical_name != packet.codec:
            raise CodecError(f"the {decoder} decoder decodes {ctx.codec.canonical_name}, the stream is "
                             f"{packet.codec}", codec=decoder)
        if packet.extradata:
            ctx.extradata = packet.extradata
        if packet.rate:
            ctx.sample_rate = packet.rate
        if packet.channels:
            ctx.layout = layout_for(packet.channels)
        if options:
            open_checked(ctx, name, option_values(options), what="decoder")
        self.ctx = ctx
        self.converter: av.AudioResampler | None = None
        self.converter_key: tuple[str, int] | None = None

    def decode(self, packet: EncodedPacket, sample_format: str) -> list[tuple[Any, dict[str, Any], int]]:
        out = []
        for frame in self.ctx.decode(packet.to_av()):
            pts = frame.pts if frame.pts is not None else packet.pts or 0
            time_base = frame.time_base or packet.time_base
            if frame.format.name != sample_format:
                key = (frame.layout.name, frame.sample_rate)
                if self.converter is None or self.converter_key != key:
                    self.converter = av.AudioResampler(format=sample_format, layout=frame.layout,
                                                       rate=frame.sample_rate)
                    self.converter_key = key
                converted = self.converter.resample(frame)
            else:
                converted = [frame]
            for part in converted:
                samples, fmt = audio_array(part)
                out.append((samples, audio_extra(fmt, part.sample_rate, pts, time_base), packet.ts or 0))
                pts += round(part.samples / part.sample_rate / time_base)
        return out


class AudioDecoder(MediaTask):
    """Decode audio packets (AAC, Opus, …) into raw samples x channels frames in the configured format."""

    Config = AudioDecoderConfig
    inputs = {"in": AUDIO_PACKETS}
    outputs = {"out": RAW_AUDIO}
    drop_oldest = frozenset({"in"})  # every audio packet decodes on its own

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.state: AudioDecoderState | None = None

    @classmethod
    def metadata_for(cls, config: Any, port: str, declared: Port) -> dict[str, Any]:
        meta = {**super().metadata_for(config, port, declared), "sample_format": config.sample_format}
        return {**meta, "decoder": config.codec} if config.codec else meta

    @classmethod
    def check(cls, config: Mapping[str, Any]) -> list[str]:
        if problems := super().check(config):
            return problems
        c = cls.Config.model_validate(dict(config))
        return decoder_problems(c.codec, c.codec_options, kind="audio")

    def decode_packet(self, packet: EncodedPacket) -> list[tuple[Any, dict[str, Any], int]]:
        if self.state is None or self.state.key != packet.stream_key():
            self.state = None
            self.state = AudioDecoderState(packet, decoder=self.config.codec, options=self.config.codec_options)
        return self.state.decode(packet, self.config.sample_format)

    async def serve(self) -> None:
        while True:
            _, item = await self.lanes.get_any()
            assert isinstance(item, EncodedPacket)
            if item.kind != "audio":
                self.in_metrics["in"].errors += 1
                self.warn("in:kind", "got %s packets on an audio decoder", item.kind)
                continue
            try:
                frames = await self.work(self.decode_packet, item)
            except (av.error.FFmpegError, CodecError) as exc:
                self.in_metrics["in"].errors += 1
                self.warn("in:decode", "cannot decode a %s packet: %s", item.codec, exc)
                continue
            for samples, extra, ts in frames:
                await self.emit("out", samples, ts=ts, extra=extra)

    def release(self) -> None:
        self.state = None


