"""Audio as an engine takes it: 16-bit mono at one rate, converted from whatever raw audio comes in.

Frames already in that form pass through untouched; anything else goes through libswresample
(PyAV's ``AudioResampler``, as ``audio_resampler`` does), one converter per stream, remade when the
incoming format, rate or channel count changes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from edge.errors import FrameError
from tasks.media.raw import RawAudio, audio_frame

if TYPE_CHECKING:
    import av
    import numpy as np
    import numpy.typing as npt
else:
    from tasks._lazy import numpy as np
    from tasks.media._av import av

__all__ = ["MAX_CHANNELS", "MAX_RATE", "MIN_RATE", "MonoConverter", "resample_once"]


def _samples(frames: list[Any]) -> npt.NDArray[np.int16]:
    parts = [frame.to_ndarray().reshape(-1) for frame in frames]
    return np.concatenate(parts).astype(np.int16, copy=False) if parts else np.zeros(0, np.int16)


#: input rates libswresample converts without trouble (2**31 - 1 Hz, valid on the wire, exhausts its memory)
MIN_RATE: Final = 1000
MAX_RATE: Final = 384_000
MAX_CHANNELS: Final = 8


class MonoConverter:
    """Raw audio frames of a stream as 16-bit mono samples at ``rate`` Hz; FrameError for audio it cannot
    convert (a rate outside 1 kHz..384 kHz, more than 8 channels)."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self._resampler: av.AudioResampler | None = None
        self._key: tuple[str, int, int] | None = None

    def __call__(self, raw: RawAudio) -> npt.NDArray[np.int16]:
        if raw.sample_format == "s16" and raw.rate == self.rate and raw.channels == 1:
            self._resampler = self._key = None
            return raw.samples.reshape(-1)
        if not MIN_RATE <= raw.rate <= MAX_RATE or raw.channels > MAX_CHANNELS:
            raise FrameError(f"audio of {raw.channels} channel(s) at {raw.rate} Hz: speech tasks take 1 to "
                             f"{MAX_CHANNELS} channels at {MIN_RATE} to {MAX_RATE} Hz")
        key = (raw.sample_format, raw.rate, raw.channels)
        try:
            if self._resampler is None or key != self._key:
                self._resampler = av.AudioResampler(format="s16", layout="mono", rate=self.rate)
                self._key = key
            frame = raw.to_av()
            frame.pts = None
            return _samples(self._resampler.resample(frame))
        except (ValueError, OSError, MemoryError) as exc:  # FFmpeg's errors; the next frame starts afresh
            self._resampler = self._key = None
            raise FrameError(f"audio that could not be converted: {exc}") from None


def resample_once(samples: npt.NDArray[np.int16], rate: int, to_rate: int) -> npt.NDArray[np.int16]:
    """A whole clip of 16-bit mono ``samples`` at ``rate`` Hz resampled to ``to_rate`` (flushed: no tail kept)."""
    if rate == to_rate or samples.size == 0:
        return samples
    resampler = av.AudioResampler(format="s16", layout="mono", rate=to_rate)
    return _samples([*resampler.resample(audio_frame(samples.reshape(-1, 1), "s16", rate)), *resampler.resample(None)])
