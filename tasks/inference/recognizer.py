"""One stream's speech recognition: pocketsphinx's endpointer cuts utterances out of 16 kHz audio,
a decoder hears them. No I/O here: :class:`Recognizer` takes samples with the ``ts`` of their first
one and returns :class:`Result` s (partial hypotheses while an utterance goes on, a final one when
it ends), with times on the audio's own timeline.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tasks.inference.sphinx import RATE

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
else:
    from tasks._lazy import numpy as np

__all__ = ["Recognizer", "Result", "Word"]

_ALTERNATIVE = re.compile(r"\(\d+\)$")  # "on(2)": the dictionary's second pronunciation of "on"
_FRAME_MS = 10  # the acoustic model's frame rate: 100 per second


@dataclass(frozen=True, slots=True)
class Word:
    word: str
    start: int  # ms since the epoch, on the audio's timeline
    end: int


@dataclass(frozen=True, slots=True)
class Result:
    text: str
    start: int
    end: int
    final: bool
    words: list[Word] = field(default_factory=list)

    def extra(self) -> dict[str, Any]:
        """The control fields of its frame: when the utterance started and ended (ms), its words' times."""
        extra: dict[str, Any] = {"start_ts": self.start, "end_ts": self.end, "final": self.final}
        if self.words:
            extra["words"] = [{"word": w.word, "start_ts": w.start, "end_ts": w.end} for w in self.words]
        return extra


class Recognizer:
    """Utterances of one audio stream through ``decoder`` (its search already set)."""

    def __init__(self, decoder: Any, *, window_ms: int, vad_mode: int, partials: bool) -> None:
        self.decoder = decoder
        self._window = window_ms / 1000
        self._vad_mode = vad_mode
        self._partials = partials
        self._endpointer = self._new_endpointer()
        self._origin = 0  # the sample (since the stream began) where the endpointer's time 0 is
        self._fed = 0  # samples taken so far
        self._mark = (0, 0)  # (sample, ts in ms) of the latest frame in
        self._pending = b""  # less than a frame of the endpointer
        self._start = 0  # ts of the utterance going on
        self._partial = ""
        self.in_utterance = False

    def _new_endpointer(self) -> Any:
        import pocketsphinx  # loaded by the decoder already: no cost here

        return pocketsphinx.Endpointer(window=self._window, vad_mode=self._vad_mode, sample_rate=RATE)

    def _ts(self, seconds: float) -> int:
        """The ts of a time on the endpointer's clock."""
        sample = self._origin + round(seconds * RATE)
        return self._mark[1] + (sample - self._mark[0]) * 1000 // RATE

    def feed(self, samples: npt.NDArray[np.int16], ts: int) -> list[Result]:
        """16-bit mono samples at 16 kHz, the first at ``ts``: the results they complete."""
        self._mark = (self._fed, ts)
        self._fed += samples.shape[0]
        data = self._pending + samples.tobytes()
        size = self._endpointer.frame_bytes
        whole = len(data) - len(data) % size
        self._pending = data[whole:]
        results: list[Result] = []
        for offset in range(0, whole, size):
            results += self._frame(data[offset : offset + size])
        return results

    def _frame(self, frame: bytes) -> list[Result]:
        speaking = self._endpointer.in_speech
        speech = self._endpointer.process(frame)
        if speech is None:
            return []
        if not speaking:
            self.decoder.start_utt()
            self.in_utterance = True
            self._start, self._partial = self._ts(self._endpointer.speech_start), ""
        self.decoder.process_raw(speech)
        if not self._endpointer.in_speech:
            return self._end(self._ts(self._endpointer.speech_end))
        return self._partial_result()

    def _partial_result(self) -> list[Result]:
        if not self._partials:
            return []
        hyp = self.decoder.hyp()
        text = hyp.hypstr.strip() if hyp is not None else ""
        if not text or text == self._partial:
            return []
        self._partial = text
        return [Result(text, self._start, self._ts_now(), final=False)]

    def _ts_now(self) -> int:
        return self._mark[1] + (self._fed - self._mark[0]) * 1000 // RATE

    def _end(self, end: int) -> list[Result]:
        self.decoder.end_utt()
        self.in_utterance = False
        hyp = self.decoder.hyp()
        text = hyp.hypstr.strip() if hyp is not None else ""
        if not text:
            return []
        words = [Word(_ALTERNATIVE.sub("", seg.word), self._start + seg.start_frame * _FRAME_MS,
                      self._start + (seg.end_frame + 1) * _FRAME_MS)
                 for seg in self.decoder.seg() if seg.word[:1] not in ("<", "[")]
        return [Result(text, self._start, end, final=True, words=words)]

    def flush(self) -> list[Result]:
        """End the utterance going on (the audio stopped coming): its final result, if any."""
        if not self.in_utterance:
            return []
        speech = self._endpointer.end_stream(self._pending)
        if speech:
            self.decoder.process_raw(speech)
        results = self._end(self._ts_now())
        self._endpointer, self._origin, self._pending = self._new_endpointer(), self._fed, b""
        return results

    def close(self) -> None:
        """Leave the decoder ready for its next user."""
        if self.in_utterance:
            self.decoder.end_utt()
            self.in_utterance = False
