"""A plain paho client for tests: what a device, Home Assistant or any MQTT tool on the broker does.

:class:`Probe` runs paho on its own network thread (``loop_start``); its calls block with a deadline,
so async tests call them through ``asyncio.to_thread``.
"""

from __future__ import annotations

import queue
import threading
import time
import uuid
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edge.settings import BrokerURL

TIMEOUT = 5.0
QUIET = 0.3  # how long "nothing else arrives" is watched, after a marker proved delivery works


class Probe:
    """A paho client on its own network thread (``loop_start``) that records what it receives."""

    def __init__(self, url: BrokerURL, *, port: int | None = None, client_id: str | None = None,
                 clean: bool = True, v5: bool = False, username: str | None = None,
                 password: str | None = None) -> None:
        self.client_id = client_id or f"probe-{uuid.uuid4().hex[:12]}"
        options: dict[str, Any] = {"protocol": mqtt.MQTTv5} if v5 else {"protocol": mqtt.MQTTv311,
                                                                         "clean_session": clean}
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id, **options)
        username = username or url.username
        if username:
            self.client.username_pw_set(username, password or url.password)
        self.host, self.port = url.host, port or url.port
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self.connack: Any = None
        self.session_present: bool | None = None
        self._connected = threading.Event()
        self._subacks: set[int] = set()
        self._cond = threading.Condition()
        self.client.on_connect = self._on_connect
        self.client.on_message = lambda _c, _u, msg: self.messages.put(msg)
        self.client.on_subscribe = self._on_subscribe

    def _on_connect(self, _c: Any, _u: Any, flags: Any, reason: Any, _p: Any) -> None:
        self.connack = reason
        self.session_present = flags.session_present
        self._connected.set()

    def _on_subscribe(self, _c: Any, _u: Any, mid: int, _reasons: Any, _p: Any) -> None:
        with self._cond:
            self._subacks.add(mid)
            self._cond.notify_all()

    def __enter__(self) -> Probe:
        self.client.connect(self.host, self.port, keepalive=30)
        self.client.loop_start()
        assert self._connected.wait(TIMEOUT), f"no CONNACK from {self.host}:{self.port} within {TIMEOUT} s"
        assert not self.connack.is_failure, f"connection refused: {self.connack}"
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def subscribe(self, *topics: str, qos: int = 1) -> None:
        for topic in topics:
            result, sent = self.client.subscribe(topic, qos)
            assert result == mqtt.MQTT_ERR_SUCCESS and sent is not None

            def acked_now(mid: int = sent) -> bool:
                return mid in self._subacks

            with self._cond:
                acked = self._cond.wait_for(acked_now, TIMEOUT)
            assert acked, f"no SUBACK for {topic} within {TIMEOUT} s"

    def publish(self, topic: str, payload: bytes = b"", *, qos: int = 1, retain: bool = False) -> None:
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        info.wait_for_publish(TIMEOUT)
        assert info.is_published(), f"publish to {topic} not acknowledged within {TIMEOUT} s"

    def get(self, timeout: float = TIMEOUT) -> mqtt.MQTTMessage:
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"{self.client_id}: nothing received within {timeout} s") from None

    def until_marker(self, marker_topic: str) -> list[mqtt.MQTTMessage]:
        """Publish to ``marker_topic`` (subscribed) and return what arrived before the marker did."""
        self.publish(marker_topic, b"marker")
        seen: list[mqtt.MQTTMessage] = []
        deadline = time.monotonic() + TIMEOUT
        while (msg := self.get(max(0.0, deadline - time.monotonic()))).topic != marker_topic:
            seen.append(msg)
        return seen

    def quiet(self, timeout: float = QUIET) -> list[mqtt.MQTTMessage]:
        """Whatever arrives within ``timeout`` seconds."""
        seen = []
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                seen.append(self.messages.get(timeout=left))
            except queue.Empty:
                break
        return seen
