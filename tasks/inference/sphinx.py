"""pocketsphinx 5.x with its bundled en-us model (acoustic model, dictionary, language model).

Loading a decoder reads the acoustic model and dictionary (~0.1 s, ~27 MB of RSS), and the general
language model too where it is used (~0.25 s, ~90 MB in all): :func:`decoders` gives the pool of
either kind, lent to one ``speech_recognition`` instance at a time (a decoder holds one
utterance's state) and taken back when it stops. Each instance puts its own search into the
decoder it gets, under one name (``SEARCH``; a search of the same name is replaced): a JSGF
grammar or keyphrases; or it uses the language model's search (``_default``).
"""

from __future__ import annotations

import tempfile
from functools import partial
from pathlib import Path
from typing import Any, Final

from edge.errors import ConfigError
from tasks.inference.models import Pool, installed

if not installed("pocketsphinx"):
    raise ModuleNotFoundError("No module named 'pocketsphinx': speech_recognition needs pocketsphinx: "
                              "pip install 'edgetasks[speech]' (or: pip install pocketsphinx)", name="pocketsphinx")

__all__ = ["LANGUAGE_MODEL", "POOLS", "RATE", "SEARCH", "decoders", "new_stream", "set_search", "unknown_words"]

#: the bundled model's sample rate: audio in is converted to 16-bit mono at this rate
RATE: Final = 16000
SEARCH: Final = "edgetasks"
LANGUAGE_MODEL: Final = "_default"


def _decoder(*, language_model: bool) -> Any:
    import pocketsphinx  # here, not at the top: imported when a task first needs it

    return pocketsphinx.Decoder(loglevel="FATAL") if language_model else pocketsphinx.Decoder(loglevel="FATAL",
                                                                                                lm=None)


def new_stream(decoder: Any) -> None:
    """Forget the audio of the decoder's previous user: its feature extraction made afresh (~0.1 ms).

    pocketsphinx adapts its cepstral mean to the audio it hears, utterance after utterance, which
    suits one stream; kept from another stream (another microphone, another instance) it makes the
    same audio heard differently depending on what the decoder heard before. (``set_cmn`` alone is
    not enough: the running sums behind the mean stay.)"""
    decoder.reinit_feat()


#: decoders of the bundled en-us model, shared by the agent's instances (one each at a time): with the
#: general language model (mode language_model) and without it (grammar, keywords: a third of the memory).
#: One idle decoder of each kind is kept for the next instance (a redeploy); more are freed. A decoder
#: given back starts a new stream (:func:`new_stream`).
POOLS: Final = {
    True: Pool("pocketsphinx en-us with its language model", partial(_decoder, language_model=True),
               reset=new_stream, keep=1),
    False: Pool("pocketsphinx en-us", partial(_decoder, language_model=False), reset=new_stream, keep=1),
}


def decoders(mode: str) -> Pool[Any]:
    """The pool of decoders a recognizer in ``mode`` takes from."""
    return POOLS[mode == "language_model"]


def unknown_words(decoder: Any, phrases: list[str]) -> list[str]:
    """The words of ``phrases`` the decoder's dictionary lacks."""
    return sorted({word for phrase in phrases for word in phrase.split() if decoder.lookup_word(word) is None})


def set_search(decoder: Any, *, mode: str, grammar: str, keywords: list[str], threshold: float) -> None:
    """Make ``mode`` the decoder's active search (ConfigError, one line, for a grammar or keyphrase it cannot take)."""
    if mode == "language_model":
        decoder.activate_search(LANGUAGE_MODEL)
        return
    if mode == "grammar":
        try:
            decoder.add_jsgf_string(SEARCH, grammar)
        except (ValueError, RuntimeError) as exc:
            raise ConfigError("the grammar does not parse as JSGF, or uses a word the en-us dictionary lacks "
                              f"({exc})", field="grammar") from None
    else:
        missing = unknown_words(decoder, keywords)
        if missing:
            raise ConfigError(f"the en-us dictionary lacks {', '.join(missing[:10])}", field="keywords")
        with tempfile.TemporaryDirectory(prefix="edgetasks-kws-") as folder:
            path = Path(folder) / "keyphrases.txt"
            path.write_text("".join(f"{phrase} /{threshold:g}/\n" for phrase in keywords), encoding="utf-8")
            try:
                decoder.add_kws(SEARCH, str(path))
            except (ValueError, RuntimeError) as exc:
                raise ConfigError(f"pocketsphinx refused the keyphrases ({exc})", field="keywords") from None
    decoder.activate_search(SEARCH)
