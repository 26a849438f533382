"""``llm_chat``: a chat with a local language model (llama.cpp, a GGUF file of the user's), the
``llm_chat`` entry point (the ``llm`` extra).

Each text frame on ``in`` is a user's message. The answer goes out piece by piece on ``tokens`` as
the model makes it, then whole on ``answer`` (one frame per answer, with why it ended). The
conversation is kept: earlier messages and answers go with each new message, the oldest turns
dropped when they would not leave room for ``max_length`` tokens in the model's context. The model loads
once per agent and file (:mod:`tasks.inference.llama`), in the task's worker thread, and generation
runs there too; removing the task stops a generation at its next token.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import Any

from pydantic import Field, field_validator

from edge._groups import one_failure
from edge.errors import ConfigError
from edge.files import check_file_path, current_files_folder
from edge.frames import Frame
from edge.task import Port, Task
from tasks.inference import llama  # first of ours: without llama-cpp-python, its error is the reason
from tasks.inference.llama import MODELS, Model, Piece
from tasks.media.mediatask import MediaConfig, MediaTask, Worker

__all__ = ["TYPES", "History", "LlmChat", "PromptTooLong"]

#: what one message adds to the prompt besides its text (the chat template's markers): an estimate; a prompt
#: the model finds too long all the same loses one more turn and is tried again
MESSAGE_OVERHEAD = 8


class PromptTooLong(ValueError):
    """The system prompt and the message alone leave no room for the answer."""


class History:
    """The conversation so far: (message, answer) turns, the oldest dropped to fit a token budget."""

    def __init__(self, system: str) -> None:
        self.system = system
        self.turns: list[tuple[str, str]] = []
        self.dropped = 0  # turns dropped so far

    def messages(self, prompt: str) -> list[dict[str, str]]:
        head = [{"role": "system", "content": self.system}] if self.system else []
        turns = [{"role": role, "content": text} for turn in self.turns
                 for role, text in zip(("user", "assistant"), turn, strict=True)]
        return [*head, *turns, {"role": "user", "content": prompt}]

    def fit(self, prompt: str, count: Callable[[str], int], budget: int) -> None:
        """Drop the oldest turns until the messages with ``prompt`` take at most ``budget`` tokens;
        PromptTooLong if the system prompt and ``prompt`` alone take more."""
        def cost(text: str) -> int:
            return count(text) + MESSAGE_OVERHEAD

        fixed = cost(prompt) + (cost(self.system) if self.system else 0)
        if fixed > budget:
            raise PromptTooLong(f"a message of ~{fixed} tokens leaves no room for an answer in {budget} tokens "
                                "(context_length - max_length)")
        costs = [cost(user) + cost(answer) for user, answer in self.turns]
        total = fixed + sum(costs)
        while self.turns and total > budget:
            total -= costs.pop(0)
            self.drop_oldest()

    def drop_oldest(self) -> None:
        self.turns.pop(0)
        self.dropped += 1

    def add(self, prompt: str, answer: str) -> None:
        self.turns.append((prompt, answer))


class LlmChatConfig(MediaConfig):
    queue: int = Field(default=16, ge=1, le=1000, description="messages waiting for an answer (the oldest goes)")
    model: str = Field(min_length=1, max_length=1000, description="the GGUF model file, relative to the agent's "
                       "files folder (EDGE_FILES_DIR), e.g. models/qwen2.5-0.5b-instruct-q4_k_m.gguf")
    system_prompt: str = Field(default="", max_length=20_000, description="what the model is told before the chat")
    context_length: int = Field(default=2048, ge=64, le=131_072, description="tokens the model sees at once: "
                                "the conversation is cut to fit (more: more memory)")
    max_length: int = Field(default=256, ge=1, le=16_384, description="the longest answer, in tokens")
    temperature: float = Field(default=0.7, ge=0, le=2, description="0: always the likeliest token")
    top_p: float = Field(default=0.95, gt=0, le=1, description="sample only from the likeliest tokens that "
                         "make up this share of the probability")
    seed: int | None = Field(default=None, ge=0, le=2**31 - 1, description="the same seed and conversation give "
                             "the same answers (unset: random)")
    threads: int = Field(default=0, ge=0, le=256, description="CPU threads for the model (0: llama.cpp's default)")
    keep_history: bool = Field(default=True, description="send the earlier turns with each message")
    max_chars: int = Field(default=8000, ge=1, le=200_000, description="longer messages are refused (counted as "
                           "errors on 'in')")

    @field_validator("model")
    @classmethod
    def _inside_files(cls, value: str) -> str:
        check_file_path(value)
        folder = current_files_folder()  # on the agent (not in the controller's check): the file must be there
        if folder is not None and not (folder / value).is_file():
            raise ValueError(f"no model file {value!r} in the agent's files folder")
        return value


class LlmChat(MediaTask):
    """Chat with a local language model (llama.cpp, a GGUF file in the agent's files folder).

    Each text on ``in`` is a message; the answer streams out on ``tokens`` as it is made, then comes
    whole on ``answer``. The conversation is kept within ``context_length`` (oldest turns dropped).
    Instances naming the same file share the loaded model.
    """

    Config = LlmChatConfig
    category = "inference"
    inputs = {"in": Port(content="text", label="a message")}
    outputs = {"tokens": Port(content="text", label="the answer, piece by piece"),
               "answer": Port(content="text", label="the whole answer")}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.model: Model | None = None
        self.history = History(self.config.system_prompt)
        self.answers = 0
        self._stop = threading.Event()

    def _take_model(self) -> None:
        c = self.config
        self.model = MODELS.take(self.file_path(c.model), context_length=c.context_length, threads=c.threads)
        if c.max_length >= self.model.context_length:
            raise ConfigError(f"max_length ({c.max_length}) leaves no room for a message in the context "
                              f"({self.model.context_length} tokens)", field="max_length")

    def release(self) -> None:
        if self.model is not None:
            MODELS.give_back(self.model)
            self.model = None

    def text_of(self, frame: Frame) -> str | None:
        """The message, or None (counted as an error on ``in`` unless it is a pause or blank)."""
        value = frame.value
        if frame.paused:
            return None
        if not isinstance(value, str):
            self.count_error(self.in_metrics["in"], "in:type", "llm_chat answers text, got %s", type(value).__name__)
            return None
        if len(value) > self.config.max_chars:
            self.count_error(self.in_metrics["in"], "in:long", "a message of %d characters is over max_chars (%d)",
                             len(value), self.config.max_chars)
            return None
        return value if value.strip() else None

    def answer(self, prompt: str, put: Callable[[Piece], None]) -> str:
        """Generate the answer to ``prompt`` (in the worker thread), each piece handed to ``put``; the answer."""
        assert self.model is not None
        c = self.config
        if not c.keep_history:
            self.history.turns.clear()
        if not self.model.take_turn(self._stop):  # another instance's answer came first, and this one stopped
            return ""
        try:
            return self._answer_in_turn(prompt, put)
        finally:
            self.model.lock.release()

    def _answer_in_turn(self, prompt: str, put: Callable[[Piece], None]) -> str:
        assert self.model is not None
        c = self.config
        self.history.fit(prompt, self.model.count, self.model.context_length - c.max_length)
        while True:
            parts: list[str] = []
            try:
                for piece in llama.generate(self.model, self.history.messages(prompt), max_tokens=c.max_length,
                                            temperature=c.temperature, top_p=c.top_p, seed=c.seed, stop=self._stop):
                    parts.append(piece.text)
                    put(piece)
            except ValueError as exc:  # the template made the prompt longer than estimated: one turn less
                if parts or "context" not in str(exc):
                    raise
                if not self.history.turns:
                    raise PromptTooLong(f"the message does not fit the context: {exc}") from None
                self.history.drop_oldest()
                continue
            text = "".join(parts)
            self.history.add(prompt, text)
            return text

    async def run(self) -> None:
        """As every media task's, but the worker thread is left to finish in a thread of its own: a prompt being
        read (llama.cpp cannot be interrupted there) must not hold up the agent's event loop."""
        self.worker = Worker(self.instance_id)
        worker = self.worker
        try:
            with one_failure():
                if self.context is not None:
                    await self.open_inputs()
                await self.serve()
        finally:
            self._stop.set()
            await asyncio.shield(asyncio.to_thread(worker.close, self.release))

    async def serve(self) -> None:
        try:
            await self.work(self._take_model)
            while True:
                _, item = await self.lanes.get_any()
                assert isinstance(item, Frame)
                prompt = self.text_of(item)
                if prompt is not None:
                    await self._answer(prompt)
        finally:
            self._stop.set()  # the generation in flight stops at its next token

    async def _answer(self, prompt: str) -> None:
        loop = asyncio.get_running_loop()
        pieces: asyncio.Queue[Piece] = asyncio.Queue()  # bounded by max_length: one piece per token at most

        def put(piece: Piece) -> None:
            with contextlib.suppress(RuntimeError):  # the loop closed: nobody is listening any more
                loop.call_soon_threadsafe(pieces.put_nowait, piece)

        self.answers += 1
        number, dropped = self.answers, self.history.dropped
        job = asyncio.ensure_future(self.work(self.answer, prompt, put))
        getter: asyncio.Future[Piece] | None = None
        sent, finish = 0, "stop"
        try:
            while True:
                getter = asyncio.ensure_future(pieces.get())
                done, _ = await asyncio.wait({getter, job}, return_when=asyncio.FIRST_COMPLETED)
                if getter not in done:  # the job ended: what it put before is still to be read, or it failed
                    getter.cancel()
                    if pieces.empty():
                        break
                    continue
                piece = getter.result()
                if piece.finish is not None:
                    finish = piece.finish
                    break
                await self.send("tokens", piece.text, extra={"answer": number, "index": sent})
                sent += 1
            try:
                text = await job
            except PromptTooLong as exc:
                self.count_error(self.in_metrics["in"], "in:long", "%s", exc)
                return
            await self.send("answer", text, extra={"answer": number, "finish": finish, "pieces": sent,
                                                   "turns": len(self.history.turns) - 1,
                                                   "dropped": self.history.dropped - dropped})
        finally:
            if getter is not None and not getter.done():
                getter.cancel()
            if not job.done():
                job.add_done_callback(_retrieve)


def _retrieve(job: asyncio.Future[Any]) -> None:
    """Take the outcome of a job nobody waits for any more (its task stopped), so asyncio logs nothing."""
    if not job.cancelled():
        job.exception()


#: the ``llm_chat`` entry point's types
TYPES: list[type[Task]] = [LlmChat]
