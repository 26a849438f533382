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


def load(path: Path, *, context_length: int, threads: int) -> Any:
    """A ``llama_cpp.Llama`` of the GGUF file at ``path``; ConfigError (one line) if there is none or it does
    not load."""
    try:
        with path.open("rb") as file:
            magic = file.read(4)
    except FileNotFoundError:
        raise ConfigError(f"no model file {path.name!r} in the agent's files folder ({path})", field="model") from None
    except OSError as exc:
        raise ConfigError(f"the model file {path} cannot be read: {exc.strerror or exc}", field="model") from None
    if magic != GGUF_MAGIC:
        raise ConfigError(f"{path.name!r} is not a GGUF model file (it does not start with 'GGUF')", field="model")
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


def generate(model: Model, messages: list[dict[str, str]], *, max_tokens: int, temperature: float, top_p: float,
             seed: int | None, stop: threading.Event) -> Iterator[Piece]:
    """The answer to ``messages``, piece by piece, then a Piece with ``finish`` ("stop", "length", or
    "cancelled" when ``stop`` was set). Holds the model's lock throughout; ValueError if the prompt does
    not fit the context."""
    with model.lock:
        chunks = model.llama.create_chat_completion(messages=messages, max_tokens=max_tokens,
                                                    temperature=temperature, top_p=top_p, seed=seed, stream=True)
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
    yield Piece("", finish or "stop")
