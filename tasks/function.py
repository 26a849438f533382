"""The ``python`` task: a function written in the config, run by the agent in a child process.

Node-RED's most used node is ``function``; this is ours, in Python. The config holds code that
defines ``process(value, port, state, config)``; the agent calls it for each frame, in a worker
process of its own (:mod:`tasks._pyworker`) with a memory ceiling, a CPU limit and a wall-clock
timeout per call. Agents run it only where ``EDGE_ALLOW_CODE`` is set: elsewhere the type is in
the catalog as unavailable, with the reason. The threat model is in ``docs/security.md``.
"""

from __future__ import annotations

import ast
import asyncio
import collections
import contextlib
import logging
import os
import signal
import struct
import sys
import time
from collections.abc import Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Annotated, Any, Final

from pydantic import BaseModel, ConfigDict, Field, field_validator

from edge.errors import FrameError, TaskError
from edge.frames import Frame, decode_value, encode_value
from edge.ports import PortRule
from edge.topics import is_valid_id
from tasks.base import ANY, BuiltinTask, agent_settings, is_pause

if TYPE_CHECKING:
    from edge.settings import Settings

__all__ = ["DEFAULT_CODE", "PythonFunction"]

log = logging.getLogger("tasks.python")

MAX_CODE: Final = 64 * 1024
MAX_PORTS: Final = 16
#: the wall-clock time beyond ``timeout`` a call gets before its worker is killed (the CPU limit,
#: equal to ``timeout``, normally ends a busy call first, with a clearer message)
GRACE: Final = 1.0
#: how long the worker may take to start and run the code's top level
START_TIMEOUT: Final = 20.0
#: lines printed by the code that are logged per :data:`PRINT_WINDOW` seconds; more are counted
PRINT_LINES: Final = 100
PRINT_WINDOW: Final = 10.0
MAX_LINE: Final = 1000
_HEADER: Final = struct.Struct(">I")
_ARGUMENTS: Final = ("value", "port", "state", "config")

DEFAULT_CODE: Final = '''def process(value, port, state, config):
    """Called for each frame: return the value to send (None sends nothing)."""
    return value
'''


def _check_code(code: str) -> str:
    """The code parses and defines ``process`` at its top level; ValueError naming the line otherwise."""
    try:
        tree = ast.parse(code, filename="<python task>")
    except SyntaxError as exc:
        raise ValueError(f"line {exc.lineno}: {exc.msg}") from None
    except (RecursionError, MemoryError, ValueError) as exc:  # absurd nesting, NUL bytes
        raise ValueError(f"the code cannot be parsed: {type(exc).__name__}: {exc}"[:300]) from None
    defined = [n for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.name == "process"]
    if not defined:
        raise ValueError("the code must define a function process(value, port, state, config) at its top level")
    if isinstance(defined[-1], ast.AsyncFunctionDef):
        raise ValueError(f"line {defined[-1].lineno}: process must be a plain function, not async")
    args = defined[-1].args
    if args.vararg is None and len(args.posonlyargs) + len(args.args) > len(_ARGUMENTS):
        raise ValueError(f"line {defined[-1].lineno}: process takes at most {len(_ARGUMENTS)} arguments "
                         f"({', '.join(_ARGUMENTS)})")
    return code


def _check_ports(names: list[str]) -> list[str]:
    bad = [n for n in names if not is_valid_id(n)]
    if bad:
        raise ValueError(f"{bad[0]!r} is not a port name ([A-Za-z0-9_-], 1 to 64 characters)")
    if len(set(names)) != len(names):
        raise ValueError("port names must differ")
    return names


PortNames = Annotated[list[Annotated[str, Field(max_length=64)]], Field(max_length=MAX_PORTS)]


