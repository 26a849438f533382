"""Mosquitto as a supervised child process: the fastest broker, with persistence, where it is installed.

``async with MosquittoBroker(data_dir=...) as broker`` writes ``mosquitto.conf`` (and a
password file when there are users) under ``data_dir``, starts ``mosquitto -c`` and returns
once the port accepts connections. A task in the context manager's task group waits on the
process: if it exits while we did not ask it to, its last output is logged and it is
started again, sooner after a single crash than after many (see :mod:`edge.broker.restart`).
Leaving the block sends SIGTERM (Mosquitto saves its database), waits, and kills if it must.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import pwd
import shutil
import signal
import sys
from collections import deque
from collections.abc import Callable, Mapping
from contextlib import AsyncExitStack
from pathlib import Path
from types import TracebackType
from typing import Final, Self

from edge.broker.base import (
    DEFAULT_HOST,
    DEFAULT_MAX_PAYLOAD,
    DEFAULT_PORT,
    broker_url,
    check_host,
    check_max_payload,
    check_port,
    check_timeout,
    check_users,
    packet_limit,
)
from edge.broker.passwd import find_mosquitto_passwd, write_password_file
from edge.broker.ports import port_accepts, wait_for_port
from edge.broker.restart import Backoff
from edge.errors import BrokerError, BrokerUnavailableError, ConfigError
from edge.settings import BrokerURL

__all__ = ["INSTALL_HINT", "SEARCH_DIRS", "MosquittoBroker", "find_mosquitto", "render_config"]


def _die_with_parent_hook() -> Callable[[], None] | None:
    """Linux: a function for ``preexec_fn`` that asks for SIGTERM when our process dies (prctl)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved here, not in the forked child
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1

    def hook() -> None:
        prctl(pr_set_pdeathsig, signal.SIGTERM)

    return hook


_DIE_WITH_PARENT: Final = _die_with_parent_hook()

log = logging.getLogger("edge.broker")

SEARCH_DIRS: Final = ("/usr/sbin", "/usr/local/sbin", "/opt/homebrew/sbin")
INSTALL_HINT: Final = "apt-get install mosquitto (macOS: brew install mosquitto)"
CONFIG_FILE: Final = "mosquitto.conf"
PASSWORD_FILE: Final = "mosquitto.passwd"
#: messages a client may have waiting to be written before Mosquitto drops more (its default: 1000); a burst of
#: retained messages to a new subscriber is a few per agent
MAX_QUEUED: Final = 100_000
_TAIL_LINES: Final = 40
_STOP_TIMEOUT: Final = 5.0
_OUTPUT_DRAIN_TIMEOUT: Final = 2.0


def find_mosquitto() -> str | None:
    """The ``mosquitto`` executable on PATH or in the sbin directories PATH often lacks, or None."""
    return shutil.which("mosquitto") or shutil.which("mosquitto", path=os.pathsep.join(SEARCH_DIRS))


def _current_user() -> str | None:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:  # a uid without a passwd entry (containers): mosquitto drops nothing then
        return None


def render_config(*, host: str, port: int, data_dir: Path, persistence: bool, password_file: Path | None,
                  allow_anonymous: bool, max_payload: int, extra_config: str = "") -> str:
    """The text of ``mosquitto.conf`` for one loopback (or ``host``) listener."""
    lines = ["# Written by edgetasks (edge.broker.MosquittoBroker) on every start; edits are lost."]
    user = _current_user()
    if user is not None:
        # Started as root, mosquitto drops to the `mosquitto` user (or `nobody`) after binding and
        # can then no longer write its database into a data_dir that root owns. `user <us>`
        # keeps it running as whoever started it (as root, 2.0.11 keeps root and logs a warning);
        # for anyone else the option is ignored. Chowning data_dir to `mosquitto` instead would
        # depend on that account existing and leave files we could not clean up as a normal user.
        lines.append(f"user {user}")
    lines += [
        f"listener {port} {host}",
        f"allow_anonymous {'true' if allow_anonymous else 'false'}",
        # Nagle on the broker's side holds small frames back behind our delayed ACKs (~1 ms p50)
        "set_tcp_nodelay true",
    ]
    if password_file is not None:
        lines.append(f"password_file {password_file}")
    # max_packet_size bounds whole packets (topic and properties too); 0 is rejected, not "unlimited".
    lines.append(f"max_packet_size {packet_limit(max_payload)}")
    # A fleet's retained messages reach a new subscriber in one burst (a cold controller of 2,000 agents: 4,000
    # states and catalogs). Mosquitto drops what a client has beyond max_queued_messages (1000) waiting to be
    # written, QoS 0 included: a cold controller had 1,578 of 2,000 agents when its sync came back (docs/scaling.md)
    lines.append(f"max_queued_messages {MAX_QUEUED}")
    if persistence:
        # Saved after every change (a retained message, a subscription, a queued message), not on
        # Mosquitto's 30-minute default: desired state lives here, and a kill -9 one second after
        # a deploy must not lose it. Each save rewrites mosquitto.db (a few hundred KB for a fleet
        # of hundreds of deployments); docs/brokers.md says how to trade that for fewer writes.
        lines += ["persistence true", f"persistence_location {data_dir}{os.sep}", "persistence_file mosquitto.db",
                  "autosave_on_changes true", "autosave_interval 1",
                  # agents keep their sessions (EDGE_SESSION_EXPIRY); a 3.1.1 client's has no expiry of its own
                  "persistent_client_expiration 1d"]
    else:
        lines.append("persistence false")
    # stderr, not stdout: stdout into our pipe is block-buffered and its tail lost when mosquitto crashes.
    lines += ["log_dest stderr", "log_type error", "log_type warning", "log_type notice",
              "log_type information", "connection_messages true"]
    if extra_config.strip():
        lines += ["", "# extra_config", extra_config.strip()]
    return "\n".join(lines) + "\n"


