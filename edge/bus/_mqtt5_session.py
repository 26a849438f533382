"""The MQTT 5 client protocol as a sans-I/O state machine: bytes in, bytes out, no socket, no loop.

The ``mqtt5`` package (Rust) encodes and decodes every packet; what is ours is the state
around it. :class:`Session` is what outlives one connection: the QoS 1/2 publishes the
broker has not acknowledged (by packet id, in order), those waiting for an in-flight slot,
and the ids of incoming QoS 2 messages between PUBREC and PUBREL. :class:`ClientMachine` is
one connection: :meth:`~ClientMachine.receive` parses every complete packet of a chunk and
dispatches it (messages to the handler, acknowledgements to the session), and everything to
send accumulates in :attr:`~ClientMachine.out` until the I/O layer (``_mqtt5.py``) writes it,
so one batch of input costs one write.

After a reconnect whose CONNACK says the broker kept the session, unacknowledged publishes
go again with DUP set and their old ids (PUBREL for QoS 2 ones the broker already has);
when it did not, they go again as new messages: at-least-once survives both.
"""

from __future__ import annotations

import functools
import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

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
    PubCompReasonCode,
    PublishPacket,
    PubRecPacket,
    PubRelPacket,
    PubRelReasonCode,
    QoS,
    SubAckPacket,
    SubscribePacket,
    TopicFilter,
    UnsubAckPacket,
    UnsubscribePacket,
    Will,
    read,
)

from edge.bus._transport import RECEIVE_MAXIMUM, MessageHandler
from edge.errors import BusError, ConnectError

__all__ = ["MAX_PACKET_SIZE", "BrokerDisconnect", "ClientMachine", "Outgoing", "ProtocolError",
           "ProtocolRefused", "Session"]

log = logging.getLogger("edge.bus")

MAX_PACKET_SIZE = 268_435_455 + 5  # the largest remaining length MQTT can encode, plus the fixed header
# mqtt5's enums are not ints, whatever its stubs say: always truthy, and ``<`` against an int
# raises. Compare them with ``==`` or ``is``, or convert with ``int()``.
_QOS = (QoS.AT_MOST_ONCE, QoS.AT_LEAST_ONCE, QoS.EXACTLY_ONCE)
_QOS0 = QoS.AT_MOST_ONCE
_PINGREQ = PingReqPacket().write()
_MQTT311_RETURN_CODES = {1: "unacceptable protocol version", 2: "identifier rejected", 3: "server unavailable",
                         4: "bad user name or password", 5: "not authorized"}


class ProtocolError(BusError):
    """The broker sent bytes that are not MQTT 5, or broke the protocol; the connection is closed."""

    def __init__(self, message: str, *, reason: DisconnectReasonCode = DisconnectReasonCode.PROTOCOL_ERROR) -> None:
        super().__init__(message)
        self.reason = reason


class ProtocolRefused(ConnectError):
    """The broker does not take MQTT 5 here: it said so, answered in MQTT 3.1.1, or hung up before CONNACK."""


class BrokerDisconnect(BusError, ConnectionError):
    """The broker ended the connection with a DISCONNECT; ``reason`` is its reason code's name."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(slots=True)
class Outgoing:
    """One QoS 1/2 publish until the broker has acknowledged it."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    released: bool = False  # QoS 2: PUBREC came, PUBREL sent, PUBCOMP awaited


class Session:
    """What outlives a connection; one per client id, kept by the transport."""

    def __init__(self, client_id: str) -> None:
        self.client_id = client_id
        self.inflight: dict[int, Outgoing] = {}  # sent, not yet acknowledged; in the order sent
        self.queue: deque[Outgoing] = deque()  # waiting for a slot under the broker's receive maximum
        self.queued_bytes = 0
        self.incoming_qos2: set[int] = set()  # delivered, PUBREL not yet received
        self.next_id = 1


def _ignore_ack(packet_id: int, codes: list[int]) -> None:
    pass


