"""The MQTT 5 transport through the bus: scripted fake brokers on 127.0.0.1, and real ones.

A :class:`FakeBroker` runs the test's own coroutine for each connection it accepts, so the
test decides every byte the client gets: silence after CONNACK, garbage, refusals in MQTT
3.1.1, a low receive maximum, acknowledgements held back, a resumed session.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import subprocess
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from mqtt5 import (
    ConnAckPacket,
    ConnAckReasonCode,
    ConnectPacket,
    DisconnectPacket,
    DisconnectReasonCode,
    PingReqPacket,
    PingRespPacket,
    PubAckPacket,
    PubCompPacket,
    PublishPacket,
    PubRecPacket,
    PubRelPacket,
    QoS,
    SubAckPacket,
    SubAckReasonCode,
    SubscribePacket,
    UnsubAckPacket,
    UnsubAckReasonCode,
    UnsubscribePacket,
    read,
)

from edge.broker import EmbeddedBroker, MosquittoBroker, free_port
from edge.bus import Bus, TLSOptions
from edge.bus._mqtt5 import Mqtt5Transport
from edge.bus._transport import ConnectOptions
from edge.errors import BusError, ConnectError
from edge.settings import parse_broker_url

TIMEOUT = 5.0
Q1, Q2 = QoS.AT_LEAST_ONCE, QoS.EXACTLY_ONCE


def unique(prefix: str = "t") -> str:
    return f"test/{prefix}/{uuid.uuid4().hex[:10]}"


# -- a broker scripted by the test ----------------------------------------------------------------
class Peer:
    """One accepted connection, seen from the fake broker's side."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def raw(self) -> bytes:
        """The next whole packet's bytes (any protocol version)."""
        head = await self.reader.readexactly(1)
        length, shift = 0, 0
        while True:
            byte = (await self.reader.readexactly(1))[0]
            head += bytes([byte])
            length |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        return head + await self.reader.readexactly(length)

    async def packet(self):
        packet, _ = read(memoryview(await self.raw()))
        return packet

    async def expect(self, kind):
        """The next packet, answering PINGREQs on the way; it must be a ``kind``."""
        while True:
            packet = await self.packet()
            if isinstance(packet, PingReqPacket) and kind is not PingReqPacket:
                self.send(PingRespPacket())
                continue
            assert isinstance(packet, kind), packet
            return packet

    def send(self, *packets) -> None:
        self.writer.write(b"".join(p if isinstance(p, bytes) else p.write() for p in packets))

    async def accept(self, **connack) -> ConnectPacket:
        connect = await self.expect(ConnectPacket)
        self.send(ConnAckPacket(**connack))
        return connect

    async def serve(self) -> None:
        """Answer PINGREQ, SUBSCRIBE and UNSUBSCRIBE (and drop publishes) until the client goes."""
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                packet = await self.packet()
                if isinstance(packet, PingReqPacket):
                    self.send(PingRespPacket())
                elif isinstance(packet, SubscribePacket):
                    self.send(SubAckPacket(packet.packet_id, [SubAckReasonCode.GRANTED_QOS_AT_LEAST_ONCE]
                                           * len(packet.topic_filters)))
                elif isinstance(packet, UnsubscribePacket):
                    self.send(UnsubAckPacket(packet.packet_id, [UnsubAckReasonCode.SUCCESS] * len(packet.patterns)))


class FakeBroker:
    """``async with FakeBroker(script) as fake``: ``await script(peer, n)`` for the n-th connection (from 0)."""

    def __init__(self, script: Callable[[Peer, int], Awaitable[None]]) -> None:
        self._script = script
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []
        self.connections = 0
        self.errors: list[BaseException] = []
        self.port = 0

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    async def __aenter__(self) -> FakeBroker:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for writer in self._writers:
            writer.close()
        await self._server.wait_closed()
        assert not self.errors, self.errors

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._tasks.add(asyncio.current_task())  # type: ignore[arg-type]
        self._writers.append(writer)
        n, self.connections = self.connections, self.connections + 1
        try:
            await self._script(Peer(reader, writer), n)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        except AssertionError as exc:
            self.errors.append(exc)
        except asyncio.CancelledError:
            pass  # torn down by __aexit__; re-raised, Python 3.11's start_server logs it as an ERROR
        finally:
            writer.close()


async def until(condition: Callable[[], bool], timeout: float = TIMEOUT) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