class MosquittoBroker:
    """Mosquitto started, watched and restarted by this process; see the module docstring."""

    def __init__(
        self,
        *,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        data_dir: Path,
        persistence: bool = True,
        users: Mapping[str, str] | None = None,
        allow_anonymous: bool | None = None,
        max_payload: int = DEFAULT_MAX_PAYLOAD,
        executable: str | None = None,
        extra_config: str = "",
        start_timeout: float = 10.0,
    ) -> None:
        self.host = check_host(host)
        self._port = check_port(port)
        if not isinstance(data_dir, str | os.PathLike):
            raise ConfigError(f"data_dir: expected a path, got {data_dir!r}", field="data_dir")
        self.data_dir = Path(data_dir).absolute()
        if "\n" in str(self.data_dir):
            raise ConfigError(f"data_dir: {str(self.data_dir)!r} contains a line break", field="data_dir")
        self.persistence = bool(persistence)
        self._users = check_users(users)
        self.allow_anonymous = not self._users if allow_anonymous is None else bool(allow_anonymous)
        self.max_payload = check_max_payload(max_payload)
        if not isinstance(extra_config, str):
            raise ConfigError("extra_config: expected the text of mosquitto.conf lines", field="extra_config")
        self.extra_config = extra_config
        self.start_timeout = check_timeout(start_timeout, "start_timeout")
        self.executable = self._resolve(executable)
        self._stack: AsyncExitStack | None = None
        self._tg: asyncio.TaskGroup | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._tail: deque[str] = deque(maxlen=_TAIL_LINES)
        self._restarts = 0

    @staticmethod
    def _resolve(executable: str | None) -> str:
        if executable is None:
            found = find_mosquitto()
            if found is None:
                raise BrokerUnavailableError(
                    f"Mosquitto is not installed (looked on PATH and in {', '.join(SEARCH_DIRS)}): "
                    f"install it with {INSTALL_HINT}, or set EDGE_BROKER=embedded"
                )
            return found
        found = shutil.which(executable)
        if found is None:
            raise ConfigError(f"executable: {executable!r} is not an executable file", field="executable")
        return found

    # -- what RunningBroker promises ---------------------------------------------------------
    @property
    def name(self) -> str:
        return "mosquitto"

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> BrokerURL:
        return broker_url(self.host, self._port, self._users)

    # -- state -------------------------------------------------------------------------------
    @property
    def config_path(self) -> Path:
        return self.data_dir / CONFIG_FILE

    @property
    def running(self) -> bool:
        """Whether the Mosquitto process is alive (False between a crash and its restart)."""
        return self._proc is not None and self._proc.returncode is None

    @property
    def restarts(self) -> int:
        """How many times the process exited unexpectedly since the block was entered."""
        return self._restarts

    def output_tail(self) -> str:
        """The last lines Mosquitto printed (its log), oldest first."""
        return "\n".join(self._tail)

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<MosquittoBroker {self.url} {state}>"

    # -- the context manager -------------------------------------------------------------------
    async def __aenter__(self) -> Self:
        if self._stack is not None:
            raise RuntimeError("this MosquittoBroker is already running (not re-entrant)")
        self._stack = stack = AsyncExitStack()
        self._restarts = 0
        self._proc = None
        try:
            await asyncio.to_thread(self._write_files)
            self._tg = await stack.enter_async_context(asyncio.TaskGroup())
            await self._start()
            self._supervisor = self._tg.create_task(self._supervise(),
                                                    name=f"edge.broker.mosquitto:{self._port}")
        except BaseException as exc:
            await self._shutdown(type(exc), exc, exc.__traceback__)
            raise
        log.info("mosquitto listening on %s:%d (pid %s, config %s)", self.host, self._port,
                 self._proc.pid if self._proc else "?", self.config_path)
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self._shutdown(exc_type, exc, tb)
        log.info("mosquitto on %s:%d stopped", self.host, self._port)

    async def _shutdown(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        stack, self._stack = self._stack, None
        try:
            if self._supervisor is not None:
                self._supervisor.cancel()
                await asyncio.wait({self._supervisor})
                self._supervisor = None
            await self._terminate()
        finally:
            self._tg = None
            if stack is not None:
                # Our tasks are done by now. Hand the task group only a cancellation (so it can tell
                # its own from a caller's); any other error of the block must reach the caller as
                # it is, not wrapped in an ExceptionGroup.
                cancelled = exc_type is not None and issubclass(exc_type, asyncio.CancelledError)
                await stack.__aexit__(*((exc_type, exc, tb) if cancelled else (None, None, None)))

    # -- the process ---------------------------------------------------------------------------
    def _write_files(self) -> None:
        password_file = self.data_dir / PASSWORD_FILE if self._users else None
        try:
            self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            if password_file is not None:
                write_password_file(password_file, self._users,
                                    tool=find_mosquitto_passwd(near=self.executable))
            text = render_config(host=self.host, port=self._port, data_dir=self.data_dir,
                                 persistence=self.persistence, password_file=password_file,
                                 allow_anonymous=self.allow_anonymous, max_payload=self.max_payload,
                                 extra_config=self.extra_config)
            self.config_path.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise BrokerError(f"cannot write mosquitto's files in {self.data_dir}: {exc}") from exc

    async def _start(self) -> None:
        """Start one Mosquitto process and return once it accepts connections; BrokerError if not."""
        assert self._tg is not None
        if await port_accepts(self.host, self._port):
            raise BrokerError(
                f"cannot start mosquitto on {self.host}:{self._port}: the port is already in use "
                "(something accepts connections there); choose another port (EDGE_BROKER_PORT)"
            )
        self._tail.clear()
        try:
            # A session of its own: Ctrl+C in a terminal reaches us, and we stop Mosquitto in order.
            # If we are killed outright (SIGKILL, the OOM killer), Linux sends it SIGTERM: an orphan
            # would keep the port and the next `edge up` could not start its broker.
            self._proc = proc = await asyncio.create_subprocess_exec(
                self.executable, "-c", str(self.config_path),
                stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT, start_new_session=True, preexec_fn=_DIE_WITH_PARENT,
            )
        except OSError as exc:
            raise BrokerError(f"could not run {self.executable}: {exc}") from exc
        assert proc.stdout is not None
        self._reader = self._tg.create_task(self._read_output(proc.pid, proc.stdout),
                                            name=f"edge.broker.mosquitto-output:{proc.pid}")
        try:
            ready = await wait_for_port(self.host, self._port, timeout=self.start_timeout,
                                        alive=lambda: proc.returncode is None)
        except TimeoutError:
            await self._terminate()
            raise BrokerError(
                f"mosquitto did not accept connections on {self.host}:{self._port} within "
                f"{self.start_timeout:g} s; its output:\n{self.output_tail()}"
            ) from None
        if not ready:
            code = await proc.wait()
            await self._drain_output()
            raise BrokerError(
                f"mosquitto exited with code {code} while starting on {self.host}:{self._port} "
                f"(config {self.config_path}); its output:\n{self.output_tail()}"
            )

    async def _read_output(self, pid: int, stream: asyncio.StreamReader) -> None:
        while True:
            try:
                line = await stream.readline()
            except ValueError:  # a line longer than the stream's limit: it was dropped, read on
                continue
            if not line:
                return
            text = line.decode("utf-8", "replace").rstrip()
            self._tail.append(text)
            log.debug("mosquitto[%d]: %s", pid, text)

    async def _drain_output(self) -> None:
        if self._reader is not None:
            await asyncio.wait({self._reader}, timeout=_OUTPUT_DRAIN_TIMEOUT)

    async def _terminate(self) -> None:
        """SIGTERM, a bounded wait, then SIGKILL."""
        proc = self._proc
        if proc is None:
            return
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(_STOP_TIMEOUT):
                    await proc.wait()
            except TimeoutError:
                log.warning("mosquitto (pid %d) ignored SIGTERM for %g s; killing it",
                            proc.pid, _STOP_TIMEOUT)
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        await self._drain_output()

    async def _supervise(self) -> None:
        """Wait on the process; restart it (with backoff) whenever it exits on its own."""
        loop = asyncio.get_running_loop()
        backoff = Backoff()
        started = loop.time()
        while True:
            proc = self._proc
            assert proc is not None
            code = await proc.wait()
            await self._drain_output()
            self._restarts += 1
            delay = backoff.delay(loop.time() - started)
            log.warning(
                "mosquitto on %s:%d (pid %d) exited unexpectedly with code %s; restarting in %.1f s "
                "(restart %d); its last output:\n%s",
                self.host, self._port, proc.pid, code, delay, self._restarts, self.output_tail(),
            )
            while True:
                await asyncio.sleep(delay)
                try:
                    await self._start()
                except BrokerError as exc:
                    delay = backoff.delay(0.0)
                    log.error("could not restart mosquitto on %s:%d, next try in %.1f s: %s",
                              self.host, self._port, delay, exc)
                    continue
                break
            started = loop.time()
            log.info("mosquitto on %s:%d is back (pid %s)", self.host, self._port,
                     self._proc.pid if self._proc else "?")
