"""The relays of ``bench/relay.py`` written by hand, as a Python user would: one per process.

    python bench/handwritten.py paho|faststream URL SOURCE_TOPIC TARGET_TOPIC

Each decodes the CBOR frame, adds 1 to ``value.n``, encodes a new frame (its own ``seq``, the
input's ``ts``) and publishes it. Only what the relay needs is imported, so that its RSS is its own.
"""

from __future__ import annotations

import sys
from typing import Any


def _host_port(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("mqtt://").rsplit(":", 1)
    return host, int(port)


def relay_paho(url: str, source: str, target: str) -> None:
    """paho-mqtt with its network thread: what a Python user writes by hand."""
    import threading

    import cbor2
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    seq = 0

    def on_message(client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        nonlocal seq
        frame = cbor2.loads(message.payload)
        value = frame["value"]
        value["n"] += 1
        client.publish(target, cbor2.dumps({"ts": frame["ts"], "seq": seq, "value": value}))
        seq += 1

    def on_connect(client: mqtt.Client, *_args: Any) -> None:
        client.subscribe(source)

    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    client.on_message = on_message
    client.on_connect = on_connect
    client.connect(*_host_port(url))
    client.loop_start()
    threading.Event().wait()  # until SIGTERM


def relay_faststream(url: str, source: str, target: str) -> None:
    """FastStream's MQTT broker: a subscriber that returns what its publisher sends."""
    import asyncio

    import cbor2
    from faststream import FastStream
    from faststream.mqtt import MQTTBroker

    broker = MQTTBroker(url, logger=None)  # no per-message log lines: what a user who measures would do
    seq = 0

    @broker.subscriber(source)
    @broker.publisher(target)
    async def relay(body: bytes) -> bytes:
        nonlocal seq
        frame = cbor2.loads(body)
        value = frame["value"]
        value["n"] += 1
        payload: bytes = cbor2.dumps({"ts": frame["ts"], "seq": seq, "value": value})
        seq += 1
        return payload

    asyncio.run(FastStream(broker, logger=None).run())


if __name__ == "__main__":
    kind, url, source, target = sys.argv[1:5]
    {"paho": relay_paho, "faststream": relay_faststream}[kind](url, source, target)