@pytest.fixture
async def loop_errors():
    """Whatever reaches the event loop's exception handler: it must stay empty."""
    loop = asyncio.get_running_loop()
    seen: list[dict] = []
    loop.set_exception_handler(lambda _loop, context: seen.append(context))
    yield seen
    loop.set_exception_handler(None)


# -- keep-alive -----------------------------------------------------------------------------------
@pytest.mark.parametrize(("ours", "brokers", "publishing"), [(1, None, False), (30, 1, False), (1, None, True)],
                         ids=["ours", "the-brokers", "while-publishing"])
async def test_a_silent_broker_is_noticed_within_one_and_a_half_keepalives(ours, brokers, publishing, loop_errors):
    seen: list = []

    async def script(peer: Peer, n: int) -> None:
        await peer.accept(server_keep_alive=brokers)  # the broker's keep-alive, when it sets one, wins
        while True:  # never answers
            seen.append(await peer.packet())

    async def keep_publishing(bus: Bus) -> None:
        while bus.is_connected:
            await bus.publish("t", b"still here")
            await asyncio.sleep(0.05)

    loop = asyncio.get_running_loop()
    async with FakeBroker(script) as fake, Bus(fake.url, transport="mqtt5", keepalive=ours,
                                               reconnect_delay=(10, 10)) as bus:
        start = loop.time()
        async with asyncio.TaskGroup() as tg:
            if publishing:
                tg.create_task(keep_publishing(bus))
            await until(lambda: not bus.is_connected, timeout=3)
        elapsed = loop.time() - start
    assert 1.2 <= elapsed <= 2.0, elapsed
    published = [p for p in seen if isinstance(p, PublishPacket)]
    assert [type(p) for p in seen if not isinstance(p, PublishPacket)] == [PingReqPacket]
    assert len(published) > 20 if publishing else not published
    assert "no PINGRESP" in (bus.stats.last_error or "") and bus.stats.connection_losses == 1
    assert not loop_errors


async def test_an_idle_connection_stays_up_past_the_keepalive(mosquitto_broker):
    async with Bus(mosquitto_broker.url, transport="mqtt5", keepalive=1) as bus:
        await asyncio.sleep(2.2)  # Mosquitto drops a client silent for 1.5 keep-alives
        assert bus.is_connected and bus.stats.connection_losses == 0


# -- what a broker may get wrong ----------------------------------------------------------------------
@pytest.mark.parametrize(("garbage", "match"), [
    (b"\x00\x00\x00\x00", "malformed packet from the broker"),
    (b"\x30\xff\xff\xff\x7f", "over our maximum packet size"),
    (b"\xc0\x00", "PingReqPacket, which only clients send"),
    (PublishPacket("", b"x", topic_alias=3).write(), "topic alias"),
])
async def test_malformed_bytes_close_the_connection_with_a_clear_error(garbage, match, loop_errors, caplog):
    async def script(peer: Peer, n: int) -> None:
        await peer.accept()
        if n == 0:
            await peer.expect(SubscribePacket)
            peer.send(garbage)
        await peer.serve()

    async with FakeBroker(script) as fake, Bus(fake.url, transport="mqtt5", reconnect_delay=(0.05, 0.1)) as bus:
        with pytest.raises(BusError):
            await bus.subscribe("a/b")
        await until(lambda: bus.stats.connects == 2)  # and the bus carries on
        assert match in (bus.stats.last_error or "")
        async with bus.subscribe("a/b"):
            pass
    assert not loop_errors
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_garbage_instead_of_connack_fails_the_connect(loop_errors):
    async def script(peer: Peer, n: int) -> None:
        await peer.expect(ConnectPacket)
        peer.send(b"\xff\xff\xff\xff\xff")
        await peer.serve()

    async with FakeBroker(script) as fake:
        with pytest.raises(ConnectError, match="malformed packet"):
            async with Bus(fake.url, transport="mqtt5", connect_timeout=0.5):
                pass
    assert not loop_errors


async def test_the_brokers_disconnect_is_the_close_cause(caplog):
    # (Mosquitto 2.0.11 sends none: it closes a taken-over session's socket without a word.)
    async def script(peer: Peer, n: int) -> None:
        await peer.accept()
        peer.send(DisconnectPacket(reason_code=DisconnectReasonCode.SERVER_SHUTTING_DOWN, reason_str="maintenance"))
        await peer.serve()

    async with FakeBroker(script) as fake, Bus(fake.url, transport="mqtt5", reconnect_delay=(10, 10)) as bus:
        await until(lambda: not bus.is_connected)
        assert bus.stats.last_error == "the broker disconnected us: SERVER_SHUTTING_DOWN: maintenance"
    assert "the broker disconnected us: SERVER_SHUTTING_DOWN" in caplog.text


