"""Audio processing: resample, measure the level, scale the volume.

Levels are in dBFS relative to a full-scale square wave: a full-scale sine has a peak of
0 dBFS and an RMS of -3.01 dBFS; silence reads ``floor_db``.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from pydantic import Field

from edge.frames import Frame
from edge.task import Port
from tasks.media.audio import SampleFormat
from tasks.media.mediatask import RAW_AUDIO, MediaConfig, MediaTask
from tasks.media.raw import RawAudio, audio_array, audio_extra, from_float, layout_for
from tasks.media.timing import SampleClock

if TYPE_CHECKING:
    import av
    import numpy as np
    import numpy.typing as npt
else:
    from tasks._lazy import numpy as np
    from tasks.media._av import av

__all__ = ["AudioResampler", "AudioVolumeMeter", "AudioVolumeScaler", "level_db"]


def level_db(value: float, floor_db: float) -> float:
    """``20 log10(value)``, not below ``floor_db``."""
    return max(20 * math.log10(value), floor_db) if value > 0 else floor_db


class AudioResamplerConfig(MediaConfig):
    queue: int = Field(default=16, ge=1, le=10_000)
    rate: int | None = Field(default=None, ge=8000, le=192000, description="unset: the input's")
    channels: int | None = Field(default=None, ge=1, le=8, description="unset: the input's")
    sample_format: SampleFormat | None = Field(default=None, description="unset: the input's")
    frame_samples: int | None = Field(default=None, ge=16, le=192000, description="samples per output frame; "
                                                                                  "unset: as they come")


class AudioResampler(MediaTask):
    """Change the sample rate, channel count (down/up-mix) and sample format of raw audio (libswresample)."""

    Config = AudioResamplerConfig
    inputs = {"in": RAW_AUDIO}
    outputs = {"out": RAW_AUDIO}
    drop_oldest = frozenset({"in"})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._resampler: av.AudioResampler | None = None
        self._key: tuple[str, int, int] | None = None
        self._clock: SampleClock | None = None
        self._position = 0  # pts of the next output sample
        self._emitted = 0  # output samples since the resampler was (re)made

    @classmethod
    def metadata_for(cls, config: Any, port: str, declared: Port) -> dict[str, Any]:
        c = config
        extra = {"rate": c.rate, "channels": c.channels, "sample_format": c.sample_format}
        return {**super().metadata_for(config, port, declared), **{k: v for k, v in extra.items() if v is not None}}

    def resample(self, raw: RawAudio) -> list[tuple[npt.NDArray[Any], dict[str, Any], int]]:
        c = self.config
        rate = c.rate or raw.rate
        key = (raw.sample_format, raw.rate, raw.channels)
        if self._resampler is None or key != self._key:
            self._resampler = av.AudioResampler(format=c.sample_format or raw.sample_format,
                                                layout=layout_for(c.channels or raw.channels), rate=rate,
                                                frame_size=c.frame_samples)
            self._key = key
            self._clock = SampleClock(rate)
            self._emitted = 0
            self._position = round(raw.pts * raw.time_base * rate)
        assert self._clock is not None
        frame = raw.to_av()
        frame.pts = None
        self._clock.add(raw.samples.shape[0], raw.rate, raw.ts)
        out = []
        for part in self._resampler.resample(frame):
            samples, fmt = audio_array(part)
            ts = self._clock.ts(self._emitted)
            out.append((samples, audio_extra(fmt, rate, self._position, Fraction(1, rate)), ts or raw.ts))
            self._position += part.samples
            self._emitted += part.samples
        return out

    async def serve(self) -> None:
        while True:
            _, item = await self.lanes.get_any()
            assert isinstance(item, RawAudio)
            for samples, extra, ts in await self.work(self.resample, item):
                await self.emit("out", samples, ts=ts, extra=extra)


class AudioVolumeMeterConfig(MediaConfig):
    queue: int = Field(default=16, ge=1, le=10_000)
    floor_db: float = Field(default=-100.0, ge=-200, le=0, description="what silence reads")


class AudioVolumeMeter(MediaTask):
    """The level of raw audio, per frame: RMS and peak in dBFS over all channels (a full-scale sine: -3.01 / 0)."""

    Config = AudioVolumeMeterConfig
    inputs = {"in": RAW_AUDIO}
    outputs = {"rms": Port(content="number", extra={"unit": "dBFS"}),
               "peak": Port(content="number", extra={"unit": "dBFS"})}
    drop_oldest = frozenset({"in"})

    def measure(self, raw: RawAudio) -> tuple[float, float]:
        samples = raw.as_float().astype(np.float64)
        rms = float(np.sqrt(np.mean(samples * samples)))
        peak = float(np.max(np.abs(samples)))
        floor = self.config.floor_db
        return round(level_db(rms, floor), 3), round(level_db(peak, floor), 3)

    async def serve(self) -> None:
        while True:
            _, item = await self.lanes.get_any()
            assert isinstance(item, RawAudio)
            rms, peak = self.measure(item)  # a few thousand samples: cheaper here than a thread hop
            await self.emit("rms", rms, ts=item.ts)
            await self.emit("peak", peak, ts=item.ts)


class AudioVolumeScalerConfig(MediaConfig):
    queue: int = Field(default=16, ge=1, le=10_000)
    gain_db: float = Field(default=0.0, ge=-120, le=40, description="until a number on 'gain' replaces it")


class AudioVolumeScaler(MediaTask):
    """Scale the volume of raw audio by a gain in dB (clipped at full scale); the gain can change at run time."""

    Config = AudioVolumeScalerConfig
    inputs = {"in": RAW_AUDIO, "gain": Port(content="number", extra={"unit": "dB"})}
    outputs = {"out": RAW_AUDIO}
    drop_oldest = frozenset({"in"})

    def scale(self, raw: RawAudio, gain_db: float) -> npt.NDArray[Any]:
        if gain_db == 0:
            return raw.samples
        factor = np.float32(10 ** (gain_db / 20))
        return from_float(np.clip(raw.as_float() * factor, -1.0, 1.0), raw.sample_format)

    async def serve(self) -> None:
        gain_db = self.config.gain_db
        while True:
            _, item = await self.lanes.get_any()
            if isinstance(item, Frame):
                value = item.value
                if isinstance(value, int | float) and not isinstance(value, bool) and -120 <= value <= 40:
                    gain_db = float(value)
                else:
                    self.in_metrics["gain"].errors += 1
                    self.warn("gain:range", "gain must be a number of dB from -120 to 40, got %r", value)
                continue
            assert isinstance(item, RawAudio)
            samples = self.scale(item, gain_db)
            await self.emit("out", samples, ts=item.ts, extra=item.extra())
