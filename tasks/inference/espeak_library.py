"""eSpeak NG itself, through ctypes, from the library and voice data the ``espeakng-loader`` wheel ships.

eSpeak NG keeps one synthesizer per process (global state in the C library), so :class:`Espeak` is made
once per process and its users take turns: each :meth:`Espeak.synthesize` sets the voice, rate and pitch
it needs under the lock (unless the synthesizer is set so already), then speaks.

This module imports nothing of edgetasks (nor numpy until :meth:`Espeak.synthesize` is called): it is
what :mod:`tasks.inference.espeak_process` runs, a process that should cost little memory.
"""

from __future__ import annotations

import ctypes
import threading
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = ["Espeak", "UnknownVoice"]


class UnknownVoice(ValueError):
    """A voice eSpeak NG does not have."""


# espeak_AUDIO_OUTPUT, espeak_PARAMETER and the flags of speak_lib.h
_SYNCHRONOUS: Final = 2
_RATE: Final = 1
_VOLUME: Final = 2
_PITCH: Final = 3
_CHARS_UTF8: Final = 1
_EE_OK: Final = 0
# audio handed to the callback at a time: long, so that the callback (which takes the GIL) runs once or twice
# per utterance rather than every 60 ms of speech (the default)
_BUFFER_MS: Final = 2000

_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


class Espeak:
    """The process's eSpeak NG: 16-bit mono speech at :attr:`rate` Hz (22050 for its voices)."""

    def __init__(self) -> None:
        import espeakng_loader

        lib: Any = ctypes.CDLL(espeakng_loader.get_library_path())
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_CALLBACK]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
                                     ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        rate = lib.espeak_Initialize(_SYNCHRONOUS, _BUFFER_MS, espeakng_loader.get_data_path().encode(), 0)
        if rate <= 0:
            raise RuntimeError(f"eSpeak NG did not start (espeak_Initialize returned {rate})")
        self.rate: int = rate
        self._lib = lib
        self._lock = threading.Lock()
        self._chunks: list[bytes] = []
        # what the synthesizer is set to: (voice, rate, pitch, volume); setting the voice reads its files
        # (~0.1 ms, 10-18% of speaking a short command), so it is set only when it changes
        self._settings: tuple[str, int, int, int] | None = None

        def collect(wav: Any, count: int, _events: Any) -> int:
            if count > 0 and wav:
                self._chunks.append(ctypes.string_at(wav, count * 2))
            return 0  # go on

        self._callback = _CALLBACK(collect)  # kept: the library calls it for as long as the process lives
        lib.espeak_SetSynthCallback(self._callback)

    def _voice(self, voice: str) -> None:
        self._settings = None  # a voice resets rate, pitch and volume to its own
        if self._lib.espeak_SetVoiceByName(voice.encode("ascii", "replace")) != _EE_OK:
            raise UnknownVoice(f"eSpeak NG has no voice {voice!r} (try en-us, en, de, fr, es)")

    def _set(self, voice: str, rate: int, pitch: int, volume: int) -> None:
        settings = (voice, rate, pitch, volume)
        if settings == self._settings:
            return
        self._voice(voice)
        self._lib.espeak_SetParameter(_RATE, rate, 0)
        self._lib.espeak_SetParameter(_PITCH, pitch, 0)
        self._lib.espeak_SetParameter(_VOLUME, volume, 0)
        self._settings = settings

    def check_voice(self, voice: str) -> None:
        """:class:`UnknownVoice` (one line) if eSpeak NG has no voice ``voice``."""
        with self._lock:
            self._voice(voice)

    def synthesize(self, text: str, *, voice: str, rate: int, pitch: int, volume: int = 100) -> npt.NDArray[np.int16]:
        """``text`` spoken: 16-bit mono samples at :attr:`rate` Hz. :class:`UnknownVoice` for a voice eSpeak NG
        lacks."""
        import numpy as np

        return np.frombuffer(bytearray(self.synthesize_bytes(text, voice=voice, rate=rate, pitch=pitch,
                                                             volume=volume)), np.int16)

    def synthesize_bytes(self, text: str, *, voice: str, rate: int, pitch: int, volume: int = 100) -> bytes:
        """:meth:`synthesize`'s samples as bytes (native byte order)."""
        data = text.replace("\x00", " ").encode("utf-8", "replace") + b"\x00"
        with self._lock:
            self._set(voice, rate, pitch, volume)
            self._chunks = []
            result = self._lib.espeak_Synth(data, len(data), 0, 0, 0, _CHARS_UTF8, None, None)
            chunks, self._chunks = self._chunks, []
        if result != _EE_OK:
            raise RuntimeError(f"eSpeak NG could not speak the text (espeak_Synth returned {result})")
        return b"".join(chunks)
