"""The MQTT 5 client state machine without any I/O: bytes in, messages and bytes out."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mqtt5 import (
    ConnAckPacket,
    ConnAckReasonCode,
    ConnectPacket,
    DisconnectPacket,
    DisconnectReasonCode,
    PubAckPacket,
    PubCompPacket,
    PublishPacket,
    PubRecPacket,
    PubRelPacket,
    QoS,
    SubAckPacket,
    SubAckReasonCode,
    SubscribePacket,
    Will,
    read,
)

from edge.bus._mqtt5_session import BrokerDisconnect, ClientMachine, ProtocolError, ProtocolRefused, Session
from edge.errors import BusError, ConnectError

Q1, Q2 = QoS.AT_LEAST_ONCE, QoS.EXACTLY_ONCE


def packets(data: bytes | bytearray) -> list:
    """Every packet in ``data`` (what the machine wrote)."""
    out, view, pos = [], memoryview(bytes(data)), 0
    while pos < len(view):
        packet, size = read(view[pos:])
        out.append(packet)
        pos += size
    return out


def take(machine: ClientMachine) -> list:
    sent = packets(machine.out)
    machine.out = bytearray()
    return sent


def connected(session: Session | None = None, *, received: list | None = None, accept: int | None = None,
              **connack) -> ClientMachine:
    """A machine past CONNECT/CONNACK (``connack``: its fields), with what it wrote so far taken."""
    sink = received if received is not None else []
    machine = ClientMachine(session or Session("c"), lambda *m: sink.append(m), max_packet_size=accept)
    machine.connect(clean_start=True, keepalive=15)
    machine.receive(ConnAckPacket(**connack).write())
    take(machine)
    return machine


STREAM = [PublishPacket("a/b", b"x" * n) for n in (0, 1, 100, 127, 128, 16_383, 16_384, 200_000)] + [
    PublishPacket("q/1", b"one", qos=Q1, packet_id=9), PublishPacket("r", b"kept", retain=True)]
EXPECTED = [("a/b", b"x" * n, 0, False) for n in (0, 1, 100, 127, 128, 16_383, 16_384, 200_000)] + [
    ("q/1", b"one", 1, False), ("r", b"kept", 0, True)]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=len(b"".join(p.write() for p in STREAM))), max_size=12))
def test_any_split_of_the_stream_gives_the_same_messages(cuts):
    data = ConnAckPacket().write() + b"".join(p.write() for p in STREAM)
    received: list = []
    machine = ClientMachine(Session("c"), lambda *m: received.append(m))
    machine.connect(clean_start=True, keepalive=15)
    bounds = [0, *sorted(set(cuts)), len(data)]
    for start, end in itertools.pairwise(bounds):
        machine.receive(data[start:end])
    assert received == EXPECTED
    assert next(p for p in take(machine) if isinstance(p, PubAckPacket)).packet_id == 9


def test_byte_by_byte():
    data = ConnAckPacket().write() + b"".join(p.write() for p in STREAM[:6])
    received: list = []
    machine = ClientMachine(Session("c"), lambda *m: received.append(m))
    for i in range(len(data)):
        machine.receive(data[i : i + 1])
    assert received == EXPECTED[:6]


def test_connect_carries_session_will_and_credentials():
    machine = ClientMachine(Session("dev-1"), lambda *m: None, max_packet_size=1 << 20)
    machine.connect(clean_start=False, keepalive=7, username="u", password="p",
                    will=Will("w/t", payload=b"gone", qos=Q1, retain=True))
    [connect] = packets(machine.out)
    assert isinstance(connect, ConnectPacket)
    assert (connect.client_id, connect.clean_start, connect.keep_alive) == ("dev-1", False, 7)
    assert connect.session_expiry_interval == 0xFFFFFFFF and connect.max_packet_size == 1 << 20
    assert (connect.username, connect.password) == ("u", b"p")
    assert connect.will is not None and (connect.will.topic, connect.will.retain) == ("w/t", True)


def test_an_assigned_client_id_is_the_sessions_from_then_on():
    session = Session("")
    connected(session, assigned_client_id="given-by-broker")
    again = ClientMachine(session, lambda *m: None)
    again.connect(clean_start=False, keepalive=15)
    [connect] = packets(again.out)
    assert connect.client_id == "given-by-broker"


def test_receive_maximum_queues_publishes_until_acknowledged():
    machine = connected(receive_max=2)
    for i in range(5):
        machine.publish("t", bytes([i]), 1, False)
    first = take(machine)
    assert [p.payload for p in first] == [b"\x00", b"\x01"]
    assert machine.session.queued_bytes == 3
    machine.receive(PubAckPacket(first[0].packet_id).write())
    assert [p.payload for p in take(machine)] == [b"\x02"]
    machine.receive(PubAckPacket(first[1].packet_id).write())
    assert [p.payload for p in take(machine)] == [b"\x03"]


@pytest.mark.parametrize("present", [True, False])
def test_unacknowledged_publishes_go_again_after_a_reconnect(present):
    session = Session("c")
    machine = connected(session)
    for i in range(3):
        machine.publish("t", bytes([i]), 1, False)
    sent = take(machine)
    machine.receive(PubAckPacket(sent[0].packet_id).write())
    machine.connection_lost()

    again = ClientMachine(session, lambda *m: None)
    again.connect(clean_start=False, keepalive=15)
    take(again)
    again.receive(ConnAckPacket(session_present=present).write())
    resent = take(again)
    assert [p.payload for p in resent] == [b"\x01", b"\x02"]
    if present:  # same ids, DUP set
        assert [(p.packet_id, p.duplicate) for p in resent] == [(p.packet_id, True) for p in sent[1:]]
    else:  # a new session: sent as new messages
        assert not any(p.duplicate for p in resent)


def test_qos2_both_ways():
    received: list = []
    machine = connected(received=received)
    incoming = PublishPacket("in", b"2", qos=Q2, packet_id=7)
    machine.receive(incoming.write())
    machine.receive(PublishPacket("in", b"2", qos=Q2, packet_id=7, duplicate=True).write())  # redelivered
    assert received == [("in", b"2", 2, False)]  # delivered once
    assert [type(p) for p in take(machine)] == [PubRecPacket, PubRecPacket]
    machine.receive(PubRelPacket(7).write())
    [comp] = take(machine)
    assert isinstance(comp, PubCompPacket) and comp.packet_id == 7

    machine.publish("out", b"x", 2, False)
    [publish] = take(machine)
    machine.receive(PubRecPacket(publish.packet_id).write())
    [rel] = take(machine)
    assert isinstance(rel, PubRelPacket) and rel.packet_id == publish.packet_id
    machine.receive(PubCompPacket(publish.packet_id).write())
    assert not machine.session.inflight


def test_packet_ids_wrap_and_skip_those_in_use():
    session = Session("c")
    session.next_id = 65534
    machine = connected(session)
    machine.publish("t", b"a", 1, False)
    machine.publish("t", b"b", 1, False)
    first, second = take(machine)
    assert (first.packet_id, second.packet_id) == (65534, 65535)
    session.next_id = 65534  # as after many more: 65534 and 65535 still wait for PUBACK
    assert machine.subscribe([("x", 0)]) == 1
    [sub] = take(machine)
    assert isinstance(sub, SubscribePacket) and sub.topic_filters[0].retain_as_published is False


def test_suback_reaches_its_waiter():
    machine = connected()
    acks: list = []
    machine.on_ack = lambda pid, codes: acks.append((pid, codes))
    pid = machine.subscribe([("a", 1), ("b", 0)])
    machine.receive(SubAckPacket(pid, [SubAckReasonCode.GRANTED_QOS_AT_LEAST_ONCE,
                                       SubAckReasonCode.NOT_AUTHORIZED]).write())
    assert acks == [(pid, [1, 0x87])]


def test_the_brokers_limits_are_kept():
    machine = connected(max_packet_size=100)
    with pytest.raises(BusError, match="maximum packet size"):
        machine.publish("t", b"x" * 200, 0, False)
    with pytest.raises(BusError, match="maximum packet size"):
        machine.publish("t", b"x" * 200, 1, False)
    machine.publish("t", b"x" * 50, 0, False)
    assert len(take(machine)) == 1


@pytest.mark.parametrize(("data", "error", "match"), [
    (b"\x20\x02\x00\x01", ProtocolRefused, "MQTT 3.1.1"),
    (ConnAckPacket(reason_code=ConnAckReasonCode.UNSUPPORTED_PROTOCOL_VERSION).write(),
     ProtocolRefused, "UNSUPPORTED_PROTOCOL_VERSION"),
    (ConnAckPacket(reason_code=ConnAckReasonCode.NOT_AUTHORIZED).write(), ConnectError,
     "NOT_AUTHORIZED"),
    (b"\x00\x00", ProtocolError, "malformed"),
    (PublishPacket("t", b"early").write(), ProtocolError, "before CONNACK"),
])
def test_bad_answers_to_connect(data, error, match):
    machine = ClientMachine(Session("c"), lambda *m: None)
    machine.connect(clean_start=True, keepalive=15)
    with pytest.raises(error, match=match):
        machine.receive(data)


@pytest.mark.parametrize(("data", "error", "match"), [
    (b"\x30\xff\xff\x7f", ProtocolError, "2097155-byte packet, over our maximum packet size 1048576"),
    (b"\xc0\x00", ProtocolError, "only clients send"),
    (b"\xf0\x00", ProtocolError, "malformed"),
    (PublishPacket("", b"x", topic_alias=1).write(), ProtocolError, "topic alias"),
    (DisconnectPacket(reason_code=DisconnectReasonCode.SESSION_TAKEN_OVER, reason_str="another client").write(),
     BrokerDisconnect, "SESSION_TAKEN_OVER: another client"),
])
def test_bad_packets_after_connect(data, error, match):
    machine = connected(accept=1 << 20)
    with pytest.raises(error, match=match):
        machine.receive(data)


# -- deferred acknowledgements (a task input that waits: edge._inbox Policy.WAIT) ----------------------
class Holder:
    """A handler's Deferral: holds every QoS 1 message while ``holding``, keeps each release."""

    def __init__(self, *, holding: bool = True) -> None:
        self.holding = holding
        self.releases: list = []
        self.messages: list = []

    def handler(self, *message):
        self.messages.append(message)
        return self if message[2] == 1 else None

    def defer(self, release) -> bool:
        if self.holding:
            self.releases.append(release)
        return self.holding


