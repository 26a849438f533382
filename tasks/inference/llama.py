"""llama.cpp through ``llama-cpp-python``: GGUF models loaded once per agent and shared, generation
streamed piece by piece.

:data:`MODELS` holds the loaded models by (file, context length, threads): instances that name the
same file share one :class:`Model` and take turns generating under its lock (llama.cpp's context is
not thread-safe); llama-cpp-python keeps the prompt's evaluated prefix, so a turn that follows its
own conversation is fast. The most recently unused model is kept loaded for a redeploy; older
unused ones are freed. Everything here blocks: callers run it in a worker thread.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from edge.errors import ConfigError
from tasks.inference.models import installed

if not installed("llama_cpp"):
    raise ModuleNotFoundError("No module named 'llama_cpp': llm_chat needs llama.cpp: pip install 'edgetasks[llm]' "
                              "(or: pip install llama-cpp-python; it builds from source, ~17 min on 2 cores)",
                              name="llama_cpp")

__all__ = ["MODELS", "Model", "Models", "Piece", "load"]

log = logging.getLogger("tasks.inference")
#: the magic of a GGUF file: anything else is refused before llama.cpp reads it
GGUF_MAGIC: Final = b"GGUF"

Key = tuple[str, int, int]


#: loads the model and makes one token, in a process of its own: llama.cpp ends the process (GGML_ASSERT, abort)
#: on some malformed files instead of reporting an error, and that process must not be the agent
_PROBE: Final = """
import sys, llama_cpp
model = llama_cpp.Llama(model_path=sys.argv[1], n_ctx=int(sys.argv[2]), n_batch=64, verbose=True)
model.create_completion("a", max_tokens=1)
"""
PROBE_TIMEOUT: Final = 600.0
#: (path, size, mtime) of the files probed: None if it loaded, else why not (a restarted task is not probed again)
_probed: dict[tuple[str, int, int], str | None] = {}
_probe_lock = threading.Lock()


def probe(path: Path) -> None:
    """Load ``path`` in a process of its own (once per file and modification); ConfigError (one line) with
    llama.cpp's reason if that process fails."""
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    with _probe_lock:
        if key not in _probed:
            _probed[key] = _probe(path)
        reason = _probed[key]
    if reason is not None:
        raise ConfigError(reason, field="model")


