"""CPU time per relayed message, with no broker and no socket: what each transport costs by itself.

Recorded PUBLISH packets (frames made with ``edge.frames.encode_frame``, 64 KiB read chunks)
are fed into each transport's receive path; a relay handler decodes the frame, adds 1 to
its value, encodes it and publishes it; the output is collected in memory and checked.

* ``frames only``: the handler alone (decode, add, encode), no MQTT at all: the floor;
* ``mqtt5``: ``Mqtt5Connection.data_received`` (the ``mqtt5`` codec and our state machine),
  publishing through the connection; output written to an in-memory asyncio transport;
* ``paho``: paho's packet reader driven through ``_BufferedSocket`` over a fake socket, as
  the paho transport drives it from the event loop, publishing through the connection;
* ``… + bus``: the same through ``edge.bus.Bus`` (routing to a subscription callback,
  ``publish_nowait``), as a relay written against the public API pays.

Prints one line per path: ``<path> <µs> us/msg`` (CPU time, ``time.process_time``, best of
the rounds), and the machine on the first line.

    python bench/cpu.py [--messages 100000] [--rounds 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bus import machine

from edge.bus import Bus, Message
from edge.frames import decode_frame, encode_frame

IN, OUT = "edge/v1/bench/relay/in", "edge/v1/bench/relay/out"
CHUNK = 64 * 1024


def relay_payload(payload: bytes) -> bytes:
    frame = decode_frame(payload)
    return encode_frame(frame.value + 1, ts=frame.ts, seq=frame.seq)


def _frames(n: int) -> list[bytes]:
    return [encode_frame(i, ts=1_700_000_000_000 + i, seq=i) for i in range(n)]


def _chunks(data: bytes) -> list[bytes]:
    return [data[i : i + CHUNK] for i in range(0, len(data), CHUNK)]


def _v311_publish(topic: str, payload: bytes) -> bytes:
    from edge.bus._paho import _remaining_length

    head = len(topic).to_bytes(2, "big") + topic.encode()
    return b"\x30" + _remaining_length(len(head) + len(payload)) + head + payload


def _check(out: bytes | bytearray, n: int, read: Callable[[memoryview], tuple[str, bytes, int]]) -> None:
    """Every relayed message is in ``out``, in order, value plus one."""
    view, pos, count = memoryview(out), 0, 0
    while pos < len(view):
        topic, payload, size = read(view[pos:])
        assert topic == OUT and decode_frame(payload).value == count + 1, (topic, count)
        pos += size
        count += 1
    assert count == n, (count, n)


# -- frames only ------------------------------------------------------------------------------------
async def frames_only(n: int) -> float:
    frames = _frames(n)
    out = []
    t0 = time.process_time()
    for payload in frames:
        out.append(relay_payload(payload))
    return time.process_time() - t0


# -- the MQTT 5 transport ------------------------------------------------------------------------------
class MemoryTransport(asyncio.Transport):
    """Where the connection writes: kept in memory."""

    def __init__(self) -> None:
        super().__init__()
        self.out = bytearray()

    def write(self, data: Any) -> None:
        self.out += data

    def get_write_buffer_size(self) -> int:
        return 0

    def is_closing(self) -> bool:
        return False

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass


async def mqtt5(n: int, via_bus: bool) -> float:
    from mqtt5 import ConnAckPacket, PublishPacket, read

    from edge.bus._mqtt5 import Mqtt5Connection
    from edge.bus._mqtt5_session import ClientMachine, Session

    chunks = _chunks(b"".join(PublishPacket(IN, p).write() for p in _frames(n)))
    loop = asyncio.get_running_loop()
    conn: Mqtt5Connection

    def direct(topic: str, payload: bytes, qos: int, retain: bool) -> None:
        conn.publish(OUT, relay_payload(payload), 0, False)

    bus, handler = _relay_bus("mqtt5") if via_bus else (None, direct)
    conn = Mqtt5Connection(loop, ClientMachine(Session("bench"), handler), keepalive=0)
    transport = MemoryTransport()
    conn.connection_made(transport)
    conn.data_received(ConnAckPacket().write())
    await conn.connack
    if bus is not None:
        await _attach(bus, conn)
    transport.out.clear()

    t0 = time.process_time()
    for chunk in chunks:
        conn.data_received(chunk)
    spent = time.process_time() - t0

    def read_one(view: memoryview) -> tuple[str, bytes, int]:
        packet, size = read(view)
        return packet.topic, packet.payload, size

    _check(transport.out, n, read_one)
    return spent


# -- the paho transport ---------------------------------------------------------------------------------
class FakeSocket:
    """What ``_BufferedSocket`` wraps: reads served from recorded chunks, writes kept in memory."""

    def __init__(self) -> None:
        self.inbox: deque[bytes] = deque()
        self.out = bytearray()

    def recv(self, bufsize: int) -> bytes:
        if self.inbox:
            return self.inbox.popleft()
        raise BlockingIOError

    def send(self, data: Any) -> int:
        self.out += data
        return len(data)

    def setsockopt(self, *args: Any) -> None:
        pass

    def fileno(self) -> int:
        return -1

    def close(self) -> None:
        pass


async def paho(n: int, via_bus: bool) -> float:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from edge.bus._paho import _BufferedSocket, _Client, _PahoConnection

    chunks = _chunks(b"".join(_v311_publish(IN, p) for p in _frames(n)))
    loop = asyncio.get_running_loop()
    client = _Client(CallbackAPIVersion.VERSION2, client_id="bench", protocol=mqtt.MQTTv311)
    fake = FakeSocket()
    sock = _BufferedSocket(fake)
    sock.attach(loop)
    client._sock = sock
    conn = _PahoConnection(client, loop)

    def direct(topic: str, payload: bytes, qos: int, retain: bool) -> None:
        conn.publish(OUT, relay_payload(payload), 0, False)

    bus, handler = _relay_bus("paho") if via_bus else (None, direct)
    conn.bind(handler)
    conn._sock = sock
    if bus is not None:
        await _attach(bus, conn)
    fake.inbox.extend(chunks)

    t0 = time.process_time()
    for _ in chunks:
        conn._on_readable()  # what the event loop calls when the socket is readable
        sock._flush()  # and the flush it would run before the next select
    spent = time.process_time() - t0
    await asyncio.sleep(0)  # the flushes scheduled meanwhile (now empty)

    def read_one(view: memoryview) -> tuple[str, bytes, int]:
        length, shift, i = 0, 0, 1
        while True:
            byte = view[i]
            length |= (byte & 0x7F) << shift
            shift, i = shift + 7, i + 1
            if not byte & 0x80:
                break
        topic_len = int.from_bytes(view[i : i + 2], "big")
        topic = bytes(view[i + 2 : i + 2 + topic_len]).decode()
        return topic, bytes(view[i + 2 + topic_len : i + length]), i + length

    _check(fake.out, n, read_one)
    return spent


# -- a relay through the bus ---------------------------------------------------------------------------
def _relay_bus(transport: str) -> tuple[Bus, Callable[[str, bytes, int, bool], None]]:
    """A bus never entered, and the handler its transport would be given; see :func:`_attach`."""
    bus = Bus("mqtt://127.0.0.1:1", transport=transport)  # type: ignore[arg-type]
    return bus, bus._on_message


async def _attach(bus: Bus, conn: Any) -> None:
    """Subscribe the relay (no connection yet: registered only), then hand the bus ``conn`` as a connect would."""

    def relay(message: Message) -> None:
        bus.publish_nowait(OUT, relay_payload(message.payload))

    await bus.subscribe(IN, callback=relay)
    bus._conn = conn
    bus._connected.set()


PATHS: dict[str, Callable[[int], Any]] = {
    "frames only": frames_only,
    "mqtt5": lambda n: mqtt5(n, False),
    "mqtt5 + bus": lambda n: mqtt5(n, True),
    "paho": lambda n: paho(n, False),
    "paho + bus": lambda n: paho(n, True),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, help='write {"us_per_msg": {path: best µs}, "messages", "rounds"} here')
    args = parser.parse_args()
    print(machine())
    best: dict[str, float] = {}
    for _ in range(args.rounds):
        for name, path in PATHS.items():
            gc.collect()
            spent = asyncio.run(path(args.messages))
            best[name] = min(best.get(name, spent), spent)
    for name, spent in best.items():
        print(f"{name:12} {spent / args.messages * 1e6:6.2f} us/msg")
    if args.json:
        per_msg = {name: spent / args.messages * 1e6 for name, spent in best.items()}
        args.json.write_text(json.dumps({"us_per_msg": per_msg, "messages": args.messages, "rounds": args.rounds},
                                        indent=2))


if __name__ == "__main__":
    main()
