"""The process that speaks for an agent's ``text_to_speech`` tasks (``python -m tasks.inference.espeak_process``),
spoken to by :class:`tasks.inference.espeak.EspeakProcess` over its stdin and stdout.

eSpeak NG runs in a process of its own, not in a thread of the agent: it hands every utterance
to a Python callback, so a thread speaking beside a busy event loop waited for the GIL several
times per utterance (a task sending audio frames spoke at half the library's rate); and a crash
of the C library (a malformed voice file, a text it mishandles) ends this process, not the agent.

Requests are JSON lines on stdin; each is answered in order, on stdout, by a JSON line:

* ``{"speak": [texts], "voice", "rate", "pitch", "volume"}`` -> ``{"sizes": [bytes, ...]}`` followed by
  that many bytes of 16-bit mono samples (native byte order) per text, one after the other;
* ``{"check": voice}`` -> ``{"ok": true}``;
* a failure answers ``{"error": text, "config": bool}`` (``config``: a voice eSpeak NG lacks).

When the library has started: ``{"ready": rate}`` (samples per second). The process ends when its
stdin closes. It imports nothing of edgetasks but :mod:`tasks.inference.espeak_library` (~15 MB).
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, BinaryIO

from tasks.inference.espeak_library import Espeak, UnknownVoice


def _say(out: BinaryIO, message: dict[str, Any], data: list[bytes] | None = None) -> None:
    out.write(json.dumps(message).encode("utf-8") + b"\n")
    for part in data or ():
        out.write(part)
    out.flush()


def _answer(engine: Espeak, request: Any) -> tuple[dict[str, Any], list[bytes] | None]:
    try:
        if not isinstance(request, dict):
            raise ValueError("a request is a JSON object")
        if "check" in request:
            engine.check_voice(str(request["check"]))
            return {"ok": True}, None
        texts = request["speak"]
        if not isinstance(texts, list) or not all(isinstance(text, str) for text in texts):
            raise ValueError("'speak' is a list of texts")
        spoken = [engine.synthesize_bytes(text, voice=str(request["voice"]), rate=int(request["rate"]),
                                          pitch=int(request["pitch"]), volume=int(request["volume"]))
                  for text in texts]
        return {"sizes": [len(part) for part in spoken]}, spoken
    except UnknownVoice as exc:
        return {"error": str(exc), "config": True}, None
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        return {"error": f"{type(exc).__name__}: {exc}", "config": False}, None


def main() -> None:
    # the replies go to stdout as it was; fd 1 then goes to stderr, so that what the library prints
    # cannot break the protocol
    out = os.fdopen(os.dup(1), "wb", buffering=1 << 20)
    os.dup2(2, 1)
    engine = Espeak()
    _say(out, {"ready": engine.rate})
    for line in sys.stdin.buffer:
        try:
            request = json.loads(line)
        except ValueError as exc:
            _say(out, {"error": f"not JSON: {exc}", "config": False})
            continue
        _say(out, *_answer(engine, request))


if __name__ == "__main__":
    main()
