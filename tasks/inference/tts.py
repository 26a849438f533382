"""``text_to_speech``: text frames in, speech out as raw audio frames (eSpeak NG), the ``text_to_speech`` entry point.

Each text frame is one utterance: spoken with the configured voice, rate and pitch, resampled
to ``sample_rate`` if that is not eSpeak NG's own 22050 Hz, followed by ``silence_ms`` of silence
(so a recognizer downstream hears the utterance end), and sent in frames of ``frame_samples``.
The audio keeps one timeline: an utterance starts at its text frame's ``ts`` or where the
previous one ended, whichever is later (unless the previous one ended over an hour after this
text: a far-future ``ts`` does not push every later utterance there), and ``pts`` counts samples
since the task started. A text whose audio would end past the last ``ts`` a frame carries is
counted as an error on ``in`` and not spoken.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from fractions import Fraction
from typing import TYPE_CHECKING, Any, TypeAlias

from pydantic import Field

from edge.frames import Frame
from edge.task import Port, Task
from tasks.inference import espeak  # first of ours: without eSpeak NG, its error is the reason
from tasks.inference.convert import resample_once
from tasks.media.mediatask import MediaConfig, MediaTask
from tasks.media.raw import audio_extra

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
else:
    from tasks._lazy import numpy as np

__all__ = ["TYPES", "TextToSpeech"]

ESPEAK_RATE = 22050
MAX_TS = 2**63 - 1  # the latest ts a frame carries (ms)
RESET_AFTER_MS = 3_600_000  # a text this long before where the previous utterance ended starts a new timeline
BATCH_CHARS = 400  # characters of queued texts spoken in one request to eSpeak NG's process (~20 ms of speech)
BATCH_ITEMS = 64  # and frames taken at most (blank ones are skipped, not spoken)
SUBMIT_HERE_CHARS = 4096  # a batch up to this long is written to eSpeak NG's process from the event loop
#: a batch's audio, one array per text, or why eSpeak NG's process gave none
Heard: TypeAlias = "list[npt.NDArray[np.int16]] | espeak.EspeakGone"


class TextToSpeechConfig(MediaConfig):
    queue: int = Field(default=16, ge=1, le=10_000, description="texts waiting to be spoken (the oldest goes)")
    voice: str = Field(default="en-us", pattern=r"^[A-Za-z0-9_+\-]{1,40}$",
                       description="an eSpeak NG voice: en-us, en, de, fr, es, … (+variant: en-us+f3)")
    rate: int = Field(default=175, ge=80, le=450, description="words per minute")
    pitch: int = Field(default=50, ge=0, le=99, description="0 (low) to 99 (high)")
    volume: int = Field(default=100, ge=0, le=200, description="percent of eSpeak NG's normal amplitude")
    sample_rate: int = Field(default=ESPEAK_RATE, ge=8000, le=48000,
                             description="samples per second of the audio out (eSpeak NG speaks at 22050; "
                                         "other rates are resampled)")
    frame_samples: int = Field(default=4096, ge=64, le=16384,
                               description="samples per audio frame out (an utterance is spoken whole, then sent: "
                                           "bigger frames add no delay and cost fewer messages)")
    silence_ms: int = Field(default=300, ge=0, le=10_000, description="silence after each utterance")
    max_chars: int = Field(default=2000, ge=1, le=100_000, description="longer texts are refused (counted as "
                                                                       "errors on 'in')")


class TextToSpeech(MediaTask):
    """Speak each text frame with eSpeak NG: raw 16-bit mono audio out, at the configured rate.

    Voice, words per minute and pitch come from the config; eSpeak NG speaks at 22050 Hz and other
    rates are resampled. Each utterance ends with ``silence_ms`` of silence and starts where the
    previous one ended if its text came sooner, so the audio keeps one timeline.
    """

    Config = TextToSpeechConfig
    category = "inference"
    inputs = {"in": Port(content="text", label="text to speak")}
    outputs = {"out": Port(content="audio", codec="raw", rate=ESPEAK_RATE, channels=1, sample_format="s16",
                           label="speech", extra={"packets": False})}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._position = 0  # pts of the next sample out
        self._next_ts = 0  # where the previous utterance ended (ms)

    @classmethod
    def metadata_for(cls, config: Any, port: str, declared: Port) -> dict[str, Any]:
        return {**super().metadata_for(config, port, declared), "rate": config.sample_rate}

    def text_of(self, frame: Frame) -> str | None:
        """The text to speak, or None (counted as an error on ``in`` unless it is a pause or blank)."""
        value = frame.value
        if frame.paused:
            return None
        if not isinstance(value, str):
            self.count_error(self.in_metrics["in"], "in:type", "text_to_speech speaks text, got %s",
                             type(value).__name__)
            return None
        if len(value) > self.config.max_chars:
            self.count_error(self.in_metrics["in"], "in:long", "a text of %d characters is over max_chars (%d)",
                             len(value), self.config.max_chars)
            return None
        return value if value.strip() else None

    async def serve(self) -> None:
        engine = await espeak.ENGINE.get()
        await self.work(engine.check_voice, self.config.voice)
        # the next texts are spoken (by eSpeak NG's process: espeak_process says why not in this one) while
        # the audio of the previous ones is sent
        await self.ahead(self._batches(engine), self._send)

    def submit(self, engine: espeak.EspeakProcess, texts: list[str]) -> espeak.Ticket:
        c = self.config
        return engine.submit(texts, voice=c.voice, rate=c.rate, pitch=c.pitch, volume=c.volume)

    def hear(self, engine: espeak.EspeakProcess, ticket: espeak.Ticket) -> Heard:
        """The audio of a submitted batch at ``sample_rate``, each text's with the trailing silence (in the worker
        thread: it waits for eSpeak NG's process), or why the process gave none (it crashed or hung)."""
        try:
            spoken = engine.result(ticket)
        except espeak.EspeakGone as exc:
            return exc
        c = self.config
        silence = np.zeros(c.sample_rate * c.silence_ms // 1000, np.int16)
        out = []
        for samples in spoken:
            resampled = resample_once(samples, engine.rate, c.sample_rate)
            out.append(np.concatenate([resampled, silence]) if silence.size else resampled)
        return out

    async def _batches(self, engine: espeak.EspeakProcess) -> AsyncIterator[tuple[list[Frame], asyncio.Future[Heard]]]:
        while True:
            # the texts that queued meanwhile are spoken in one request (a request costs about a fifth of speaking
            # a short command), up to BATCH_CHARS, so the first one's audio is not held long
            frames: list[Frame] = []
            texts: list[str] = []
            _, item = await self.lanes.get_any()
            chars = 0
            for taken in range(1, BATCH_ITEMS + 1):
                assert isinstance(item, Frame)
                text = self.text_of(item)
                if text is not None:
                    frames.append(item)
                    texts.append(text)
                    chars += len(text)
                if chars >= BATCH_CHARS or taken == BATCH_ITEMS or (queued := self.lanes.pop_any()) is None:
                    break
                item = queued[1]
            if texts:
                # written to eSpeak NG's process now, waited for in the worker thread: the process has the next
                # batch before it has finished the one before. A short write to a pipe it reads all the time is
                # made from here; a long text (it could fill the pipe) or a process to start, from a thread
                if engine.running and chars <= SUBMIT_HERE_CHARS:
                    ticket = self.submit(engine, texts)
                else:
                    ticket = await asyncio.to_thread(self.submit, engine, texts)
                yield frames, asyncio.ensure_future(self.work(self.hear, engine, ticket))

    async def _send(self, frames: list[Frame], heard: Heard) -> None:
        if isinstance(heard, espeak.EspeakGone):  # it crashed or hung: these texts are lost, the next start another
            self.count_error(self.in_metrics["in"], "in:engine", "%s: %d text(s) not spoken", heard, len(frames))
            return
        for item, samples in zip(frames, heard, strict=True):
            await self._send_one(item, samples)

    async def _send_one(self, item: Frame, samples: npt.NDArray[np.int16]) -> None:
        c = self.config
        step = Fraction(1, c.sample_rate)
        duration = samples.shape[0] * 1000 // c.sample_rate
        # after its previous utterance unless that one ended over an hour after this text (a far-future ts:
        # it must not push every later utterance there)
        start = item.ts if self._next_ts - item.ts > RESET_AFTER_MS else max(item.ts, self._next_ts)
        if start + duration > MAX_TS:
            self.count_error(self.in_metrics["in"], "in:ts", "a text at ts %d would be spoken past the last time "
                             "a frame can carry (2**63 - 1 ms): not spoken", item.ts)
            return
        for offset in range(0, samples.shape[0], c.frame_samples):
            chunk = samples[offset : offset + c.frame_samples].reshape(-1, 1)
            ts = start + offset * 1000 // c.sample_rate
            await self.emit("out", chunk, ts=ts, extra=audio_extra("s16", c.sample_rate, self._position, step))
            self._position += chunk.shape[0]
        self._next_ts = start + samples.shape[0] * 1000 // c.sample_rate


#: the ``text_to_speech`` entry point's types
TYPES: list[type[Task]] = [TextToSpeech]
