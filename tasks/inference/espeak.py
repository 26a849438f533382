"""eSpeak NG for an agent's tasks, from the library and voice data the ``espeakng-loader`` wheel ships.

The library itself is :class:`~tasks.inference.espeak_library.Espeak` (ctypes). An agent's tasks
speak through :class:`EspeakProcess` (``ENGINE``, a :class:`~tasks.inference.models.Shared`): the
same calls, answered by an ``Espeak`` in a child process (:mod:`tasks.inference.espeak_process`,
which says why), started again if it ends.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import io
import json
import subprocess
import sys
import tempfile
import threading
from typing import TYPE_CHECKING, Any, Final, cast

from edge.errors import ConfigError
from tasks._lazy import require
from tasks.inference.espeak_library import Espeak
from tasks.inference.models import Shared

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
else:
    from tasks._lazy import numpy as np

require("espeakng_loader", hint="text_to_speech needs eSpeak NG: pip install 'edgetasks[speech]' "
                                "(or: pip install espeakng-loader)")

__all__ = ["ENGINE", "Espeak", "EspeakGone", "EspeakProcess", "Ticket"]

class EspeakGone(RuntimeError):
    """The speaking process ended (or was ended for not answering); the next call starts another."""


# how long a request may take: eSpeak NG speaks ~100 times faster than real time, a character is ~70 ms
_BASE_TIMEOUT: Final = 30.0
_TIMEOUT_PER_CHAR: Final = 0.005
_F_SETPIPE_SZ: Final = 1031  # fcntl.F_SETPIPE_SZ (Linux), named in fcntl from Python 3.10 on some builds only
_PIPE_BYTES: Final = 1 << 20  # a batch's audio in as few reads as possible: each takes the GIL again


class Child:
    """One speaking process: requests written in order, replies read in the same order."""

    def __init__(self, number: int) -> None:
        self.number = number
        self.stderr = tempfile.TemporaryFile()  # noqa: SIM115  # kept open: its tail says why the child ended
        self.process = subprocess.Popen([sys.executable, "-m", "tasks.inference.espeak_process"],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr)
        assert self.process.stdin is not None and self.process.stdout is not None
        self.stdin = self.process.stdin
        self.stdout = cast("io.BufferedReader", self.process.stdout)
        with contextlib.suppress(OSError):
            fcntl.fcntl(self.stdout.fileno(), _F_SETPIPE_SZ, _PIPE_BYTES)
        self.sent = 0  # requests written
        self.read = 0  # replies read
        self.replies: dict[int, tuple[list[int], bytearray] | BaseException] = {}  # read, not yet taken
        self.chars: dict[int, int] = {}  # characters of each request not answered yet (its time limit)
        self.failure: EspeakGone | None = None
        self.killed = False

    def kill(self) -> None:
        self.killed = True
        self.process.kill()

    def reply_line(self) -> dict[str, Any]:
        line = self.stdout.readline()
        if not line.endswith(b"\n"):
            raise self.gone()
        try:
            reply = json.loads(line)
        except ValueError:
            raise self.gone() from None
        if not isinstance(reply, dict):
            raise self.gone()
        return reply

    def gone(self) -> EspeakGone:
        """Why the child ended (it is ended here if it has not); every call waiting on it fails so."""
        if self.failure is not None:
            return self.failure
        self.end()
        tail = b""
        with contextlib.suppress(OSError, ValueError):  # ValueError: closed already
            self.stderr.seek(0)
            tail = self.stderr.read()[-2000:]
        self.stderr.close()
        lines = [line.strip() for line in tail.decode("utf-8", "replace").splitlines() if line.strip()]
        code = self.process.returncode
        how = "did not answer in time and was killed" if self.killed else \
            f"ended ({'killed by signal ' + str(-code) if code is not None and code < 0 else f'status {code}'})"
        self.failure = EspeakGone(f"eSpeak NG's process {how}" + (f": {lines[-1]}" if lines else ""))
        return self.failure

    def end(self) -> None:
        """End the process (its stdin closed: it ends by itself; killed if it does not)."""
        for stream in (self.stdin, self.stdout):
            with contextlib.suppress(OSError):
                stream.close()
        try:
            self.process.wait(2)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def close(self) -> None:
        self.end()
        self.stderr.close()


class EspeakProcess:
    """eSpeak NG in a child process (:mod:`tasks.inference.espeak_process`), with :class:`Espeak`'s calls.

    Thread-safe. Made in a thread (:meth:`Shared.get`): starting waits for the child's ``ready``.
    :meth:`submit` writes a request and returns at once, :meth:`result` waits for its audio: a
    caller that submits its next texts before it waits for the previous ones keeps the child
    speaking without a pause between them. A child that ends, or does not answer in time (it is
    killed), fails the requests it had with :class:`EspeakGone`; the next submit starts another.
    """

    def __init__(self) -> None:
        self._write = threading.Lock()  # one request written at a time, and the child (re)started
        self._read = threading.Lock()  # one reader of the child's replies at a time
        self._child: Child | None = None
        self.started = 0  # children started so far
        self.rate: int = 0
        self._start()
        atexit.register(self.close)

    # -- the calls ------------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        """Whether the child is up (else the next submit starts one, which takes a moment: not for the event loop)."""
        child = self._child
        return child is not None and child.failure is None

    @property
    def pid(self) -> int | None:
        """The child's process id, while it runs."""
        child = self._child
        return None if child is None else child.process.pid

    def check_voice(self, voice: str) -> None:
        """ConfigError (one line) if eSpeak NG has no voice ``voice``."""
        self.result(self._submit({"check": voice}, chars=0))

    def synthesize(self, text: str, *, voice: str, rate: int, pitch: int, volume: int = 100) -> npt.NDArray[np.int16]:
        """``text`` spoken: 16-bit mono samples at :attr:`rate` Hz. ConfigError for a voice eSpeak NG lacks."""
        return self.result(self.submit([text], voice=voice, rate=rate, pitch=pitch, volume=volume))[0]

    def submit(self, texts: list[str], *, voice: str, rate: int, pitch: int, volume: int = 100) -> Ticket:
        """Ask for ``texts`` to be spoken; :meth:`result` gives their audio."""
        return self._submit({"speak": texts, "voice": voice, "rate": rate, "pitch": pitch, "volume": volume},
                            chars=sum(len(text) for text in texts))

    def result(self, ticket: Ticket) -> list[npt.NDArray[np.int16]]:
        """The audio of each text of ``ticket`` (in order); ConfigError for a voice eSpeak NG lacks,
        :class:`EspeakGone` if the child ended before it answered."""
        child, number = ticket
        with self._read:
            while number not in child.replies:
                if child.failure is not None:
                    raise child.failure
                self._read_one(child)
            reply = child.replies.pop(number)
        if isinstance(reply, BaseException):
            raise reply
        sizes, data = reply
        spoken, at = [], 0
        for size in sizes:
            spoken.append(np.frombuffer(data, np.int16, size // 2, at))
            at += size
        return spoken

    def close(self) -> None:
        """End the child (its stdin closed: it ends by itself; killed if it does not)."""
        with self._write:
            child, self._child = self._child, None
        if child is not None:
            child.close()

    # -- the child ------------------------------------------------------------------------------------
    def _start(self) -> Child:
        self.started += 1
        child = Child(self.started)
        timer = _kill_after(child, _BASE_TIMEOUT)
        try:
            ready = child.reply_line()
        except EspeakGone:
            raise RuntimeError(f"eSpeak NG's process did not start: {child.gone()}") from None
        finally:
            timer.cancel()
        if not isinstance(ready.get("ready"), int):
            child.close()
            raise RuntimeError(f"eSpeak NG's process said {ready!r} instead of ready")
        self.rate = int(ready["ready"])
        self._child = child
        return child

    def _submit(self, request: dict[str, Any], *, chars: int) -> Ticket:
        data = json.dumps(request).encode("utf-8") + b"\n"
        with self._write:
            child = self._child
            if child is None or child.failure is not None:
                child = self._start()
            child.sent += 1
            number = child.sent
            child.chars[number] = chars
            try:
                child.stdin.write(data)
                child.stdin.flush()
            except OSError:
                pass  # it ended: the reader finds out why
            return child, number

    def _read_one(self, child: Child) -> None:
        """Read the child's next reply (under the read lock); a child that ended fails what it had."""
        number = child.read + 1
        timer = _kill_after(child, _BASE_TIMEOUT + child.chars.get(number, 0) * _TIMEOUT_PER_CHAR)
        try:
            reply = child.reply_line()
            if "error" in reply:
                message = str(reply["error"])
                answer: tuple[list[int], bytearray] | BaseException = (
                    ConfigError(message, field="voice") if reply.get("config")
                    else RuntimeError(f"eSpeak NG: {message}"))
            else:
                sizes = [int(size) for size in reply.get("sizes", [])]
                data = bytearray(sum(sizes))
                if child.stdout.readinto(data) != len(data):
                    raise child.gone()
                answer = (sizes, data)
        except (EspeakGone, OSError, ValueError, TypeError):
            child.gone()
            with self._write:
                if self._child is child:
                    self._child = None
            return
        finally:
            timer.cancel()
        child.read = number
        child.chars.pop(number, None)
        child.replies[number] = answer


#: a request: the child it went to and its number there
Ticket = tuple[Child, int]


def _kill_after(child: Child, seconds: float) -> threading.Timer:
    timer = threading.Timer(seconds, child.kill)
    timer.daemon = True
    timer.start()
    return timer


#: the agent's eSpeak NG, in its own process, started when a task first speaks
ENGINE: Final = Shared("eSpeak NG", EspeakProcess)
