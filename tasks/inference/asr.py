"""``speech_recognition``: raw audio in, what was said out as text frames (pocketsphinx), the
``speech_recognition`` entry point.

Audio of any raw format, rate and channel count is converted to 16 kHz mono (the model's). The
endpointer finds where speech starts and ends; while an utterance goes on its hypothesis goes out
on ``partial`` each time it changes, and when it ends (``end_silence_ms`` of silence, or no audio
for ``idle_ms``) the final text goes out on ``text``. Both carry the utterance's start as their
``ts`` and ``start_ts``/``end_ts`` control fields; a final one also the words with their times.

Modes: ``grammar`` (a JSGF grammar: what a command set needs, accurate and fast), ``keywords``
(spot phrases in any speech) and ``language_model`` (the bundled general English model: open
dictation, much less accurate).
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import replace
from functools import partial
from itertools import islice
from typing import Any, Literal

from pydantic import Field, model_validator

from edge.errors import FrameError
from edge.task import Port, Task
from tasks.inference import sphinx  # first of ours: without pocketsphinx, its error is the reason
from tasks.inference.convert import MonoConverter
from tasks.inference.recognizer import Recognizer, Result
from tasks.media.mediatask import RAW_AUDIO, MediaConfig, MediaTask
from tasks.media.raw import RawAudio

__all__ = ["TYPES", "SpeechRecognition"]

_PHRASE = r"^[A-Za-z' ]{1,200}$"
BATCH = 64  # frames heard in one hop to the worker thread at most


class SpeechRecognitionConfig(MediaConfig):
    queue: int = Field(default=1024, ge=1, le=10_000, description="audio frames waiting (the oldest goes): a burst of "
                       "synthesized speech (~20 s of 20 ms frames) fits, so none is lost to a busy moment")
    mode: Literal["grammar", "keywords", "language_model"] = Field(
        default="language_model", description="grammar: a JSGF grammar; keywords: spot phrases; "
                                              "language_model: open English (weak)")
    grammar: str = Field(default="", max_length=100_000, description="JSGF text (mode grammar), e.g. "
                         "#JSGF V1.0; grammar home; public <cmd> = turn (on | off) the (kitchen | hall) light;")
    keywords: list[str] = Field(default_factory=list, max_length=200,
                                description="phrases to spot (mode keywords), words of the en-us dictionary")
    keyword_threshold: float = Field(default=1e-20, gt=0, le=1,
                                     description="lower: fewer misses, more false alarms; a phrase of two or "
                                                 "three words needs ~1e-40 to 1e-60")
    partial_results: bool = Field(default=True, description="send the hypothesis on 'partial' as it changes")
    end_silence_ms: int = Field(default=300, ge=150, le=5000,
                                description="the endpointer's window: this much speech starts an utterance, "
                                            "this much silence ends it")
    vad_mode: int = Field(default=0, ge=0, le=3, description="how much the endpointer takes for non-speech "
                                                             "(0: least)")
    idle_ms: int = Field(default=1000, ge=50, le=60_000, description="an utterance also ends when no audio "
                                                                     "came for this long")

    @model_validator(mode="after")
    def _mode_needs(self) -> SpeechRecognitionConfig:
        if self.mode == "grammar" and not self.grammar.strip():
            raise ValueError("mode grammar needs a JSGF grammar in 'grammar'")
        if self.mode == "keywords":
            if not self.keywords:
                raise ValueError("mode keywords needs phrases in 'keywords'")
            bad = [k for k in self.keywords if not re.match(_PHRASE, k) or not k.strip()]
            if bad:
                raise ValueError(f"a keyword phrase is words of letters and apostrophes, got {bad[0][:40]!r}")
        return self




class SpeechRecognition(MediaTask):
    """Recognize speech in raw audio with pocketsphinx (en-us): final text per utterance, partial results as it goes.

    Audio of any raw format is heard at 16 kHz mono; the endpointer cuts utterances out of it. Each
    result's ``ts`` is its utterance's start; ``start_ts``, ``end_ts`` and (final results) ``words``
    with their times are control fields of the frame. Modes: ``grammar`` (a JSGF grammar: accurate
    and fast on commands), ``keywords`` (spot phrases), ``language_model`` (open English: weak).
    """

    Config = SpeechRecognitionConfig
    category = "inference"
    inputs = {"in": replace(RAW_AUDIO, label="audio (any raw format; heard at 16 kHz mono)")}
    outputs = {"text": Port(content="text", label="final text per utterance"),
               "partial": Port(content="text", label="hypothesis so far")}
    drop_oldest = frozenset({"in"})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._convert = MonoConverter(sphinx.RATE)
        self.recognizer: Recognizer | None = None
        self._decoder: Any = None
        self._pool = sphinx.decoders(self.config.mode)

    def hear(self, batch: list[RawAudio]) -> tuple[list[Result], list[str]]:
        """The results of a batch of frames, and why each frame that could not be heard was not."""
        assert self.recognizer is not None
        results: list[Result] = []
        problems: list[str] = []
        for raw in batch:
            try:
                samples = self._convert(raw)
            except FrameError as exc:
                problems.append(str(exc))
                continue
            results += self.recognizer.feed(samples, raw.ts)
        return results, problems

    async def send_results(self, results: list[Result]) -> None:
        for result in results:
            await self.emit("text" if result.final else "partial", result.text, ts=result.start,
                            extra=result.extra())

    async def serve(self) -> None:
        c = self.config
        self._decoder = decoder = await self._pool.acquire()
        await self.work(partial(sphinx.set_search, decoder, mode=c.mode, grammar=c.grammar, keywords=c.keywords,
                                threshold=c.keyword_threshold))
        self.recognizer = Recognizer(decoder, window_ms=c.end_silence_ms, vad_mode=c.vad_mode,
                                     partials=c.partial_results)
        await self.listen()

    def release(self) -> None:
        """Give the decoder back to the agent's pool (in the worker thread, after the job in flight)."""
        if self.recognizer is not None:
            self.recognizer.close()
            self.recognizer = None
        if self._decoder is not None:
            self._pool.release(self._decoder)
            self._decoder = None

    async def listen(self) -> None:
        assert self.recognizer is not None
        idle = self.config.idle_ms / 1000
        while True:
            try:
                async with asyncio.timeout(idle if self.recognizer.in_utterance else None):
                    _, item = await self.lanes.get_any()
            except TimeoutError:
                await self.send_results(await self.work(self.recognizer.flush))
                continue
            # what queued while the last batch was heard goes to the worker in one hop
            batch = [item, *(queued for _, queued in islice(iter(self.lanes.pop_any, None), BATCH - 1))]
            results, problems = await self.work(self.hear, [b for b in batch if isinstance(b, RawAudio)])
            for problem in problems:
                self.count_error(self.in_metrics["in"], "in:audio", "%s", problem)
            await self.send_results(results)


#: the ``speech_recognition`` entry point's types
TYPES: list[type[Task]] = [SpeechRecognition]
