"""Shared fixtures: real brokers (Mosquitto and the embedded one) on free loopback ports.

The session brokers run in background threads with their own event loops (see ``_loop.py``)
because every test gets a fresh loop. A missing broker fails the tests that need it, with the
command that installs it: it never skips them silently.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from _brokers import BROKER_KINDS, require_embedded, require_mosquitto
from _loop import BackgroundContext

from edge.broker import EmbeddedBroker, MosquittoBroker, RunningBroker
from edge.broker.ports import free_port as _free_port

__all__ = ["BROKER_KINDS", "require_embedded", "require_mosquitto"]


@pytest.fixture
def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    return _free_port("127.0.0.1")


@pytest.fixture(scope="session")
def mosquitto_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MosquittoBroker]:
    """One Mosquitto for the session, on a free loopback port, persisting into a temporary dir."""
    require_mosquitto()
    data_dir: Path = tmp_path_factory.mktemp("mosquitto")
    port = _free_port()
    with BackgroundContext(lambda: MosquittoBroker(port=port, data_dir=data_dir),
                           name="mosquitto-broker") as broker:
        yield broker


@pytest.fixture(scope="session")
def embedded_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    """One embedded broker (rumqttd via iotcore) for the session, on free loopback ports."""
    require_embedded()
    data_dir: Path = tmp_path_factory.mktemp("embedded")
    port = _free_port()
    with BackgroundContext(lambda: EmbeddedBroker(port=port, data_dir=data_dir),
                           name="embedded-broker") as broker:
        yield broker


@pytest.fixture(params=BROKER_KINDS, ids=BROKER_KINDS)
def broker(request: pytest.FixtureRequest) -> RunningBroker:
    """Each session broker in turn; tests use unique topics and client ids, since brokers are shared."""
    running: RunningBroker = request.getfixturevalue(f"{request.param}_broker")
    return running


TRANSPORTS = ("mqtt5", "paho")


@pytest.fixture(params=TRANSPORTS, ids=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    """Each transport of edge.bus in turn: ``Bus(url, transport=transport)``."""
    name: str = request.param
    return name
