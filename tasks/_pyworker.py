"""The child process of a ``python`` task: runs the user's ``process`` function, one call per frame.

Started by :mod:`tasks.function` as ``python -m tasks._pyworker``; never imported by the agent.
It speaks length-prefixed CBOR on the stdin and stdout it had at start (4-byte big-endian length,
then a map), after moving them out of the way: ``print`` in the user's code goes to stderr, which
the task logs. The first message sets it up::

    -> {"code": str, "params": ..., "memory_mb": int, "cpu_seconds": float, "max_result": int}
    <- {"ready": true} | {"error": "line 3: SyntaxError: ..."} | {"limit": "memory" | "cpu", "error": str}

then one exchange per frame::

    -> {"port": str, "value": ...}
    <- {"ok": true, "result": ...} | {"error": "line 7: ZeroDivisionError: division by zero"}
       | {"limit": "memory" | "cpu", "error": str}

Limits: the address space may grow by ``memory_mb`` beyond what the worker holds once set up
(``RLIMIT_AS``), and each call (and the code's top level) may use ``cpu_seconds`` of CPU
(``ITIMER_PROF``, raised in the code as :class:`CpuLimit`, a ``BaseException`` so that
``except Exception`` in the user's code does not swallow it). The agent also kills the worker
when a call outlasts its wall-clock timeout, whatever the code does.
"""

from __future__ import annotations

import inspect
import os
import resource
import signal
import struct
import sys
import traceback
from collections.abc import Callable
from functools import partial
from typing import Any, BinaryIO

from edge.errors import FrameError
from edge.frames import decode_value, encode_value

FILENAME = "<python task>"
HEADER = struct.Struct(">I")
#: the arguments process() may take, in this order
ARGUMENTS = ("value", "port", "state", "config")


class CpuLimit(BaseException):
    """A call used up its CPU seconds."""


def _on_prof(signum: int, frame: object) -> None:
    raise CpuLimit


def _exactly(stream: BinaryIO, size: int) -> bytes | None:
    chunks, left = [], size
    while left:
        chunk = stream.read(left)
        if not chunk:
            return None  # the agent closed our stdin: time to go
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read(stream: BinaryIO) -> Any:
    header = _exactly(stream, HEADER.size)
    if header is None:
        return None
    body = _exactly(stream, HEADER.unpack(header)[0])
    return None if body is None else decode_value(body)


def write(stream: BinaryIO, payload: bytes) -> None:
    stream.write(HEADER.pack(len(payload)) + payload)
    stream.flush()


def encoded(reply: dict[str, Any], max_result: int) -> bytes:
    """``reply`` as CBOR; an error reply instead when the result cannot be carried."""
    try:
        payload = encode_value(reply)
        decode_value(payload, max_size=max_result + 4096)  # what the agent will refuse: a bignum too big to read
    except FrameError as exc:
        return encode_value({"error": f"process() returned what a frame cannot carry: {exc}"[:500]})
    if len(payload) > max_result:
        return encode_value({"error": f"process() returned {len(payload)} bytes, more than a frame may carry "
                                      f"({max_result})"})
    return payload


def where(exc: BaseException) -> str:
    """``line N: Type: message`` at the innermost line of the user's code in the traceback."""
    line = next((f.lineno for f in reversed(traceback.extract_tb(exc.__traceback__)) if f.filename == FILENAME),
                getattr(exc, "lineno", None) if isinstance(exc, SyntaxError) else None)
    text = "".join(traceback.format_exception_only(exc)).strip().splitlines()[-1]
    return (f"line {line}: {text}" if line else text)[:500]


def guarded(cpu_seconds: float, call: Callable[[], Any]) -> dict[str, Any]:
    """Run ``call`` under the CPU limit; the reply for its outcome (``ok`` with ``result`` when it returns)."""
    signal.setitimer(signal.ITIMER_PROF, cpu_seconds)
    try:
        return {"ok": True, "result": call()}
    except CpuLimit:
        return {"limit": "cpu", "error": f"used more than {cpu_seconds:g} s of CPU"}
    except MemoryError:
        return {"limit": "memory", "error": "ran out of memory (the task's memory_mb)"}
    except RecursionError as exc:
        return {"error": where(exc)}
    except Exception as exc:
        return {"error": where(exc)}
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)


def _vm_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[0]) * resource.getpagesize()


def limit_memory(megabytes: int) -> None:
    try:
        ceiling = _vm_bytes() + megabytes * 1024 * 1024
    except OSError:  # no /proc: bound the whole address space instead
        ceiling = megabytes * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (ceiling, ceiling))


def load(code: str, cpu_seconds: float) -> tuple[Callable[..., Any] | None, int, dict[str, Any]]:
    """Compile and run the code's top level; ``process`` and how many of :data:`ARGUMENTS` it takes."""
    namespace: dict[str, Any] = {"__name__": "edge_python_task"}
    outcome = guarded(cpu_seconds, lambda: exec(compile(code, FILENAME, "exec"), namespace))
    if not outcome.get("ok"):
        return None, 0, outcome
    process = namespace.get("process")
    if not callable(process):
        return None, 0, {"error": "the code defines no function process(value, port, state, config)"}
    try:
        params = inspect.signature(process).parameters.values()
    except (TypeError, ValueError):
        return process, len(ARGUMENTS), {"ready": True}
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return process, len(ARGUMENTS), {"ready": True}
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(positional) > len(ARGUMENTS):
        return None, 0, {"error": f"process() takes at most {len(ARGUMENTS)} arguments ({', '.join(ARGUMENTS)}), "
                                  f"not {len(positional)}"}
    return process, len(positional), {"ready": True}


def main() -> None:
    proto_in = os.fdopen(os.dup(0), "rb", buffering=0)
    proto_out = os.fdopen(os.dup(1), "wb", buffering=0)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(2, 1)  # print() in the code goes to stderr, which the task logs
    sys.stdout = sys.stderr
    signal.signal(signal.SIGPROF, _on_prof)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the agent stops us; a Ctrl-C in its terminal is for it
    setup = read(proto_in)
    if not isinstance(setup, dict):
        return
    max_result = int(setup["max_result"])
    cpu_seconds = float(setup["cpu_seconds"])
    limit_memory(int(setup["memory_mb"]))
    process, arity, reply = load(str(setup["code"]), cpu_seconds)
    write(proto_out, encoded(reply, max_result))
    if process is None:
        return
    state: dict[str, Any] = {}
    params = setup.get("params")
    call = process
    while (message := read(proto_in)) is not None:
        args = (message["value"], message["port"], state, params)[:arity]
        write(proto_out, encoded(guarded(cpu_seconds, partial(call, *args)), max_result))


if __name__ == "__main__":
    main()
