"""The embedded broker: rumqttd (Rust) as packaged by iotcore, for devices where only ``pip`` ran.

``pip install 'edgetasks[broker]'`` brings iotcore, whose wheel carries rumqttd and runs it
in a child Python process. We write a full rumqttd TOML config (its keyword arguments cannot
set an MQTT 5 listener, users or TLS) with an MQTT 3.1.1 listener on ``host:port`` and an
MQTT 5 listener on ``host:v5_port``, both on loopback unless asked otherwise (rumqttd's own
default is 0.0.0.0), and a payload limit raised from rumqttd's 20 KiB. iotcore's
``Broker.start()`` blocks while it polls the ports, so it runs in a worker thread; a task in
the context manager's task group checks every second that the child is alive and starts it
again if not. rumqttd keeps retained messages and sessions in memory only: a restart loses them.

iotcore is imported only when an :class:`EmbeddedBroker` is made, so ``edge.broker`` imports
without it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import tempfile
from collections.abc import Mapping
from contextlib import AsyncExitStack
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Final, Self

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
from edge.broker.ports import free_port, port_accepts
from edge.broker.restart import Backoff
from edge.errors import BrokerError, BrokerUnavailableError, ConfigError
from edge.settings import BrokerURL

if TYPE_CHECKING:
    from iotcore import Broker

__all__ = ["INSTALL_HINT", "EmbeddedBroker", "embedded_available", "render_rumqttd_config"]

log = logging.getLogger("edge.broker")

INSTALL_HINT: Final = (
    "the embedded broker needs the 'broker' extra: pip install 'edgetasks[broker]'; where iotcore "
    "has no wheel for your platform (e.g. some ARM boards) install Mosquitto instead: "
    "apt-get install mosquitto, and set EDGE_BROKER=mosquitto"
)
CONFIG_FILE: Final = "rumqttd.toml"
_POLL_INTERVAL: Final = 1.0
_STOP_TIMEOUT: Final = 5.0


def embedded_available() -> bool:
    """Whether iotcore can be imported here (it is the optional ``broker`` extra)."""
    try:
        import iotcore  # noqa: F401
    except ImportError:
        return False
    return True


def _broker_class() -> type[Broker]:
    try:
        from iotcore import Broker
    except ImportError as exc:
        raise BrokerUnavailableError(INSTALL_HINT) from exc
    return Broker


def _toml_str(value: str) -> str:
    # A JSON string without \u-escapes for non-ASCII is a valid TOML basic string
    # (control characters are rejected before we get here).
    return json.dumps(value, ensure_ascii=False)


def _listen(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


SEGMENT_COUNT: Final = 2
MAX_OUTGOING: Final = 1000
V5_PORT_FILE: Final = "v5_port"
_SEGMENT_SIZE: Final = 32 * 1024 * 1024


def segment_size(max_payload: int) -> int:
    """rumqttd's log segment: 32 MiB, or room for two of the largest packets if that is more."""
    return max(_SEGMENT_SIZE, 2 * packet_limit(max_payload))


def render_rumqttd_config(*, host: str, port: int, v5_port: int, max_payload: int,
                          users: Mapping[str, str], tls_cert: Path | None = None,
                          tls_key: Path | None = None) -> str:
    """The rumqttd TOML for one MQTT 3.1.1 and one MQTT 5 listener.

    Every key below is required by the rumqttd in iotcore 0.4.0 (it names the missing one),
    except ``router.id`` and ``dynamic_filters``.
    """
    lines = [
        "# Written by edgetasks (edge.broker.EmbeddedBroker) on every start; edits are lost.",
        "id = 0",
        "",
        "[router]",
        "id = 0",
        "max_connections = 10010",
        # also how many retained messages one QoS 0 SUBSCRIBE brings back (QoS 1: 100, fixed): the
        # readers of deployment specs subscribe at QoS 0 to get them all (edge.retained)
        f"max_outgoing_packet_count = {MAX_OUTGOING}",
        # rumqttd keeps every message in an in-memory log per topic, up to max_segment_count
        # segments of max_segment_size, whether anyone lags or not: its defaults (10 x 100 MB)
        # let one media stream take it past 1 GB; 2 segments of 32 MiB held it at ~144 MB.
        f"max_segment_size = {segment_size(max_payload)}",
        f"max_segment_count = {SEGMENT_COUNT}",
    ]
    auth = ", ".join(f"{_toml_str(name)} = {_toml_str(pw)}" for name, pw in users.items())
    for version, listen_port in (("v4", port), ("v5", v5_port)):
        lines += [
            "",
            f"[{version}.1]",
            f'name = "{version}-1"',
            f"listen = {_toml_str(_listen(host, listen_port))}",
            "next_connection_delay_ms = 1",
        ]
        if tls_cert is not None and tls_key is not None:
            lines += [
                f"[{version}.1.tls]",
                f"certpath = {_toml_str(str(tls_cert))}",
                f"keypath = {_toml_str(str(tls_key))}",
            ]
        lines += [
            f"[{version}.1.connections]",
            "connection_timeout_ms = 60000",
            # rumqttd checks whole packets against this, hence the headroom over max_payload.
            f"max_payload_size = {packet_limit(max_payload)}",
            "max_inflight_count = 100",
            "dynamic_filters = true",
        ]
        if users:
            lines.append(f"auth = {{ {auth} }}")
    return "\n".join(lines) + "\n"


