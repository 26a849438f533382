"""Speech enhancement: raw audio in, the same audio with the noise taken out, at the input's rate,
sample format and channel count. The two engines (``deepfilternet``: DeepFilterNet3; ``rnnoise``:
RNNoise) share this module's :class:`Enhancer`; each has its own entry point and module
(:mod:`tasks.inference.deepfilter`, :mod:`tasks.inference.rnnoise`).

Both engines take 48 kHz audio 480 samples (10 ms) at a time, one stream state per channel.
Audio at another rate is resampled to 48 kHz on the way in and back on the way out
(libswresample, as ``audio_resampler`` does); audio at 48 kHz goes to the engine as it is. The
output keeps the input's timeline: an output sample has the ``ts`` of the input sample at the
same position (the engines' own latency, 30 ms for DeepFilterNet3 and 10 ms for RNNoise, is in
the audio, not in the ``ts``), and ``pts`` counts samples from the first input frame's ``pts``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from fractions import Fraction
from itertools import islice
from typing import TYPE_CHECKING, Any, Final, Protocol

from pydantic import Field

from edge.errors import FrameError
from tasks.inference.convert import MAX_CHANNELS, MAX_RATE, MIN_RATE
from tasks.media.mediatask import RAW_AUDIO, MediaConfig, MediaTask
from tasks.media.raw import RawAudio, audio_array, audio_extra, from_float, layout_for, to_float
from tasks.media.timing import SampleClock

if TYPE_CHECKING:
    import av
    import numpy as np
    import numpy.typing as npt
else:
    from tasks._lazy import numpy as np
    from tasks.media._av import av

__all__ = ["BATCH", "FRAME", "RATE", "Engine", "EnhanceConfig", "Enhancer", "Stream"]

#: the engines' sample rate and the samples they take at a time (10 ms)
RATE: Final = 48000
FRAME: Final = 480
BATCH = 64  # frames enhanced in one hop to the worker thread at most
#: what a batch gave: each enhanced frame's samples, extra fields and ts; why a frame was not enhanced
Enhanced = tuple[list[tuple["npt.NDArray[Any]", dict[str, Any], int]], list[str]]


class Engine(Protocol):
    """What :class:`Enhancer` needs of an engine: per-channel states that enhance 480 float32 samples at a time."""

    name: str

    def new_state(self) -> Any: ...

    def free_state(self, state: Any) -> None: ...

    def process(self, state: Any, samples: npt.NDArray[np.float32], out: npt.NDArray[np.float32]) -> None:
        """Enhance whole frames of ``samples`` (a multiple of :data:`FRAME`, full scale 1.0, contiguous) into
        ``out`` (same shape)."""


class EnhanceConfig(MediaConfig):
    queue: int = Field(default=1024, ge=1, le=10_000, description="audio frames waiting (the oldest goes)")


class Stream:
    """One audio stream through an engine: conversion to 48 kHz float per channel and back, the 10 ms
    framing, the states, the timeline. No I/O here: :meth:`feed` takes a frame, returns what is ready."""

    def __init__(self, engine: Engine, raw: RawAudio, states: list[Any] | None = None) -> None:
        """``states``: those of the stream this one follows (its format changed): kept per channel."""
        self.engine = engine
        self.key = _key(raw)
        kept = list(states or [])
        for state in kept[raw.channels :]:
            engine.free_state(state)
        self.states = kept[: raw.channels] + [engine.new_state() for _ in range(raw.channels - len(kept))]
        self._direct = raw.rate == RATE
        self._in = None if self._direct else av.AudioResampler(format="fltp", layout=layout_for(raw.channels),
                                                               rate=RATE)
        self._out = None if self._direct else av.AudioResampler(format=raw.sample_format,
                                                                layout=layout_for(raw.channels), rate=raw.rate)
        self._pending = np.zeros((raw.channels, 0), np.float32)  # less than a frame, per channel
        self._clock = SampleClock(raw.rate)
        self._emitted = 0  # output samples so far (at the input's rate)
        self._pts = round(raw.pts * raw.time_base * raw.rate)  # of the next output sample
        self.rate, self.sample_format = raw.rate, raw.sample_format

    def close(self) -> None:
        for state in self.detach():
            self.engine.free_state(state)

    def detach(self) -> list[Any]:
        """The states, for the stream that follows this one (this one cannot be fed any more)."""
        states, self.states = self.states, []
        return states

    def _to_engine(self, raw: RawAudio) -> npt.NDArray[np.float32]:
        """channels x samples at 48 kHz, float32 of full scale 1.0."""
        if self._in is None:
            return np.ascontiguousarray(raw.as_float().T)
        frame = raw.to_av()
        frame.pts = None
        parts = [part.to_ndarray() for part in self._in.resample(frame)]
        return np.concatenate(parts, axis=1).astype(np.float32, copy=False) if parts else \
            np.zeros((raw.channels, 0), np.float32)

    def _from_engine(self, enhanced: npt.NDArray[np.float32]) -> npt.NDArray[Any]:
        """samples x channels in the input's format and rate."""
        if self._out is None:
            return from_float(np.ascontiguousarray(enhanced.T), self.sample_format)
        if enhanced.shape[1] == 0:
            return np.zeros((0, enhanced.shape[0]), np.float32)
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(enhanced), format="fltp",
                                           layout=layout_for(enhanced.shape[0]))
        frame.sample_rate = RATE
        parts = [audio_array(part)[0] for part in self._out.resample(frame)]
        return np.concatenate(parts) if parts else np.zeros((0, enhanced.shape[0]), np.float32)

    def feed(self, raws: list[RawAudio]) -> tuple[npt.NDArray[Any], dict[str, Any], int] | None:
        """Enhance frames of this stream's format, one after the other: (samples, control fields, ts) of the
        audio they complete, in one piece, or None if none yet. Frames that queued are enhanced together:
        each array operation costs ~4 µs whatever its size, a dozen per call, against ~0.4 ms of the engine
        per 10 ms of audio."""
        for raw in raws:
            self._clock.add(raw.samples.shape[0], raw.rate, raw.ts)
        if self._in is None and len(raws) > 1:
            incoming = np.ascontiguousarray(to_float(np.concatenate([raw.samples for raw in raws])).T)
        else:
            parts = [self._to_engine(raw) for raw in raws]
            incoming = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)
        if not np.isfinite(incoming).all():  # NaN would stay in the engine's state: the stream silent for good
            incoming = np.nan_to_num(incoming, nan=0.0, posinf=1.0, neginf=-1.0)
        audio = np.concatenate([self._pending, incoming], axis=1)
        whole = audio.shape[1] - audio.shape[1] % FRAME
        self._pending = audio[:, whole:]
        if whole == 0:
            return None
        enhanced = np.empty((audio.shape[0], whole), np.float32)
        for channel, state in enumerate(self.states):
            self.engine.process(state, np.ascontiguousarray(audio[channel, :whole]), enhanced[channel])
        samples = self._from_engine(enhanced)
        if samples.shape[0] == 0:
            return None
        ts = self._clock.ts(self._emitted)
        extra = audio_extra(self.sample_format, self.rate, self._pts, Fraction(1, self.rate))
        self._emitted += samples.shape[0]
        self._pts += samples.shape[0]
        return samples, extra, raws[0].ts if ts is None else ts