class PythonFunction(BuiltinTask):
    """Run Python on each frame: the config's code defines `process(value, port, state, config)`.

    `process` is called once per frame, one frame at a time, with the frame's value, the input
    port's name, a `state` dict that lives as long as the task (across calls, not across restarts)
    and the config's `params`; it may take fewer arguments (`def process(value):`). What it returns
    is sent with the frame's timestamp: with one output, the value itself (None sends nothing);
    with several, a map from output names to values (outputs not named send nothing). `print`
    goes to the agent's log. An exception in `process` is that frame's input error (counted, the
    line and message logged); the task goes on. Pause frames pass to every output.

    The code runs in a worker process of its own, never in the agent: each call may use `timeout`
    seconds of CPU and of wall-clock time (plus a second of grace), and the worker
    `memory_mb` beyond its own; a call over a limit, or a worker that dies, fails the task
    (restarted with backoff, its `state` lost), never the agent. Agents run it only where
    `EDGE_ALLOW_CODE` is set (docs/security.md).
    """

    type_name = "python"
    label = "Python function"
    category = "logic"

    class Config(BaseModel):
        model_config = ConfigDict(extra="forbid")

        code: str = Field(default=DEFAULT_CODE, max_length=MAX_CODE,
                          description="Python that defines process(value, port, state, config)",
                          json_schema_extra={"format": "python"})
        inputs: PortNames = Field(default_factory=lambda: ["in"], description="the input ports' names")
        outputs: PortNames = Field(default_factory=lambda: ["out"], description="the output ports' names")
        params: dict[str, Any] = Field(default_factory=dict, description="passed to process() as config")
        timeout: float = Field(default=1.0, gt=0, le=60, allow_inf_nan=False,
                               description="seconds of CPU and of wall-clock time one call may take")
        memory_mb: int = Field(default=256, ge=16, le=16384,
                               description="memory (MiB) the code may allocate beyond its worker's own")

        _code = field_validator("code")(_check_code)
        _ports = field_validator("inputs", "outputs")(_check_ports)

    inputs = {"in": ANY("in")}
    outputs = {"out": ANY("out")}
    ports_from = (PortRule(side="inputs", field="inputs", kind="names", metadata={"any": True}),
                  PortRule(side="outputs", field="outputs", kind="names", metadata={"any": True}))

    @classmethod
    def unavailable_reason(cls, settings: Settings | None = None) -> str | None:
        settings = agent_settings(settings)
        if settings is not None and settings.allow_code:
            return None
        return "it runs code sent in deployment specs, which this agent does not allow: set EDGE_ALLOW_CODE=true"

    async def run(self) -> None:
        config: PythonFunction.Config = self.config
        max_result = self.context.max_payload if self.context is not None else 16 * 1024 * 1024
        outputs = list(self.outputs)
        async with Worker(config, max_result=max_result, name=self.instance_id) as worker:
            await self.open_inputs()
            async for port, frame in self.receive_any():
                if is_pause(frame):
                    for out in outputs:
                        await self.send(out, None, ts=frame.ts, paused=True)
                    continue
                await self._call(worker, port, frame, outputs)

    async def _call(self, worker: Worker, port: str, frame: Frame, outputs: list[str]) -> None:
        reply = await worker.call(port, frame.value)
        if "error" in reply:
            self.reject(port, f"process() failed: {reply['error']}")
            return
        result = reply.get("result")
        if result is None or not outputs:
            return
        if len(outputs) == 1:
            await self.send(outputs[0], result, ts=frame.ts)
            return
        if not isinstance(result, dict) or not set(result) <= set(outputs):
            self.reject(port, f"process() must return a map of outputs ({', '.join(outputs)}) or None, "
                              f"got {_shown(result)}")
            return
        for out in outputs:
            if result.get(out) is not None:
                await self.send(out, result[out], ts=frame.ts)


def _shown(value: Any) -> str:
    if isinstance(value, dict):
        return f"a map with {', '.join(map(repr, list(value)[:5]))}"
    return type(value).__name__


