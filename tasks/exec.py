"""Run a command per frame (``exec``): an argument list, never a shell, only where the agent allows it.

A spec comes from the broker, so a command in it is code that someone with write access to the
deployments topic makes the agent run: the type is off unless the agent was started with
``EDGE_ALLOW_EXEC=1`` (then :meth:`Exec.unavailable_reason` is None and the catalog offers it; off,
the agent lists it as unavailable with the reason and refuses its instances). The threat model is in
``docs/security.md``. What keeps one instance within bounds:

* the command is a list given to ``exec`` directly (no shell: a value with ``;`` or ``$(...)`` stays
  one argument); the frame's value is put in place of ``{value}`` in the arguments, or written to
  stdin;
* the child gets a small environment (``PATH``, ``LANG``, ``HOME`` and the config's ``env``), not the
  agent's (which may hold its broker password), and runs in the agent's files folder;
* each run has a timeout, after which its whole process group is killed (and so it is when the
  task stops); stdout and stderr are kept up to ``max_output`` bytes each, the rest read and dropped;
* at most ``max_in_flight`` commands run at once; more frames wait in the input's bounded queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from edge.errors import ConfigError, FrameError
from edge.frames import Frame
from tasks.base import ANY, BuiltinTask, agent_settings, is_pause

if TYPE_CHECKING:
    from edge.settings import Settings

__all__ = ["Exec"]

PLACEHOLDER = "{value}"
_ENV_KEPT = ("PATH", "LANG", "HOME", "TZ")
_OFF = "exec is off on this agent: start it with EDGE_ALLOW_EXEC=1 to let specs run commands (docs/security.md)"


def _as_text(value: Any) -> str:
    """The frame's value as an argument: text as it is, numbers and booleans as JSON, maps and lists as JSON."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return json.dumps(value, allow_nan=False, ensure_ascii=False)


