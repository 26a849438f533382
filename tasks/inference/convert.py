"""Audio as an engine takes it: 16-bit mono at one rate, converted from whatever raw audio comes in.

Frames already in that form pass through untouched; anything else goes through libswresample
(PyAV's ``AudioResampler``, as ``audio_resampler`` does), one converter per stream, remade when the
incoming format, rate or channel count changes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from tasks.media.raw import RawAudio, audio_frame

if TYPE_CHECKING:
    import av
else:
    from tasks.media._av import av

__all__ = ["MonoConverter", "resample_once"]


def _samples(frames: list[Any]) -> npt.NDArray[np.int16]:
    parts = [frame.to_ndarray().reshape(-1) for frame in frames]
    return np.concatenate(parts).astype(np.int16, copy=False) if parts else np.zeros(0, np.int16)


class MonoConverter:
    """Raw audio frames of a stream as 16-bit mono samples at ``rate`` Hz."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self._resampler: av.AudioResampler | None = None
        self._key: tuple[str, int, int] | None = None

    def __call__(self, raw: RawAudio) -> npt.NDArray[np.int16]:
        if raw.sample_format == "s16" and raw.rate == self.rate and raw.channels == 1:
            self._resampler = self._key = None
            return raw.samples.reshape(-1)
        key = (raw.sample_format, raw.rate, raw.channels)
        if self._resampler is None or key != self._key:
            self._resampler = av.AudioResampler(format="s16", layout="mono", rate=self.rate)
            self._key = key
        frame = raw.to_av()
        frame.pts = None
        return _samples(self._resampler.resample(frame))


def resample_once(samples: npt.NDArray[np.int16], rate: int, to_rate: int) -> npt.NDArray[np.int16]:
    """A whole clip of 16-bit mono ``samples`` at ``rate`` Hz resampled to ``to_rate`` (flushed: no tail kept)."""
    if rate == to_rate or samples.size == 0:
        return samples
    resampler = av.AudioResampler(format="s16", layout="mono", rate=to_rate)
    return _samples([*resampler.resample(audio_frame(samples.reshape(-1, 1), "s16", rate)), *resampler.resample(None)])