class Worker:
    """The child process that runs one task's code (:mod:`tasks._pyworker`); an async context manager."""

    def __init__(self, config: PythonFunction.Config, *, max_result: int, name: str) -> None:
        self.config = config
        self.max_result = max_result
        self.name = name
        #: the last lines the code printed (or the worker wrote to stderr), for the error when it dies
        self.last_lines: collections.deque[str] = collections.deque(maxlen=5)
        #: printed lines not logged because more than PRINT_LINES came within PRINT_WINDOW
        self.unlogged = 0
        self._proc: asyncio.subprocess.Process | None = None
        self._stderr: asyncio.Task[None] | None = None
        self._window = (0.0, 0)

    async def __aenter__(self) -> Worker:
        # the worker imports what the agent imports, from where the agent imports it; nothing else
        # of the agent's environment (its broker password, say) is handed to the code
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),
               "PYTHONDONTWRITEBYTECODE": "1", "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
               "LANG": os.environ.get("LANG", "C.UTF-8")}
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tasks._pyworker", stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env, start_new_session=True)
        try:
            self._stderr = asyncio.get_running_loop().create_task(self._log_stderr(), name=f"{self.name}-stderr")
            setup = {"code": self.config.code, "params": self.config.params, "memory_mb": self.config.memory_mb,
                     "cpu_seconds": self.config.timeout, "max_result": self.max_result}
            reply = await self._exchange(setup, START_TIMEOUT + self.config.timeout, "starting")
            if not reply.get("ready"):
                raise TaskError(f"the code failed to load: {reply.get('error', 'no reason given')}")
        except BaseException:
            await self.aclose()
            raise
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # its own session: whatever the code started goes too
            await proc.wait()
        if self._stderr is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(self._stderr, 2.0)
            self._stderr = None

    async def call(self, port: str, value: Any) -> dict[str, Any]:
        """The worker's reply for one frame: ``{"ok": True, "result": ...}`` or ``{"error": ...}``.

        :class:`TaskError` when the call hits a limit or the worker dies (the task fails)."""
        reply = await self._exchange({"port": port, "value": value}, self.config.timeout + GRACE, "running process()")
        if "limit" in reply:
            raise TaskError(f"process() {reply.get('error', 'hit a limit')} on a frame on {port!r}: the task "
                            "restarts and its state is lost")
        return reply

    async def _exchange(self, message: Mapping[str, Any], timeout: float, doing: str) -> dict[str, Any]:
        proc = self._proc
        assert proc is not None and proc.stdin is not None and proc.stdout is not None
        payload = encode_value(dict(message))
        try:
            async with asyncio.timeout(timeout):
                proc.stdin.write(_HEADER.pack(len(payload)) + payload)
                await proc.stdin.drain()
                (size,) = _HEADER.unpack(await proc.stdout.readexactly(_HEADER.size))
                if size > self.max_result + 4096:
                    raise TaskError(f"the worker sent {size} bytes, more than a frame may carry")
                reply = decode_value(await proc.stdout.readexactly(size), max_size=self.max_result + 4096)
        except TimeoutError:
            raise TaskError(f"the worker took more than {timeout:g} s {doing} and was killed") from None
        except (asyncio.IncompleteReadError, ConnectionError, BrokenPipeError):
            code = await proc.wait()
            said = f": {self.last_lines[-1]}" if self.last_lines else ""
            raise TaskError(f"the worker process died {doing} (exit code {code}){said}") from None
        except FrameError as exc:
            raise TaskError(f"the worker sent a reply that is not CBOR: {exc}") from None
        if not isinstance(reply, dict):
            raise TaskError("the worker sent a reply that is not a map")
        return reply

    async def _log_stderr(self) -> None:
        proc = self._proc
        assert proc is not None and proc.stderr is not None
        stream = proc.stderr
        while True:
            try:
                line = await stream.readline()
            except ValueError:  # a line longer than the stream's limit: take what is there
                line = await stream.read(64 * 1024)
            if not line:
                return
            text = line.decode(errors="replace").rstrip()[:MAX_LINE]
            self.last_lines.append(text)
            self._log(text)

    def _log(self, text: str) -> None:
        now = time.monotonic()
        start, count = self._window
        if now - start > PRINT_WINDOW:
            if self.unlogged:
                log.info("%s: %d printed line(s) not logged (more than %d in %g s)", self.name, self.unlogged,
                         PRINT_LINES, PRINT_WINDOW)
            start, count, self.unlogged = now, 0, 0
        if count < PRINT_LINES:
            log.info("%s: %s", self.name, text)
        else:
            self.unlogged += 1
        self._window = (start, count + 1)