def holding_machine(holder: Holder, *, receive_maximum: int = 64) -> ClientMachine:
    machine = ClientMachine(Session("c"), holder.handler, receive_maximum=receive_maximum)
    machine.connect(clean_start=True, keepalive=15)
    machine.receive(ConnAckPacket().write())
    take(machine)
    return machine


def test_connect_announces_our_receive_maximum():
    machine = ClientMachine(Session("c"), lambda *m: None, receive_maximum=7)
    machine.connect(clean_start=True, keepalive=15)
    [connect] = packets(machine.out)
    assert connect.receive_max == 7
    with pytest.raises(BusError, match="receive maximum"):
        ClientMachine(Session("c"), lambda *m: None, receive_maximum=0)


def test_a_held_message_is_acknowledged_when_released_once():
    holder, woken = Holder(), []
    machine = holding_machine(holder)
    machine.on_output = lambda: woken.append(1)
    machine.receive(PublishPacket("in", b"a", qos=Q1, packet_id=5).write()
                    + PublishPacket("in", b"b", qos=Q1, packet_id=6).write())
    assert [m[1] for m in holder.messages] == [b"a", b"b"]
    assert take(machine) == [] and machine.deferred == {5, 6}
    holder.releases[1]()  # out of order: brokers match acks by packet id
    [ack] = take(machine)
    assert isinstance(ack, PubAckPacket) and ack.packet_id == 6 and woken == [1]
    holder.releases[1]()  # a second release of the same message sends nothing
    assert take(machine) == [] and woken == [1]
    holder.releases[0]()
    assert [p.packet_id for p in take(machine)] == [5] and machine.deferred == set()