def _probe(path: Path) -> str | None:
    try:
        done = subprocess.run([sys.executable, "-c", _PROBE, str(path), "64"], capture_output=True, text=True,
                              errors="replace", timeout=PROBE_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        return f"llama.cpp did not load {path.name!r} within {PROBE_TIMEOUT:.0f} s"
    if done.returncode == 0:
        return None
    return f"llama.cpp could not load {path.name!r} (a damaged or unsupported GGUF file?): " \
           f"{_reason(done.stderr, done.returncode)}"


def _reason(stderr: str, returncode: int) -> str:
    """The line of llama.cpp's output that says what went wrong, short."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for marker in ("GGML_ASSERT", "ValueError", "error", "failed"):
        found = [line for line in lines if marker in line]
        if found:
            return found[0 if marker == "GGML_ASSERT" else -1][-300:]
    if returncode < 0:
        return f"its loading process was killed by signal {-returncode}"
    return f"its loading process ended with status {returncode}"


def load(path: Path, *, context_length: int, threads: int) -> Any:
    """A ``llama_cpp.Llama`` of the GGUF file at ``path``; ConfigError (one line) if there is none or it does
    not load (tried in a process of its own first: :func:`probe`)."""
    try:
        with path.open("rb") as file:
            magic = file.read(4)
    except FileNotFoundError:
        raise ConfigError(f"no model file {path.name!r} in the agent's files folder ({path})", field="model") from None
    except OSError as exc:
        raise ConfigError(f"the model file {path} cannot be read: {exc.strerror or exc}", field="model") from None
    if magic != GGUF_MAGIC:
        raise ConfigError(f"{path.name!r} is not a GGUF model file (it does not start with 'GGUF')", field="model")
    probe(path)
    import llama_cpp  # here: imported when a task first needs it

    try:
        return llama_cpp.Llama(model_path=str(path), n_ctx=context_length, n_threads=threads or None,
                               n_batch=min(512, context_length), verbose=False)
    except (ValueError, RuntimeError, OSError) as exc:
        raise ConfigError(f"llama.cpp could not load {path.name!r} (a damaged or unsupported GGUF file?): "
                          f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}", field="model") from None


@dataclass(eq=False)
class Model:
    """One loaded model and the lock its users take turns under."""

    key: Key
    llama: Any
    lock: threading.Lock = field(default_factory=threading.Lock)
    users: int = 0

    @property
    def context_length(self) -> int:
        return int(self.llama.n_ctx())

    def count(self, text: str) -> int:
        """Tokens of ``text`` in this model's vocabulary."""
        return len(self.llama.tokenize(text.encode("utf-8", "replace"), add_bos=False, special=False))


@dataclass(frozen=True, slots=True)
class Piece:
    """A piece of an answer as it comes, or (``finish`` set) the end of it."""

    text: str
    finish: str | None = None


class Models:
    """The loaded models, shared by the instances that name the same file with the same settings."""

    def __init__(self, *, keep_idle: int = 1, loader: Callable[..., Any] = load) -> None:
        self._models: dict[Key, Model] = {}
        self._idle: list[Key] = []  # unused, oldest first
        self._keep_idle = keep_idle
        self._loader = loader
        self._lock = threading.Lock()
        self.loads = 0

    def take(self, path: Path, *, context_length: int, threads: int) -> Model:
        """The model of ``path``, loaded now if no instance holds it (blocks; one load at a time)."""
        key = (str(path), context_length, threads)
        with self._lock:
            model = self._models.get(key)
            if model is None:
                model = Model(key, self._loader(path, context_length=context_length, threads=threads))
                self._models[key] = model
                self.loads += 1
                log.info("llm_chat: loaded %s (context %d tokens)", path, context_length)
            model.users += 1
            if key in self._idle:
                self._idle.remove(key)
            return model

    def give_back(self, model: Model) -> None:
        """An instance stopped using ``model``; the oldest unused models beyond ``keep_idle`` are freed."""
        freed: list[Model] = []
        with self._lock:
            model.users -= 1
            if model.users == 0:
                self._idle.append(model.key)
                while len(self._idle) > self._keep_idle:
                    freed.append(self._models.pop(self._idle.pop(0)))
        for old in freed:
            with old.lock:
                close = getattr(old.llama, "close", None)
                if close is not None:
                    close()

    @property
    def loaded(self) -> int:
        return len(self._models)


#: the agent's loaded models
MODELS: Final = Models()


class _Guard:
    """A logits processor that makes the model end its answer (its end-of-generation token, forced) when
    ``stop`` is set or ``max_tokens`` were made: llama-cpp-python goes past ``max_tokens`` while the text
    ends in an incomplete UTF-8 sequence, up to overflowing the context (``llama_decode returned 1``)."""

    def __init__(self, *, eos: int, max_tokens: int, stop: threading.Event) -> None:
        self.eos = eos
        self.max_tokens = max_tokens
        self.stop = stop
        self.start: int | None = None  # tokens in the context when the answer began
        self.forced: str | None = None

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        if self.start is None:
            self.start = len(input_ids)
        if self.stop.is_set():
            self.forced = "cancelled"
        elif len(input_ids) - self.start >= self.max_tokens:
            self.forced = "length"
        if self.forced is not None:
            scores[:] = -float("inf")
            scores[self.eos] = 0.0
        return scores


def generate(model: Model, messages: list[dict[str, str]], *, max_tokens: int, temperature: float, top_p: float,
             seed: int | None, stop: threading.Event) -> Iterator[Piece]:
    """The answer to ``messages``, piece by piece, then a Piece with ``finish`` ("stop", "length", or
    "cancelled" when ``stop`` was set). Holds the model's lock throughout; ValueError if the prompt does
    not fit the context."""
    import llama_cpp

    guard = _Guard(eos=int(model.llama.token_eos()), max_tokens=max_tokens, stop=stop)
    while not model.lock.acquire(timeout=0.05):  # another instance is answering: wait, unless this one stops
        if stop.is_set():
            yield Piece("", "cancelled")
            return
    try:
        chunks = model.llama.create_chat_completion(messages=messages, max_tokens=max_tokens,
                                                    temperature=temperature, top_p=top_p, seed=seed, stream=True,
                                                    logits_processor=llama_cpp.LogitsProcessorList([guard]))
        finish: str | None = None
        try:
            for chunk in chunks:
                if stop.is_set():
                    finish = "cancelled"
                    break
                choice = chunk["choices"][0]
                text = choice.get("delta", {}).get("content")
                if text:
                    yield Piece(text)
                finish = choice.get("finish_reason") or finish
        finally:
            chunks.close()
    finally:
        model.lock.release()
    yield Piece("", guard.forced or finish or "stop")
