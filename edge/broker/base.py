"""What every broker has in common: the :class:`RunningBroker` protocol and the argument checks.

Three kinds of broker implement the protocol (Mosquitto as a child process, the embedded
iotcore/rumqttd broker, an external broker reached by URL); code that only needs to know
where to connect takes a ``RunningBroker``. The checks here make the managed brokers'
constructors raise :class:`~edge.errors.ConfigError` at once, before anything is started.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final, Protocol, runtime_checkable

from edge.broker.ports import connect_host
from edge.errors import ConfigError
from edge.settings import BrokerURL

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_MAX_PAYLOAD",
    "DEFAULT_PORT",
    "MAX_PACKET_SIZE",
    "RunningBroker",
    "broker_url",
    "check_host",
    "check_max_payload",
    "check_port",
    "check_timeout",
    "check_users",
    "packet_limit",
]

DEFAULT_HOST: Final = "127.0.0.1"
DEFAULT_PORT: Final = 1883
DEFAULT_MAX_PAYLOAD: Final = 16 * 1024 * 1024
MAX_PACKET_SIZE: Final = 268_435_455  # the largest "remaining length" MQTT can encode
# A packet carries its topic (up to 64 KiB), packet id and MQTT 5 properties besides the
# payload; brokers limit whole packets, so leave room for those on top of max_payload.
_PACKET_HEADROOM: Final = 128 * 1024
_HOST_RE: Final = re.compile(r"\A[A-Za-z0-9._:%-]{1,253}\Z")
_CONTROL_RE: Final = re.compile(r"[\x00-\x1f\x7f]")


@runtime_checkable
class RunningBroker(Protocol):
    """A broker clients can connect to: what ``async with`` on any of our brokers gives."""

    @property
    def name(self) -> str:
        """``mosquitto``, ``embedded`` or ``external``."""

    @property
    def url(self) -> BrokerURL:
        """Where MQTT clients connect, with credentials when the broker has users."""

    @property
    def port(self) -> int:
        """The TCP port of :attr:`url`."""


def check_host(host: object, field: str = "host") -> str:
    if not isinstance(host, str) or not _HOST_RE.match(host):
        raise ConfigError(
            f"{field}: {host!r} is not an IP address or host name to bind to (e.g. 127.0.0.1)", field=field
        )
    return host


def check_port(port: object, field: str = "port") -> int:
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ConfigError(f"{field}: {port!r} is not a TCP port (1 to 65535)", field=field)
    return port


def check_max_payload(max_payload: object, field: str = "max_payload") -> int:
    if (isinstance(max_payload, bool) or not isinstance(max_payload, int)
            or not 1 <= max_payload <= MAX_PACKET_SIZE):
        raise ConfigError(
            f"{field}: {max_payload!r} is not a payload size in bytes (1 to {MAX_PACKET_SIZE})", field=field
        )
    return max_payload


def check_timeout(timeout: object, field: str) -> float:
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout < 3600:
        raise ConfigError(f"{field}: {timeout!r} is not a timeout in seconds (0 to 3600)", field=field)
    return float(timeout)


def check_users(users: Mapping[str, str] | None, field: str = "users") -> dict[str, str]:
    """Usernames and passwords a broker accepts; both non-empty, no ``:`` in names, no control characters."""
    if users is None:
        return {}
    if not isinstance(users, Mapping):
        raise ConfigError(f"{field}: expected a mapping of username to password, got {type(users).__name__}",
                          field=field)
    checked: dict[str, str] = {}
    for name, password in users.items():
        if not isinstance(name, str) or not name or ":" in name or _CONTROL_RE.search(name):
            raise ConfigError(
                f"{field}: username {name!r} must be a non-empty string without ':' or control characters",
                field=field,
            )
        if not isinstance(password, str) or not password or _CONTROL_RE.search(password):
            raise ConfigError(
                f"{field}: the password of {name!r} must be a non-empty string without control characters",
                field=field,
            )
        checked[name] = password
    return checked


def packet_limit(max_payload: int) -> int:
    """The broker-side packet size limit that lets a ``max_payload``-byte payload through."""
    return min(max_payload + _PACKET_HEADROOM, MAX_PACKET_SIZE)


def broker_url(host: str, port: int, users: Mapping[str, str], *, tls: bool = False) -> BrokerURL:
    """The client URL of a managed broker; it carries the first user's credentials, if any."""
    username, password = next(iter(users.items()), (None, None))
    return BrokerURL(scheme="mqtts" if tls else "mqtt", host=connect_host(host), port=port,
                     username=username, password=password)
