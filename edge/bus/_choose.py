"""Which transport a bus uses: ``auto`` (MQTT 5 where the broker takes it, else paho), ``mqtt5`` or ``paho``.

``protocol`` narrows the choice: ``"3.1.1"`` is spoken by paho alone; ``"5"`` by both, and
``auto`` then means the MQTT 5 transport for TCP/TLS and paho for WebSockets, with no
fallback to 3.1.1. Without it, ``auto`` tries MQTT 5 first and falls back to paho with MQTT
3.1.1 when the broker refuses MQTT 5 (CONNACK "unsupported protocol version", a 3.1.1-style
CONNACK, or a hang-up before any CONNACK), and remembers that for the rest of the bus's life.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Literal

from edge.bus._paho import PahoTransport
from edge.bus._transport import Connection, ConnectOptions, MessageHandler, Transport
from edge.errors import ConfigError
from edge.settings import BrokerURL

__all__ = ["TRANSPORTS", "AutoTransport", "make_transport"]

log = logging.getLogger("edge.bus")

TRANSPORTS = ("auto", "mqtt5", "paho")
MQTT5_HINT = "the MQTT 5 transport needs the mqtt5 package: pip install mqtt5"


def _mqtt5_transport() -> Transport | None:
    """The MQTT 5 transport, or None where the ``mqtt5`` wheel is not installed."""
    try:
        from edge.bus._mqtt5 import Mqtt5Transport
    except ImportError:
        return None
    return Mqtt5Transport()


class AutoTransport(Transport):
    """MQTT 5 first; paho for WebSockets, and (with ``fallback``) for brokers that refuse MQTT 5."""

    def __init__(self, mqtt5: Transport, *, fallback: bool) -> None:
        self._mqtt5 = mqtt5
        self._paho = PahoTransport()
        self._fallback = fallback
        self._use_paho = False
        self._spoke_mqtt5 = False
        self._current: Transport | None = None

    @property
    def name(self) -> str:
        return self._current.name if self._current is not None else "auto"

    async def connect(self, options: ConnectOptions, on_message: MessageHandler) -> Connection:
        if options.url.transport == "tcp" and not self._use_paho:
            from edge.bus._mqtt5_session import ProtocolRefused

            try:
                conn = await self._mqtt5.connect(options, on_message)
            except ProtocolRefused as exc:
                # A hang-up before CONNACK from a broker that took MQTT 5 before is a restart, not a refusal.
                if not self._fallback or (exc.reason is None and self._spoke_mqtt5):
                    raise
                log.info("%s refused MQTT 5 (%s); trying MQTT 3.1.1 with paho", options.url, exc)
                conn = await self._paho.connect(replace(options, protocol="3.1.1"), on_message)
                log.info("%s speaks MQTT 3.1.1: this bus uses paho from now on", options.url)
                self._use_paho = True
                self._current = self._paho
                return conn
            self._spoke_mqtt5 = True
            self._current = self._mqtt5
            return conn
        self._current = self._paho
        return await self._paho.connect(options, on_message)


def make_transport(name: str, protocol: Literal["3.1.1", "5"] | None, url: BrokerURL) -> Transport:
    """The transport for ``Bus(url, transport=name, protocol=protocol)``; :class:`ConfigError` if they clash."""
    if name not in TRANSPORTS:
        raise ConfigError(f"unknown transport {name!r}: use auto, mqtt5 or paho", field="EDGE_TRANSPORT")
    if name == "mqtt5" and url.transport != "tcp":
        raise ConfigError(f"the mqtt5 transport speaks mqtt:// and mqtts://, not {url.scheme}://: use "
                          "transport 'paho' or 'auto' for WebSockets", field="EDGE_TRANSPORT")
    if name == "paho" or (name == "auto" and protocol == "3.1.1"):
        return PahoTransport()
    if name == "mqtt5" and protocol == "3.1.1":
        raise ConfigError("the mqtt5 transport speaks MQTT 5 only: use transport 'paho' (or 'auto') for 3.1.1",
                          field="EDGE_MQTT_VERSION")
    mqtt5 = _mqtt5_transport()
    if mqtt5 is None:
        if name == "mqtt5":
            raise ConfigError(MQTT5_HINT, field="EDGE_TRANSPORT")
        return PahoTransport()
    if name == "mqtt5":
        return mqtt5
    return AutoTransport(mqtt5, fallback=protocol is None)