# -- choosing the transport ---------------------------------------------------------------------------
MQTT311_REFUSAL = b"\x20\x02\x00\x01"  # CONNACK, return code 1: unacceptable protocol version
MQTT311_ACCEPT = b"\x20\x02\x00\x00"


@pytest.mark.parametrize("refusal", [MQTT311_REFUSAL,
                                     ConnAckPacket(reason_code=ConnAckReasonCode.UNSUPPORTED_PROTOCOL_VERSION).write(),
                                     b""], ids=["3.1.1-connack", "unsupported-version", "hang-up"])
async def test_auto_falls_back_to_paho_and_remembers(refusal):
    levels: list[int] = []

    async def script(peer: Peer, n: int) -> None:
        connect = await peer.raw()
        levels.append(connect[8])  # the protocol level byte: 5 or 4
        if connect[8] == 5:
            peer.send(refusal)
            return
        peer.send(MQTT311_ACCEPT)
        if n < 2:  # stay until the test has seen it, then hang up once
            while (await peer.raw())[0] != 0xC0:  # PINGREQ ends the first paho session
                pass
        else:
            while True:
                if (await peer.raw())[0] == 0xC0:
                    peer.send(b"\xd0\x00")

    async with FakeBroker(script) as fake, Bus(fake.url, keepalive=1, reconnect_delay=(0.05, 0.1)) as bus:
        assert bus.transport == "paho"
        await until(lambda: bus.stats.connects == 2)
        assert levels == [5, 4, 4]  # after the fallback, straight to MQTT 3.1.1


async def test_the_mqtt5_transport_alone_reports_the_refusal_at_once():
    async def script(peer: Peer, n: int) -> None:
        await peer.raw()
        peer.send(MQTT311_REFUSAL)

    loop = asyncio.get_running_loop()
    async with FakeBroker(script) as fake:
        start = loop.time()
        with pytest.raises(ConnectError, match=r"answered in MQTT 3\.1\.1") as info:
            async with Bus(fake.url, transport="mqtt5", connect_timeout=5):
                pass
        assert info.value.reason is not None and loop.time() - start < 2


async def test_auto_uses_paho_on_the_embedded_brokers_311_port_without_the_hint(embedded_broker):
    url = embedded_broker.url
    url.v5_port = None
    topic = unique()
    async with Bus(url) as bus, bus.subscribe(topic) as sub:
        assert bus.transport == "paho"
        await bus.publish(topic, b"over 3.1.1")
        async with asyncio.timeout(TIMEOUT):
            assert (await sub.get()).payload == b"over 3.1.1"


async def test_auto_uses_mqtt5_where_the_broker_takes_it(broker):
    async with Bus(broker.url) as bus:
        assert bus.transport == "mqtt5"
    async with Bus(broker.url.geturl()) as bus:  # the hint survives the URL as text
        assert bus.transport == "mqtt5"


# -- flow control and sessions ---------------------------------------------------------------------
async def test_no_more_publishes_in_flight_than_the_brokers_receive_maximum():
    before_subscribe: list = []
    later: list = []

    async def script(peer: Peer, n: int) -> None:
        await peer.accept(receive_max=3)
        while not isinstance(packet := await peer.expect(object), SubscribePacket):
            before_subscribe.append(packet)
        peer.send(SubAckPacket(packet.packet_id, [SubAckReasonCode.GRANTED_QOS_AT_MOST_ONCE]))
        peer.send(*(PubAckPacket(p.packet_id) for p in before_subscribe[:2]))
        for _ in range(2):
            later.append(await peer.expect(PublishPacket))
        await peer.serve()

    async with FakeBroker(script) as fake, Bus(fake.url, transport="mqtt5") as bus:
        for i in range(10):
            await bus.publish("t", bytes([i]), qos=1)
        await bus.subscribe("x")  # SUBSCRIBE goes after all ten publishes
        await until(lambda: len(later) == 2)
    assert [p.payload for p in before_subscribe] == [b"\x00", b"\x01", b"\x02"]
    assert [p.payload for p in later] == [b"\x03", b"\x04"]  # one more for each PUBACK