def _as_stdin(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    return _as_text(value).encode("utf-8")


class Exec(BuiltinTask):
    """Run a command for each frame and send its exit code and output; only on agents with `EDGE_ALLOW_EXEC=1`.

    `command` is the program and its arguments, as a list (no shell: pipes, `;` and `$VAR` mean
    nothing). `{value}` in an argument is replaced by the frame's value (text as it is, anything
    else as JSON); with `stdin` the value is written to the command's standard input instead
    (bytes as they are). The command runs in the agent's files folder with a small environment
    (`PATH`, `LANG`, `HOME`, `TZ` and `env`). `out` carries `{"exit_code", "stdout", "stderr",
    "timed_out", "truncated"}`; after `timeout_s` the command's process group is killed (`exit_code` is
    then the signal, negative). A command that cannot start (not found, an argument with NUL) is an
    error on `in`, with the reason on `error`. At most `max_in_flight` run at once; with more than
    one, results may come out of order.
    """

    category = "integration"

    class Config(BaseModel):
        model_config = ConfigDict(extra="forbid")

        command: list[str] = Field(default_factory=lambda: ["echo", PLACEHOLDER], min_length=1, max_length=256,
                                   description="the program and its arguments; {value} is replaced by the frame's "
                                               "value")
        stdin: bool = Field(default=False, description="write the frame's value to the command's standard input")
        env: dict[str, str] = Field(default_factory=dict, description="more environment variables for the command "
                                    "(values may be secret references)")
        timeout_s: float = Field(default=10.0, gt=0, le=86_400, description="kill the command after this long")
        max_output: int = Field(default=65_536, ge=0, le=16 * 1024 * 1024,
                                description="bytes of stdout and of stderr kept; the rest is dropped")
        output: Literal["text", "bytes"] = Field(default="text", description="stdout and stderr as UTF-8 text "
                                                 "(bad bytes replaced) or as bytes")
        max_in_flight: int = Field(default=1, ge=1, le=64, description="commands running at once")

        @field_validator("command")
        @classmethod
        def _program(cls, value: list[str]) -> list[str]:
            if not value[0].strip():
                raise ValueError("the program (the first item) is empty")
            if any("\0" in arg for arg in value):
                raise ValueError("an argument cannot contain NUL")
            return value

    inputs = {"in": ANY("runs the command")}
    outputs = {"out": ANY("exit code and output"), "error": ANY("why a command could not start")}

    @classmethod
    def unavailable_reason(cls, settings: Settings | None = None) -> str | None:
        settings = agent_settings(settings)
        return None if settings is not None and settings.allow_exec else _OFF

    async def run(self) -> None:
        reason = self.unavailable_reason()
        if reason is not None:
            raise ConfigError(reason, field="EDGE_ALLOW_EXEC")
        config: Exec.Config = self.config
        slots = asyncio.Semaphore(config.max_in_flight)
        async with asyncio.TaskGroup() as group:
            async for frame in self.receive("in"):
                if is_pause(frame):
                    continue
                await slots.acquire()
                group.create_task(self._one(frame, slots))

    async def _one(self, frame: Frame, slots: asyncio.Semaphore) -> None:
        try:
            await self._run_command(frame)
        finally:
            slots.release()

    def _environment(self) -> dict[str, str]:
        env = {k: os.environ[k] for k in _ENV_KEPT if k in os.environ}
        env.setdefault("PATH", os.defpath)
        return {**env, **self.config.env}

    async def _run_command(self, frame: Frame) -> None:
        config: Exec.Config = self.config
        try:
            if config.stdin:
                args, data = list(config.command), _as_stdin(frame.value)
            else:
                text = _as_text(frame.value)
                args, data = [a.replace(PLACEHOLDER, text) for a in config.command], None
        except (ValueError, TypeError) as exc:  # NaN, a bignum beyond text, bytes or an array as an argument
            self.reject("in", f"the value cannot be a command's input: {str(exc)[:100]}")
            return
        folder = self.context.files_dir if self.context is not None else None
        cwd = folder if folder is not None and folder.is_dir() else None
        try:
            proc = await asyncio.create_subprocess_exec(
                *args, stdin=asyncio.subprocess.PIPE if data is not None else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=cwd, env=self._environment(),
                start_new_session=True)
        except (OSError, ValueError) as exc:  # not found, not executable, arguments too long, NUL in one
            why = f"cannot run {config.command[0]!r}: {getattr(exc, 'strerror', None) or exc}"
            self.reject("in", why)
            await self.send("error", {"error": why})
            return
        timed_out = False
        try:
            async with asyncio.timeout(config.timeout_s):
                (out, cut_out), (err, cut_err), _ = await asyncio.gather(
                    _capture(proc.stdout, config.max_output), _capture(proc.stderr, config.max_output),
                    _feed(proc.stdin, data))
                code = await proc.wait()
        except TimeoutError:
            timed_out = True
            _kill(proc)
            code = await proc.wait()
            out, cut_out, err, cut_err = b"", False, b"", False
        except BaseException:  # stopped (cancelled): the command goes with the task
            _kill(proc)
            with contextlib.suppress(ProcessLookupError):
                await asyncio.shield(proc.wait())
            raise
        def decode(data: bytes) -> str | bytes:
            return data if config.output == "bytes" else data.decode("utf-8", "replace")

        result = {"exit_code": code, "stdout": decode(out), "stderr": decode(err), "timed_out": timed_out,
                  "truncated": cut_out or cut_err}
        try:
            await self.send("out", result, ts=frame.ts)
        except FrameError as exc:  # more output than a frame may carry (max_output beyond EDGE_MAX_PAYLOAD)
            self.reject("in", str(exc)[:200])


def _kill(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


async def _capture(stream: asyncio.StreamReader | None, limit: int) -> tuple[bytes, bool]:
    """Up to ``limit`` bytes of ``stream`` and whether there were more (read to the end, the rest dropped)."""
    if stream is None:
        return b"", False
    kept = bytearray()
    cut = False
    while chunk := await stream.read(65_536):
        room = limit - len(kept)
        if len(chunk) > room:
            cut = True
        kept += chunk[:max(room, 0)]
    return bytes(kept), cut


async def _feed(stdin: asyncio.StreamWriter | None, data: bytes | None) -> None:
    if stdin is None or data is None:
        return
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # a command that does not read all of it
        stdin.write(data)
        await stdin.drain()
    stdin.close()
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        await stdin.wait_closed()
