"""Which broker to use: :func:`open_broker` turns the settings into one of the three brokers.

``EDGE_BROKER=auto`` prefers Mosquitto where it is installed (fastest, persistent) and falls
back to the embedded broker that ``pip install 'edgetasks[broker]'`` brings; ``embedded`` and
``mosquitto`` insist on one; a URL means a broker someone else runs.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager

from edge.broker import mosquitto
from edge.broker.base import RunningBroker
from edge.broker.embedded import INSTALL_HINT as EMBEDDED_HINT
from edge.broker.embedded import EmbeddedBroker, embedded_available
from edge.broker.external import ExternalBroker
from edge.broker.ports import is_loopback
from edge.errors import BrokerUnavailableError, ConfigError
from edge.settings import BrokerKind, Settings

__all__ = ["NO_BROKER_HINT", "check_broker_exposure", "open_broker"]

NO_BROKER_HINT = (
    "no MQTT broker is available here: install Mosquitto (apt-get install mosquitto) or the embedded "
    "broker (pip install 'edgetasks[broker]'), or set EDGE_BROKER to the URL of a running broker "
    "(mqtt://host:port)"
)


def _users(settings: Settings) -> dict[str, str] | None:
    if settings.username is None:
        return None
    if settings.password is None or not settings.password.get_secret_value():
        raise ConfigError("EDGE_USERNAME is set but EDGE_PASSWORD is not: a managed broker needs both",
                          field="EDGE_PASSWORD")
    return {settings.username: settings.password.get_secret_value()}


def check_broker_exposure(settings: Settings) -> None:
    """Refuse (:class:`ConfigError`) a managed broker beyond loopback that would let anyone in.

    Like the control panel's check: ``EDGE_BROKER_HOST`` other than a loopback address needs
    ``EDGE_USERNAME``/``EDGE_PASSWORD`` (the broker then refuses anonymous clients), or the
    deliberate ``EDGE_BROKER_ANONYMOUS=true``. A broker URL (someone else's broker) is not ours to check.
    """
    if settings.broker_kind is BrokerKind.URL or is_loopback(settings.broker_host):
        return
    if settings.username is None and not settings.broker_anonymous:
        raise ConfigError(
            f"the broker would listen on {settings.broker_host}, beyond this machine, open to anyone: set "
            "EDGE_USERNAME and EDGE_PASSWORD (or bind EDGE_BROKER_HOST=127.0.0.1, or allow it with "
            "EDGE_BROKER_ANONYMOUS=true)", field="EDGE_BROKER_HOST")


def open_broker(settings: Settings) -> AbstractAsyncContextManager[RunningBroker]:
    """The broker ``settings.broker`` asks for, to be entered with ``async with``.

    Raises :class:`BrokerUnavailableError` (saying what to install) when the chosen broker is
    not installed. Managed brokers bind ``broker_host:broker_port`` and keep their files in
    ``data_dir / "broker"``.
    """
    kind = settings.broker_kind
    check_broker_exposure(settings)
    if kind is BrokerKind.URL:
        return ExternalBroker(settings.broker_url)
    use_mosquitto = kind is BrokerKind.MOSQUITTO or (
        kind is BrokerKind.AUTO and mosquitto.find_mosquitto() is not None
    )
    if not use_mosquitto and kind is BrokerKind.AUTO and not embedded_available():
        raise BrokerUnavailableError(NO_BROKER_HINT)
    if not use_mosquitto and not embedded_available():
        raise BrokerUnavailableError(EMBEDDED_HINT)
    data_dir = settings.data_dir / "broker"
    if use_mosquitto:
        return mosquitto.MosquittoBroker(host=settings.broker_host, port=settings.broker_port,
                                         data_dir=data_dir, users=_users(settings),
                                         max_payload=settings.max_payload)
    return EmbeddedBroker(host=settings.broker_host, port=settings.broker_port, data_dir=data_dir,
                          users=_users(settings), max_payload=settings.max_payload)