@pytest.mark.parametrize("session_present", [True, False])
async def test_unacknowledged_qos1_goes_again_after_a_reconnect(session_present):
    first: list = []
    again: list = []
    clean_starts: list[bool] = []

    async def script(peer: Peer, n: int) -> None:
        connect = await peer.accept(session_present=n > 0 and session_present)
        clean_starts.append(connect.clean_start)
        if n == 0:
            for _ in range(5):
                first.append(await peer.expect(PublishPacket))
            peer.send(PubAckPacket(first[0].packet_id), PubAckPacket(first[1].packet_id))
            return  # and vanish (the acks arrive first)
        for _ in range(3):
            again.append(packet := await peer.expect(PublishPacket))
            peer.send(PubAckPacket(packet.packet_id))
        await peer.serve()

    async with FakeBroker(script) as fake, Bus(fake.url, transport="mqtt5", clean_start=False, client_id="resume",
                                               reconnect_delay=(0.05, 0.1)) as bus:
        for i in range(5):
            await bus.publish("t", bytes([i]), qos=1)
        await until(lambda: len(again) == 3)
    assert clean_starts == [False, False]
    assert [p.payload for p in again] == [b"\x02", b"\x03", b"\x04"]
    if session_present:  # the same packets again, marked as duplicates
        assert [(p.packet_id, p.duplicate) for p in again] == [(p.packet_id, True) for p in first[2:]]
    else:
        assert not any(p.duplicate for p in again)
    assert bus.stats.connects == 2


async def test_qos2_flows_both_ways():
    incoming_done, done = asyncio.Event(), asyncio.Event()

    async def script(peer: Peer, n: int) -> None:
        await peer.accept()
        subscribe = await peer.expect(SubscribePacket)
        peer.send(SubAckPacket(subscribe.packet_id, [SubAckReasonCode.GRANTED_QOS_EXACTLY_ONCE]))
        peer.send(PublishPacket("in", b"exactly once", qos=Q2, packet_id=7))
        assert (await peer.expect(PubRecPacket)).packet_id == 7
        peer.send(PublishPacket("in", b"exactly once", qos=Q2, packet_id=7, duplicate=True))
        assert (await peer.expect(PubRecPacket)).packet_id == 7
        peer.send(PubRelPacket(7))
        assert (await peer.expect(PubCompPacket)).packet_id == 7
        incoming_done.set()
        publish = await peer.expect(PublishPacket)
        assert (publish.qos, publish.payload) == (Q2, b"out")
        peer.send(PubRecPacket(publish.packet_id))
        assert (await peer.expect(PubRelPacket)).packet_id == publish.packet_id
        peer.send(PubCompPacket(publish.packet_id))
        done.set()
        await peer.serve()

    got: list = []
    async with FakeBroker(script) as fake, Bus(fake.url, transport="mqtt5") as bus:
        await bus.subscribe("in", qos=2, callback=got.append)
        async with asyncio.timeout(TIMEOUT):
            await incoming_done.wait()
            await bus.publish("out", b"out", qos=2)
            await done.wait()
    assert [(m.topic, m.payload, m.qos) for m in got] == [("in", b"exactly once", 2)]


# -- back-pressure ------------------------------------------------------------------------------
async def test_a_full_socket_pauses_reading_and_drain_waits():
    reading = asyncio.Event()

    async def script(peer: Peer, n: int) -> None:
        await peer.accept()
        await reading.wait()  # read nothing until told: the client's socket fills up
        await peer.serve()

    received: list = []
    async with FakeBroker(script) as fake:
        options = ConnectOptions(url=parse_broker_url(fake.url), client_id="pressure")
        conn = await Mqtt5Transport().connect(options, lambda *m: received.append(m))
        try:
            payload = b"x" * 65536
            for _ in range(1000):
                conn.publish("t", payload, 0, False)
                await asyncio.sleep(0)
                if conn._paused:
                    break
            assert conn._paused and conn.write_buffer_size > 256 * 1024
            assert not conn._transport.is_reading()  # nothing more comes in while nothing goes out
            drain = asyncio.ensure_future(conn.drain())
            done, _ = await asyncio.wait({drain}, timeout=0.2)
            assert not done
            reading.set()
            async with asyncio.timeout(TIMEOUT):
                await drain
            assert conn._transport.is_reading()
        finally:
            await conn.disconnect()