def _key(raw: RawAudio) -> tuple[str, int, int]:
    """What a stream is made for: frames of another format need another one."""
    return raw.sample_format, raw.rate, raw.channels


class Enhancer(MediaTask):
    """Base of the speech enhancement types: subclasses name their :attr:`engine` (made in :meth:`load`)."""

    Config = EnhanceConfig
    category = "inference"
    inputs = {"in": replace(RAW_AUDIO, label="noisy audio (any raw format; enhanced at 48 kHz)")}
    outputs = {"out": replace(RAW_AUDIO, label="enhanced audio (the input's rate, format and channels)")}
    drop_oldest = frozenset({"in"})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.engine: Engine | None = None
        self.stream: Stream | None = None

    async def load(self) -> Engine:
        """The engine, loaded (once per agent, in a thread)."""
        raise NotImplementedError

    def enhance(self, batch: list[RawAudio]) -> Enhanced:
        """The enhanced audio of a batch of frames (the frames of one format in a row, in one piece), and why
        each frame that could not be enhanced was not."""
        out: list[tuple[npt.NDArray[Any], dict[str, Any], int]] = []
        problems: list[str] = []
        run: list[RawAudio] = []

        def flush() -> None:
            if not run:
                return
            try:
                done = self._enhance(run)
            except FrameError as exc:
                problems.extend([str(exc)] * len(run))
            else:
                if done is not None:
                    out.append(done)
            run.clear()

        for raw in batch:
            if not MIN_RATE <= raw.rate <= MAX_RATE or raw.channels > MAX_CHANNELS:
                problems.append(f"audio of {raw.channels} channel(s) at {raw.rate} Hz: speech enhancement takes 1 "
                                f"to {MAX_CHANNELS} channels at {MIN_RATE} to {MAX_RATE} Hz")
                continue
            if run and _key(run[0]) != _key(raw):
                flush()
            run.append(raw)
        flush()
        return out, problems

    def _enhance(self, run: list[RawAudio]) -> tuple[npt.NDArray[Any], dict[str, Any], int] | None:
        """Frames of one format through the stream (a new one for a new format)."""
        assert self.engine is not None
        raw = run[0]
        if self.stream is None or self.stream.key != _key(raw):
            # a new format: new converters; the channels' states go on (what was pending, under 10 ms, goes)
            self.stream = Stream(self.engine, raw, self.stream.detach() if self.stream is not None else None)
        try:
            return self.stream.feed(run)
        except (ValueError, OSError, MemoryError) as exc:  # FFmpeg's errors; the next frame starts afresh
            self.stream.close()
            self.stream = None
            raise FrameError(f"audio that could not be converted: {exc}") from None

    async def serve(self) -> None:
        self.engine = await self.load()
        # the next batch is enhanced in the worker thread while the last one's frames are sent
        await self.ahead(self._batches(), self._send)

    async def _batches(self) -> AsyncIterator[tuple[None, asyncio.Future[Enhanced]]]:
        while True:
            _, item = await self.lanes.get_any()
            # what queued meanwhile goes to the worker in one hop
            batch = [item, *(queued for _, queued in islice(iter(self.lanes.pop_any, None), BATCH - 1))]
            yield None, asyncio.ensure_future(self.work(self.enhance, [b for b in batch if isinstance(b, RawAudio)]))

    async def _send(self, _: None, result: Enhanced) -> None:
        enhanced, problems = result
        for problem in problems:
            self.count_error(self.in_metrics["in"], "in:audio", "%s", problem)
        for samples, extra, ts in enhanced:
            await self.emit("out", samples, ts=ts, extra=extra)

    def release(self) -> None:
        if self.stream is not None:
            self.stream.close()
            self.stream = None
