"""MQTT brokers for edgetasks: Mosquitto as a child process, the embedded rumqttd, or an external one.

Each is an async context manager that returns once the broker accepts connections and
stops what it started on exit; :func:`open_broker` picks one from the settings::

    async with open_broker(settings) as broker:
        print(broker.url)
"""

from edge.broker.base import DEFAULT_MAX_PAYLOAD, RunningBroker
from edge.broker.choose import open_broker
from edge.broker.embedded import EmbeddedBroker, embedded_available
from edge.broker.external import ExternalBroker
from edge.broker.mosquitto import MosquittoBroker, find_mosquitto
from edge.broker.ports import free_port, wait_for_port

__all__ = [
    "DEFAULT_MAX_PAYLOAD",
    "EmbeddedBroker",
    "ExternalBroker",
    "MosquittoBroker",
    "RunningBroker",
    "embedded_available",
    "find_mosquitto",
    "free_port",
    "open_broker",
    "wait_for_port",
]