# -- real brokers ---------------------------------------------------------------------------------
@pytest.mark.alone  # a timing figure: scripts/test.sh runs it with the machine to itself
async def test_qos1_survives_the_broker_restarting_mid_stream_with_persistent_sessions(tmp_path):
    """Mosquitto keeps both sessions over a restart: every message arrives (those whose acknowledgement
    the restart lost, twice: QoS 1 is at least once)."""
    port, count = free_port(), 20000
    topic = unique("persist")
    got: list[int] = []
    # a receive maximum of 10 (so most messages wait in our session's queue), and no cap on the
    # messages Mosquitto queues for a subscriber (its default of 1000 drops QoS 1 messages beyond)
    extra = "max_inflight_messages 10\nmax_queued_messages 0"
    async with MosquittoBroker(port=port, data_dir=tmp_path, extra_config=extra) as broker:
        sub_bus = Bus(broker.url, transport="mqtt5", client_id=f"sub-{topic[-10:]}", clean_start=False,
                      reconnect_delay=(0.05, 0.2))
        pub = Bus(broker.url, transport="mqtt5", client_id=f"pub-{topic[-10:]}", clean_start=False,
                  reconnect_delay=(0.05, 0.2))
        async with sub_bus, pub, sub_bus.subscribe(topic, qos=1, callback=lambda m: got.append(int(m.payload))):
            for i in range(count):
                await pub.publish(topic, b"%d" % i, qos=1)
            await until(lambda: len(got) > 2000)
            await broker.__aexit__(None, None, None)  # vanishes with messages in flight and queued
            await until(lambda: not pub.is_connected and not sub_bus.is_connected)
            assert len(got) < count
            async with MosquittoBroker(port=port, data_dir=tmp_path, extra_config=extra):
                await until(lambda: len(set(got)) == count, timeout=45)  # 20,000 at 10 in flight: slow when busy
                assert set(got) == set(range(count))
                assert pub.stats.dropped_offline == 0
                assert (pub.stats.connects, pub.stats.connection_losses, sub_bus.stats.connects) == (2, 1, 2)


async def test_qos0_stream_through_a_vanishing_broker_keeps_its_counters_right(tmp_path, loop_errors):
    port = free_port()
    topic = unique("vanish")
    calls = 0
    stop = asyncio.Event()

    async def stream(bus: Bus) -> None:
        nonlocal calls
        while not stop.is_set():
            await bus.publish(topic, b"x" * 64)
            calls += 1
            if calls % 50 == 0:
                await asyncio.sleep(0.001)

    async with MosquittoBroker(port=port, data_dir=tmp_path) as broker, \
            Bus(broker.url, transport="mqtt5", reconnect_delay=(0.05, 0.2)) as bus, \
            asyncio.timeout(20), asyncio.TaskGroup() as tg:
        streaming = tg.create_task(stream(bus))
        await until(lambda: calls > 500)
        await broker.__aexit__(None, None, None)
        await until(lambda: bus.stats.dropped_offline > 0)
        async with MosquittoBroker(port=port, data_dir=tmp_path):
            await bus.wait_connected(timeout=TIMEOUT)
            mark = calls
            await until(lambda: calls > mark + 500)
            stop.set()
            await streaming
            assert bus.stats.published + bus.stats.dropped_offline == calls
            assert bus.stats.connects == 2 and bus.stats.connection_losses == 1
    assert not loop_errors


@pytest.fixture
def tls_files(tmp_path: Path) -> tuple[Path, Path]:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail("openssl is needed to make a test certificate: apt-get install -y openssl")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=30)
    return cert, key


async def test_tls(tls_files, tmp_path, transport):
    cert, key = tls_files
    topic = unique("tls")
    async with EmbeddedBroker(port=free_port(), tls_cert=cert, tls_key=key, data_dir=tmp_path / "b") as broker:
        assert broker.url.scheme == "mqtts"
        async with Bus(broker.url, transport=transport, tls=TLSOptions(ca=cert)) as bus, bus.subscribe(topic) as sub:
            await bus.publish(topic, b"secret", qos=1)
            async with asyncio.timeout(TIMEOUT):
                assert (await sub.get()).payload == b"secret"
        with pytest.raises(ConnectError):  # our CA is not the system's
            async with Bus(broker.url, transport=transport, connect_timeout=1):
                pass


async def test_a_publish_only_bus_is_not_stalled_by_large_payloads(mosquitto_broker):
    """Drain waiters are released when the buffer empties, not only when data arrives."""
    from edge.bus import Bus

    payload = bytes(2 * 1024 * 1024)
    async with Bus(mosquitto_broker.url, transport="mqtt5") as bus:
        loop = asyncio.get_running_loop()
        start = loop.time()
        for _ in range(10):
            await bus.publish("test/big/publish-only", payload)
        assert loop.time() - start < 5  # it used to wait a keep-alive cycle per publish
