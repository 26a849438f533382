"""Long-lived resources leave nothing behind when entering them fails (issue 18 section 4).

Each test makes one resource's ``__aenter__`` fail (a broker that never answers, a first sync that
times out, an error in a sub-resource, a caller's cancellation) and checks with
:mod:`_leaks` that no connection to the broker, asyncio task, child process or subscription is left.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from _leaks import left_behind, snapshot

from edge.broker import EmbeddedBroker, MosquittoBroker, RunningBroker
from edge.bus import Bus
from edge.controller import Controller
from edge.errors import BrokerError, BusError, ConnectError
from edge.host import Host
from edge.settings import load_settings
from tests.conftest import require_embedded, require_mosquitto


def settings(broker: RunningBroker, tmp_path: Path, name: str) -> Any:
    return load_settings(broker=broker.url.geturl(), namespace=f"l{uuid.uuid4().hex[:10]}", agent_id=name,
                         data_dir=tmp_path / name)


@pytest.fixture
async def silent_broker() -> AsyncIterator[int]:
    """A port that accepts TCP connections and never answers a CONNECT."""
    held: list[asyncio.StreamWriter] = []

    async def accept(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


# -- the bus -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("transport", ["mqtt5", "paho"])
async def test_a_bus_whose_broker_never_answers_leaves_nothing(silent_broker: int, transport: str) -> None:
    before = snapshot(silent_broker)
    bus = Bus(f"mqtt://127.0.0.1:{silent_broker}", transport=transport, connect_timeout=0.3)
    with pytest.raises(ConnectError, match="could not connect"):
        async with bus:
            pass
    assert await left_behind(before, silent_broker) == []


@pytest.mark.parametrize("transport", ["mqtt5", "paho"])
async def test_a_bus_cancelled_while_connecting_leaves_nothing(silent_broker: int, transport: str) -> None:
    before = snapshot(silent_broker)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.2), Bus(f"mqtt://127.0.0.1:{silent_broker}", transport=transport):
            pass
    assert await left_behind(before, silent_broker) == []


# -- the controller ----------------------------------------------------------------------------------
async def test_a_controller_whose_first_sync_times_out_leaves_nothing(mosquitto_broker: MosquittoBroker,
                                                                     tmp_path: Path) -> None:
    port = mosquitto_broker.port
    before = snapshot(port)
    controller = Controller(settings(mosquitto_broker, tmp_path, "ctl"), sync_timeout=0.0001)
    with pytest.raises(TimeoutError):
        async with controller:
            pass
    assert not controller.bus.is_connected
    assert await left_behind(before, port) == []


async def test_a_controller_on_a_shared_bus_closes_its_subscriptions_when_its_sync_times_out(
        mosquitto_broker: MosquittoBroker, tmp_path: Path) -> None:
    port = mosquitto_broker.port
    async with Bus(mosquitto_broker.url) as bus:
        subscriptions, hooks = list(bus._subs), list(bus._hooks)
        before = snapshot(port)
        with pytest.raises(TimeoutError):
            async with Controller(settings(mosquitto_broker, tmp_path, "ctl"), bus=bus, sync_timeout=0.0001):
                pass
        assert bus.is_connected  # not ours to close
        assert bus._subs == subscriptions and bus._hooks == hooks
        assert await left_behind(before, port) == []


# -- the host (an agent) -----------------------------------------------------------------------------
async def test_a_host_whose_subscription_fails_leaves_nothing(mosquitto_broker: MosquittoBroker, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    port = mosquitto_broker.port
    before = snapshot(port)
    host = Host(settings(mosquitto_broker, tmp_path, "pi"), types=[], persist=False)
    subscribe = host.bus.subscribe

    def refusing(pattern: str, **options: Any) -> Any:
        if pattern == host.topics.agent_dismiss(host.agent_id):  # the last one it opens
            raise BusError(f"the broker refused the subscription to {pattern!r}")
        return subscribe(pattern, **options)

    monkeypatch.setattr(host.bus, "subscribe", refusing)
    with pytest.raises(BusError, match="refused"):
        async with host:
            pass
    assert await left_behind(before, port) == []


# -- the brokers ---------------------------------------------------------------------------------------
async def test_a_mosquitto_that_never_listens_in_time_leaves_nothing(tmp_path: Path, free_port: int,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    require_mosquitto()
    import edge.broker.mosquitto

    async def never_listens(*_args: object, **_kwargs: object) -> bool:
        raise TimeoutError  # as wait_for_port does when start_timeout passes: its process runs, never listens

    monkeypatch.setattr(edge.broker.mosquitto, "wait_for_port", never_listens)
    before = snapshot(free_port)
    with pytest.raises(BrokerError, match="did not accept connections"):
        async with MosquittoBroker(port=free_port, data_dir=tmp_path / "m"):
            pass
    assert await left_behind(before, free_port) == []


async def hang_forever(*_args: object, **_kwargs: object) -> Any:
    await asyncio.Event().wait()


async def test_a_mosquitto_cancelled_while_starting_leaves_nothing(tmp_path: Path, free_port: int,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    require_mosquitto()
    import edge.broker.mosquitto

    monkeypatch.setattr(edge.broker.mosquitto, "wait_for_port", hang_forever)  # its process runs, never "listens"
    broker = MosquittoBroker(port=free_port, data_dir=tmp_path / "m")
    before = snapshot(free_port)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.5), broker:
            pass
    assert await left_behind(before, free_port) == []
    assert not broker.running


async def test_an_embedded_broker_cancelled_while_starting_leaves_nothing(tmp_path: Path, free_port: int,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    require_embedded()
    start = EmbeddedBroker._start_native

    async def start_then_hang(self: EmbeddedBroker) -> None:
        await start(self)  # the broker process runs
        await hang_forever()

    monkeypatch.setattr(EmbeddedBroker, "_start_native", start_then_hang)
    broker = EmbeddedBroker(port=free_port, data_dir=tmp_path / "e")
    before = snapshot(free_port)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(2), broker:
            pass
    assert await left_behind(before, free_port) == []
    assert not broker.running