def _nothing() -> None:
    pass


class ClientMachine:
    """One connection's protocol state; the I/O layer feeds :meth:`receive` and writes :attr:`out`."""

    def __init__(self, session: Session, on_message: MessageHandler, *, max_packet_size: int | None = None,
                 receive_maximum: int = RECEIVE_MAXIMUM) -> None:
        if not 1 <= receive_maximum <= 65535:
            raise BusError(f"the receive maximum is 1 to 65535, not {receive_maximum}")
        self.session = session
        self.out = bytearray()
        #: SUBACK/UNSUBACK: (packet id, reason codes)
        self.on_ack: Callable[[int, list[int]], None] = _ignore_ack
        self.connected = False
        self.connack: ConnAckPacket | None = None
        self.ping_outstanding = False
        self.receive_max = 65535
        self.max_out = MAX_PACKET_SIZE  # the broker's maximum packet size
        self.max_in = min(max_packet_size or MAX_PACKET_SIZE, MAX_PACKET_SIZE)
        #: our CONNECT's Receive Maximum: QoS 1/2 messages the broker may send before we acknowledge
        self.receive_max_in = receive_maximum
        #: QoS 1 messages whose handler deferred their PUBACK (:meth:`ack`), by packet id; this
        #: connection's only: a later one's broker sends them again
        self.deferred: set[int] = set()
        #: called when :meth:`ack` queued a PUBACK outside :meth:`receive` (the I/O layer writes it)
        self.on_output: Callable[[], None] = _nothing
        #: times the broker had more unacknowledged messages out to us than our receive maximum
        self.over_window = 0
        self._on_message = on_message
        self._buf = bytearray()
        self._pending_acks: set[int] = set()
        self._handlers: dict[type, Callable[[Any], None]] = {
            ConnAckPacket: self._on_connack,
            PublishPacket: self._on_publish,
            PubAckPacket: self._on_puback,
            PubRecPacket: self._on_pubrec,
            PubRelPacket: self._on_pubrel,
            PubCompPacket: self._on_pubcomp,
            SubAckPacket: self._on_ack,
            UnsubAckPacket: self._on_ack,
            PingRespPacket: self._on_pingresp,
            DisconnectPacket: self._on_disconnect,
        }

    # -- sending ------------------------------------------------------------------------------
    def connect(self, *, clean_start: bool, keepalive: int, username: str | None = None,
                password: str | None = None, will: Will | None = None, session_expiry: int = 0xFFFFFFFF) -> None:
        """Queue CONNECT; a session kept by the broker (clean_start False) lasts ``session_expiry`` s
        after the connection ends (0xFFFFFFFF: forever)."""
        self.out += ConnectPacket(
            self.session.client_id, username=username,
            password=password.encode() if password is not None else None, clean_start=clean_start,
            will=will, keep_alive=keepalive, session_expiry_interval=0 if clean_start else session_expiry,
            max_packet_size=self.max_in if self.max_in < MAX_PACKET_SIZE else None,
            receive_max=self.receive_max_in,
        ).write()

    def publish(self, topic: str, payload: bytes, qos: int, retain: bool) -> None:
        """Queue a PUBLISH; QoS 1/2 beyond the broker's receive maximum wait in the session."""
        if type(payload) is not bytes:
            payload = bytes(payload)
        if not qos:
            data = (PublishPacket(topic, payload, retain=True) if retain else PublishPacket(topic, payload)).write()
            if len(data) > self.max_out:
                raise BusError(f"a {len(data)}-byte PUBLISH to {topic!r} exceeds the broker's maximum packet "
                               f"size {self.max_out}")
            self.out += data
            return
        if len(payload) + len(topic) * 4 + 16 > self.max_out:
            raise BusError(f"a {len(payload)}-byte payload to {topic!r} exceeds the broker's maximum packet "
                           f"size {self.max_out}")
        entry = Outgoing(topic, payload, qos, retain)
        session = self.session
        if self.connected and not session.queue and len(session.inflight) < self.receive_max:
            self._send_new(entry)
        else:
            session.queue.append(entry)
            session.queued_bytes += len(payload)

    def subscribe(self, filters: Sequence[tuple[str, int]]) -> int:
        """Queue SUBSCRIBE; returns its packet id. Retained flags as in MQTT 3.1.1 (set on retained
        messages sent for a new subscription only), so both transports deliver the same."""
        packet_id = self._new_id()
        self._pending_acks.add(packet_id)
        self.out += SubscribePacket(packet_id, [TopicFilter(f, max_qos=_QOS[q], retain_as_published=False)
                                                for f, q in filters]).write()
        return packet_id

    def unsubscribe(self, filters: Sequence[str]) -> int:
        packet_id = self._new_id()
        self._pending_acks.add(packet_id)
        self.out += UnsubscribePacket(packet_id, list(filters)).write()
        return packet_id

    def ack(self, packet_id: int) -> bool:
        """Queue the PUBACK of a QoS 1 message whose handler deferred it (and tell :attr:`on_output`);
        False, nothing sent, if this connection holds no such message (acknowledged already, or the
        connection is over: the broker sends it again on the next one)."""
        if not self.connected or packet_id not in self.deferred:
            return False
        self.deferred.discard(packet_id)
        self.out += PubAckPacket(packet_id).write()
        self.on_output()
        return True

    def forget_ack(self, packet_id: int) -> None:
        """Give up waiting for a SUBACK/UNSUBACK (its id becomes free again)."""
        self._pending_acks.discard(packet_id)

    def ping(self) -> None:
        self.out += _PINGREQ
        self.ping_outstanding = True

    def disconnect(self, reason: DisconnectReasonCode = DisconnectReasonCode.NORMAL_DISCONNECTION) -> None:
        self.out += DisconnectPacket(reason_code=reason).write()

    def connection_lost(self) -> None:
        self.connected = False
        self._pending_acks.clear()
        self.deferred.clear()
        self._buf = bytearray()

    @property
    def pending_bytes(self) -> int:
        """Bytes not yet handed to the I/O layer, QoS 1/2 payloads waiting for a slot included."""
        return len(self.out) + self.session.queued_bytes

    def _new_id(self) -> int:
        session = self.session
        packet_id = session.next_id
        for _ in range(65535):
            if packet_id not in session.inflight and packet_id not in self._pending_acks:
                session.next_id = packet_id % 65535 + 1
                return packet_id
            packet_id = packet_id % 65535 + 1
        raise BusError("all 65535 packet ids are in use")

    def _send_new(self, entry: Outgoing) -> None:
        packet_id = self._new_id()
        self.session.inflight[packet_id] = entry
        self.out += PublishPacket(entry.topic, entry.payload, qos=_QOS[entry.qos], retain=entry.retain,
                                  packet_id=packet_id).write()

    def _fill(self) -> None:
        session = self.session
        queue = session.queue
        while queue and len(session.inflight) < self.receive_max:
            entry = queue.popleft()
            session.queued_bytes -= len(entry.payload)
            self._send_new(entry)

    # -- receiving ----------------------------------------------------------------------------
    def receive(self, data: bytes) -> None:
        """Handle every complete packet in ``data`` (after what an earlier chunk left over).

        Raises :class:`ProtocolError`, :class:`BrokerDisconnect` or a :class:`ConnectError`
        (refused CONNACK); the connection is over then.
        """
        buf = self._buf
        if buf:
            buf += data
        chunk = buf if buf else data
        view = memoryview(chunk)
        end = len(view)
        pos = 0
        connected = self.connected
        on_message = self._on_message
        handlers = self._handlers
        try:
            while pos < end:
                try:
                    packet, size = read(view[pos:])
                except IndexError:  # an incomplete packet: wait for the rest
                    self._check_partial(view, pos)
                    break
                except ValueError as exc:
                    raise self._malformed(view, pos, exc) from None
                pos += size
                # the hot path: QoS 0 (``is``: mqtt5 hands out its class's members; others take the slow path)
                if type(packet) is PublishPacket and connected and packet.qos is _QOS0 and packet.topic:
                    on_message(packet.topic, packet.payload, 0, packet.retain)
                else:
                    handler = handlers.get(type(packet))
                    if handler is None:
                        raise ProtocolError(f"the broker sent a {type(packet).__name__}, which only clients send")
                    handler(packet)
                    connected = self.connected
            if pos < end and chunk is not buf:
                buf += view[pos:]
        finally:
            view.release()
        if chunk is buf:
            del buf[:pos]

    def _check_partial(self, view: memoryview, pos: int) -> None:
        """Refuse a packet announced bigger than we accept before buffering it."""
        length = 0
        for i, byte in enumerate(view[pos + 1 : pos + 5]):
            length |= (byte & 0x7F) << (7 * i)
            if not byte & 0x80:
                if length + i + 2 > self.max_in:
                    raise ProtocolError(f"the broker announced a {length + i + 2}-byte packet, over our maximum "
                                        f"packet size {self.max_in}", reason=DisconnectReasonCode.PACKET_TOO_LARGE)
                return

    def _malformed(self, view: memoryview, pos: int, exc: ValueError) -> BusError:
        head = bytes(view[pos : pos + 16])
        if not self.connected and len(head) >= 4 and head[0] == 0x20 and head[1] == 2:
            code = head[3]
            return ProtocolRefused(f"the broker answered in MQTT 3.1.1 (CONNACK return code {code}: "
                                   f"{_MQTT311_RETURN_CODES.get(code, 'accepted')})", reason="MQTT 3.1.1 only")
        return ProtocolError(f"malformed packet from the broker ({exc}); it starts with {head.hex(' ')}",
                             reason=DisconnectReasonCode.MALFORMED_PACKET)

    def _on_connack(self, packet: ConnAckPacket) -> None:
        if self.connack is not None:
            raise ProtocolError("a second CONNACK")
        code = packet.reason_code
        if code != ConnAckReasonCode.SUCCESS:
            detail = f"{code.name}" + (f": {packet.reason_str}" if packet.reason_str else "")
            if code == ConnAckReasonCode.UNSUPPORTED_PROTOCOL_VERSION:
                raise ProtocolRefused(f"the broker does not take MQTT 5 ({detail})", reason=code.name)
            raise ConnectError(f"the broker refused the connection: {detail}", reason=code.name)
        self.connack = packet
        self.connected = True
        self.receive_max = packet.receive_max or 65535
        self.max_out = packet.max_packet_size or MAX_PACKET_SIZE
        session = self.session
        if packet.assigned_client_id:
            session.client_id = packet.assigned_client_id
        if packet.session_present:
            for packet_id, entry in session.inflight.items():
                if entry.released:
                    self.out += PubRelPacket(packet_id).write()
                else:
                    self.out += PublishPacket(entry.topic, entry.payload, qos=_QOS[entry.qos], retain=entry.retain,
                                              packet_id=packet_id, duplicate=True).write()
        else:
            # A new session: ids mean nothing now. What the broker never acknowledged goes again as
            # new messages, first; a QoS 2 message it already has (PUBREC came) is not sent twice.
            again = [entry for entry in session.inflight.values() if not entry.released]
            session.inflight.clear()
            session.incoming_qos2.clear()
            session.queue.extendleft(reversed(again))
            session.queued_bytes += sum(len(entry.payload) for entry in again)
        self._fill()

    def _on_publish(self, packet: PublishPacket) -> None:
        if not self.connected:
            raise ProtocolError("a PUBLISH before CONNACK")
        topic = packet.topic
        if not topic:
            raise ProtocolError("a PUBLISH with a topic alias, which we never allowed",
                                reason=DisconnectReasonCode.TOPIC_ALIAS_INVALID)
        qos = packet.qos
        packet_id = packet.packet_id
        assert packet_id is not None  # mqtt5 refuses QoS 1/2 packets without one
        if qos == QoS.AT_LEAST_ONCE:
            deferred = self.deferred
            if packet_id in deferred:  # a resend (DUP) of one we hold: it is delivered already
                return
            held = self._on_message(topic, packet.payload, 1, packet.retain)
            if held is not None and held.defer(functools.partial(self.ack, packet_id)):
                deferred.add(packet_id)
                if len(deferred) > self.receive_max_in:
                    # MQTT 5 lets us disconnect (0x93); we count it instead: the broker's own limit
                    # still bounds what it sends, and a held message is worth more than the connection
                    self.over_window += 1
            else:
                self.out += PubAckPacket(packet_id).write()
        elif qos == QoS.EXACTLY_ONCE:
            incoming = self.session.incoming_qos2
            if packet_id not in incoming:  # else a redelivery of one we have: acknowledge, do not deliver
                incoming.add(packet_id)
                self._on_message(topic, packet.payload, 2, packet.retain)
            self.out += PubRecPacket(packet_id).write()
        else:
            self._on_message(topic, packet.payload, 0, packet.retain)

    def _settled(self, packet_id: int, what: str) -> Outgoing | None:
        entry = self.session.inflight.pop(packet_id, None)
        if entry is None:
            log.debug("%s for unknown packet id %d ignored", what, packet_id)
        return entry

    def _on_puback(self, packet: PubAckPacket) -> None:
        entry = self._settled(packet.packet_id, "PUBACK")
        if entry is not None and int(packet.reason_code) >= 0x80:
            log.warning("%s: the broker refused a message to %r: %s%s", self.session.client_id, entry.topic,
                        packet.reason_code.name, f" ({packet.reason_str})" if packet.reason_str else "")
        self._fill()

    def _on_pubrec(self, packet: PubRecPacket) -> None:
        entry = self.session.inflight.get(packet.packet_id)
        if entry is None or entry.qos != 2:
            log.debug("PUBREC for unknown packet id %d", packet.packet_id)
            self.out += PubRelPacket(packet.packet_id, reason_code=PubRelReasonCode.PACKET_ID_NOT_FOUND).write()
            return
        if int(packet.reason_code) >= 0x80:
            self._settled(packet.packet_id, "PUBREC")
            log.warning("%s: the broker refused a message to %r: %s", self.session.client_id, entry.topic,
                        packet.reason_code.name)
            self._fill()
            return
        entry.released = True
        self.out += PubRelPacket(packet.packet_id).write()

    def _on_pubcomp(self, packet: PubCompPacket) -> None:
        self._settled(packet.packet_id, "PUBCOMP")
        self._fill()

    def _on_pubrel(self, packet: PubRelPacket) -> None:
        incoming = self.session.incoming_qos2
        if packet.packet_id in incoming:
            incoming.discard(packet.packet_id)
            self.out += PubCompPacket(packet.packet_id).write()
        else:
            self.out += PubCompPacket(packet.packet_id, reason_code=PubCompReasonCode.PACKET_ID_NOT_FOUND).write()

    def _on_ack(self, packet: SubAckPacket | UnsubAckPacket) -> None:
        self._pending_acks.discard(packet.packet_id)
        self.on_ack(packet.packet_id, [int(code) for code in packet.reason_codes])

    def _on_pingresp(self, packet: PingRespPacket) -> None:
        self.ping_outstanding = False

    def _on_disconnect(self, packet: DisconnectPacket) -> None:
        code = packet.reason_code
        detail = code.name + (f": {packet.reason_str}" if packet.reason_str else "")
        if packet.server_reference:
            detail += f" (use {packet.server_reference})"
        raise BrokerDisconnect(f"the broker disconnected us: {detail}", reason=code.name)