def test_a_message_its_holders_took_at_once_is_acknowledged_at_once():
    holder = Holder(holding=False)
    machine = holding_machine(holder)
    machine.receive(PublishPacket("in", b"a", qos=Q1, packet_id=5).write())
    [ack] = take(machine)
    assert isinstance(ack, PubAckPacket) and ack.packet_id == 5 and machine.deferred == set()


def test_qos0_and_qos2_are_never_held():
    holder = Holder()
    machine = holding_machine(holder)
    machine.receive(PublishPacket("in", b"zero").write() + PublishPacket("in", b"two", qos=Q2, packet_id=8).write())
    assert [m[1:3] for m in holder.messages] == [(b"zero", 0), (b"two", 2)]
    assert [type(p) for p in take(machine)] == [PubRecPacket] and holder.releases == []


def test_held_acks_die_with_their_connection():
    holder = Holder()
    machine = holding_machine(holder)
    machine.receive(PublishPacket("in", b"a", qos=Q1, packet_id=5).write())
    machine.connection_lost()
    holder.releases[0]()  # the broker sends it again on the next connection: no PUBACK on a dead one
    assert take(machine) == [] and machine.deferred == set()


def test_a_resent_held_message_is_not_delivered_twice_and_a_broker_over_our_window_is_counted():
    holder = Holder()
    machine = holding_machine(holder, receive_maximum=2)
    machine.receive(b"".join(PublishPacket("in", bytes([i]), qos=Q1, packet_id=i + 1).write() for i in range(3)))
    machine.receive(PublishPacket("in", b"\x00", qos=Q1, packet_id=1, duplicate=True).write())
    assert [m[1] for m in holder.messages] == [b"\x00", b"\x01", b"\x02"]
    assert machine.over_window == 1 and machine.connected  # counted, not a reason to hang up
    assert take(machine) == []