def _check_tls(tls_cert: Path | None, tls_key: Path | None) -> tuple[Path | None, Path | None]:
    if (tls_cert is None) != (tls_key is None):
        raise ConfigError("tls_cert and tls_key: give both (server certificate and its key) or neither",
                          field="tls_cert" if tls_cert is None else "tls_key")
    checked: list[Path | None] = []
    for field, value in (("tls_cert", tls_cert), ("tls_key", tls_key)):
        if value is None:
            checked.append(None)
            continue
        path = Path(value).absolute()
        if not path.is_file():
            raise ConfigError(f"{field}: {str(path)!r} is not a file", field=field)
        checked.append(path)
    return checked[0], checked[1]


class EmbeddedBroker:
    """rumqttd via iotcore in a supervised child process; see the module docstring."""

    def __init__(
        self,
        *,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        v5_port: int | None = None,
        max_payload: int = DEFAULT_MAX_PAYLOAD,
        users: Mapping[str, str] | None = None,
        tls_cert: Path | None = None,
        tls_key: Path | None = None,
        data_dir: Path | None = None,
        start_timeout: float = 10.0,
    ) -> None:
        """``v5_port=None`` picks a free port when the broker starts and keeps it for this object,
        and, with a ``data_dir``, in the file ``v5_port`` there, so that the next broker started on
        that data dir listens on the same one (an agent given the ``?v5=PORT`` hint reconnects).

        ``data_dir`` holds the generated ``rumqttd.toml`` (mode 0600: it holds the passwords);
        None uses a temporary directory removed on exit.
        """
        self.host = check_host(host)
        self._port = check_port(port)
        self._v5_port = None if v5_port is None else check_port(v5_port, "v5_port")
        if self._v5_port == self._port:
            raise ConfigError(f"v5_port: {v5_port} is also the MQTT 3.1.1 port", field="v5_port")
        self.max_payload = check_max_payload(max_payload)
        self._users = check_users(users)
        self.tls_cert, self.tls_key = _check_tls(tls_cert, tls_key)
        if data_dir is not None and not isinstance(data_dir, str | os.PathLike):
            raise ConfigError(f"data_dir: expected a path, got {data_dir!r}", field="data_dir")
        self.data_dir = None if data_dir is None else Path(data_dir).absolute()
        self.start_timeout = check_timeout(start_timeout, "start_timeout")
        self._broker_cls = _broker_class()
        self._native: Broker | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._config_path: Path | None = None
        self._stack: AsyncExitStack | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._restarts = 0

    # -- what RunningBroker promises ---------------------------------------------------------
    @property
    def name(self) -> str:
        return "embedded"

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> BrokerURL:
        """The MQTT 3.1.1 listener, with the MQTT 5 one as its ``v5_port`` hint once it is known."""
        url = broker_url(self.host, self._port, self._users, tls=self.tls_cert is not None)
        url.v5_port = self._v5_port
        return url

    # -- more --------------------------------------------------------------------------------
    @property
    def v5_port(self) -> int:
        if self._v5_port is None:
            raise RuntimeError("the MQTT 5 port is picked when the broker starts: enter the block first")
        return self._v5_port

    @property
    def url_v5(self) -> BrokerURL:
        """The MQTT 5 listener."""
        return broker_url(self.host, self.v5_port, self._users, tls=self.tls_cert is not None)

    @property
    def config_path(self) -> Path | None:
        """The rumqttd TOML in use, once started."""
        return self._config_path

    @property
    def running(self) -> bool:
        return self._native is not None and self._native.is_running

    @property
    def restarts(self) -> int:
        """How many times the child process was found dead and started again since the block was entered."""
        return self._restarts

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<EmbeddedBroker {self.url} {state}>"

    # -- the context manager -------------------------------------------------------------------
    async def __aenter__(self) -> Self:
        if self._stack is not None:
            raise RuntimeError("this EmbeddedBroker is already running (not re-entrant)")
        self._restarts = 0
        if self._v5_port is None:
            self._v5_port = await self._pick_v5_port()
        stack = AsyncExitStack()
        self._stack = stack
        try:
            for port in (self._port, self._v5_port):
                if await port_accepts(self.host, port):
                    raise BrokerError(
                        f"cannot start the embedded broker on {self.host}:{port}: the port is already in use "
                        "(something accepts connections there); choose another port (EDGE_BROKER_PORT)"
                    )
            stack.push_async_callback(self._stop_native)
            self._config_path = await asyncio.to_thread(self._write_config)
            try:
                self._native = self._broker_cls(port=self._port, listen=self.host,
                                                config_path=str(self._config_path),
                                                max_payload_size=packet_limit(self.max_payload))
            except ValueError as exc:
                raise BrokerError(f"rumqttd rejected its config {self._config_path}: {exc}") from exc
            await self._start_native()
            tg = await stack.enter_async_context(asyncio.TaskGroup())
            self._supervisor = tg.create_task(self._supervise(), name=f"edge.broker.embedded:{self._port}")
        except BaseException:
            self._stack = None
            await stack.aclose()
            raise
        log.info("embedded broker (rumqttd) listening on %s:%d (MQTT 3.1.1) and %s:%d (MQTT 5)",
                 self.host, self._port, self.host, self._v5_port)
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        stack, self._stack = self._stack, None
        if self._supervisor is not None:
            self._supervisor.cancel()
            await asyncio.wait({self._supervisor})
            self._supervisor = None
        if stack is not None:
            # As in MosquittoBroker: only a cancellation goes to the task group, so that other
            # errors of the block reach the caller unwrapped.
            cancelled = exc_type is not None and issubclass(exc_type, asyncio.CancelledError)
            await stack.__aexit__(*((exc_type, exc, tb) if cancelled else (None, None, None)))
        log.info("embedded broker on %s:%d stopped", self.host, self._port)

    # -- the process ---------------------------------------------------------------------------
    async def _pick_v5_port(self) -> int:
        """The MQTT 5 port saved in the data dir if it is still free, else a new free one (saved)."""
        saved_file = None if self.data_dir is None else self.data_dir / V5_PORT_FILE
        if saved_file is not None:
            try:
                saved = int(saved_file.read_text(encoding="ascii").strip())
                check_port(saved, "v5_port")
            except (OSError, ValueError, ConfigError):
                pass
            else:
                if saved != self._port and not await port_accepts(self.host, saved):
                    return saved
                log.warning("the embedded broker's MQTT 5 port %d is taken: picking another one "
                            "(agents given the old ?v5= hint need the new one)", saved)
        port = free_port(self.host)
        if saved_file is not None:
            try:
                saved_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                saved_file.write_text(f"{port}\n", encoding="ascii")
            except OSError as exc:
                log.warning("could not save the MQTT 5 port in %s: %s", saved_file, exc)
        return port

    def _write_config(self) -> Path:
        try:
            return self._write_config_file()
        except OSError as exc:
            raise BrokerError(f"cannot write the embedded broker's config: {exc}") from exc

    def _write_config_file(self) -> Path:
        if self.data_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="edge-broker-")
            directory = Path(self._tmp.name)
        else:
            directory = self.data_dir
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        assert self._v5_port is not None
        path = directory / CONFIG_FILE
        path.unlink(missing_ok=True)
        path.touch(mode=0o600)
        path.write_text(render_rumqttd_config(host=self.host, port=self._port, v5_port=self._v5_port,
                                              max_payload=self.max_payload, users=self._users,
                                              tls_cert=self.tls_cert, tls_key=self.tls_key), encoding="utf-8")
        return path

    async def _start_native(self) -> None:
        native = self._native
        assert native is not None
        starting = asyncio.ensure_future(asyncio.to_thread(native.start, self.start_timeout))
        try:
            await asyncio.shield(starting)
        except asyncio.CancelledError:
            # The thread cannot be interrupted; let it finish (bounded by start_timeout) so that
            # the stop() that follows sees, and ends, the process it started.
            await asyncio.wait({starting})
            if not starting.cancelled():
                starting.exception()  # retrieved: it is the cancellation that matters now
            raise
        except (OSError, RuntimeError) as exc:
            raise BrokerError(
                f"the embedded broker could not start on {self.host}:{self._port}/{self._v5_port} "
                f"(config {self._config_path}; its own output went to this process's stderr): {exc}"
            ) from exc

    async def _stop_native(self) -> None:
        native, self._native = self._native, None
        if native is not None:
            # Broker.stop() terminates, waits up to the timeout, then kills; it blocks, hence the thread.
            await asyncio.to_thread(native.stop, _STOP_TIMEOUT)
        if self._tmp is not None:
            await asyncio.to_thread(self._tmp.cleanup)
            self._tmp = None
            self._config_path = None

    async def _supervise(self) -> None:
        """Every second, check the child is alive; start it again (with backoff) when it is not."""
        loop = asyncio.get_running_loop()
        backoff = Backoff()
        started = loop.time()
        while True:
            await asyncio.sleep(_POLL_INTERVAL)
            if self.running:
                continue
            self._restarts += 1
            delay = backoff.delay(loop.time() - started)
            log.warning(
                "the embedded broker on %s:%d stopped unexpectedly; restarting in %.1f s (restart %d)",
                self.host, self._port, delay, self._restarts,
            )
            # stop() on the dead child reaps it and closes the pipe to it, which start() would leak.
            if self._native is not None:
                await asyncio.to_thread(self._native.stop, _STOP_TIMEOUT)
            while True:
                await asyncio.sleep(delay)
                try:
                    await self._start_native()
                except BrokerError as exc:
                    delay = backoff.delay(0.0)
                    log.error("could not restart the embedded broker, next try in %.1f s: %s", delay, exc)
                    continue
                break
            started = loop.time()
            log.info("the embedded broker on %s:%d is back", self.host, self._port)
