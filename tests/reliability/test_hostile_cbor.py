"""Hostile CBOR: payloads built to hang or balloon a decoder are refused with one FrameError.

A corpus of known attacks (value-sharing bombs, string references, nesting 200,000 deep,
heads announcing 2**64 items, indefinite-length items, bignums, a big payload of tiny items),
a property-based fuzz of the decoders over random bytes and random CBOR heads, and an agent
under attack end to end: the bomb retained as a spec and sent as a frame while another
deployment runs, `edge ls` and `edge tail` answering all the while.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

import cbor2
import pytest
from _arrivals import count_arrivals
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent import Agent
from edge.bus import Bus
from edge.controller import Controller
from edge.errors import FrameError
from edge.frames import (
    MAX_BIGNUM_BYTES,
    MAX_DEPTH,
    MAX_ITEMS,
    decode_frame,
    decode_value,
    encode_frame,
)
from edge.graph import parse_spec
from edge.settings import load_settings
from edge.topics import Topics

SAMPLES = str(Path(__file__).parents[1] / "agent" / "sample_tasks.py")
TIMEOUT = 20.0
BIG = 64 * 1024 * 1024  # max_size for the corpus: the limits under test are the structural ones


def sharing_bomb(levels: int = 40) -> bytes:
    """shareable(x0=[1]), shareable(x1=[x0, x0]), ... : 2**levels leaves for whoever walks the last one."""
    items = [b"\xd8\x1c\x81\x01"]
    for i in range(1, levels):
        ref = b"\xd8\x1d" + cbor2.dumps(i - 1)
        items.append(b"\xd8\x1c\x82" + ref + ref)
    return b"\x98" + bytes([len(items)]) + b"".join(items)


def frame_around(value_bytes: bytes) -> bytes:
    """A frame map whose value is the given CBOR item, as an attacker would write it."""
    return bytes.fromhex("a3 62 7473 01 63 736571 00 65 76616c7565") + value_bytes


def spec_bomb(dep: str) -> bytes:
    """A deployment spec whose one config value is the bomb (432 bytes): it hung agents and controllers."""
    head = cbor2.dumps({"id": dep, "tasks": [{"id": "t", "type": "counter", "config": {"x": 0}}]})
    return head[:-1] + sharing_bomb()  # the config's 0, the last byte, replaced by the bomb


def string_refs() -> bytes:
    """stringref-namespace(256) ["aaaa", stringref(0) x 3]."""
    return bytes.fromhex("d90100 84 6461616161 d81900 d81900 d81900")


def tiny_items(count: int) -> bytes:
    return b"\x9a" + count.to_bytes(4, "big") + b"\xa0" * count  # an array of `count` empty maps


CORPUS: list[Any] = [
    pytest.param(sharing_bomb(), "tag 28 (value sharing)", id="sharing-bomb"),
    pytest.param(frame_around(sharing_bomb()), "tag 28 (value sharing)", id="sharing-bomb-in-frame"),
    pytest.param(spec_bomb("evil"), "tag 28 (value sharing)", id="sharing-bomb-in-a-spec"),
    pytest.param(b"\xd8\x1d\x00", "tag 29 (value sharing)", id="dangling-sharedref"),
    pytest.param(string_refs(), "(string references)", id="string-references"),
    pytest.param(b"\x81" * 200_000 + b"\x01", f"limit of {MAX_DEPTH}", id="nesting-200000"),
    pytest.param(b"\xa1\x01" * 100_000 + b"\x01", f"limit of {MAX_DEPTH}", id="map-nesting-100000"),
    pytest.param(b"\x9f" * 200_000 + b"\xff" * 200_000, f"limit of {MAX_DEPTH}", id="indefinite-nesting"),
    pytest.param(b"\xd8\x28" * 50_000 + b"\x01", "", id="tag-nesting"),
    pytest.param(b"\x81" * 200_000 + b"\x01" + b"\x00" * 70_000, f"limit of {MAX_DEPTH}", id="nesting-big-payload"),
    pytest.param(b"\x9b" + b"\xff" * 8, "", id="array-of-2**64-items"),
    pytest.param(b"\xbb" + b"\xff" * 8, "", id="map-of-2**64-pairs"),
    pytest.param(b"\x5b" + b"\xff" * 8, "", id="bytes-of-2**64"),
    pytest.param(b"\x7b" + b"\x00\x00\x00\x01\x00\x00\x00\x00", "", id="text-of-2**32"),
    pytest.param(b"\x9b" + b"\xff" * 8 + b"\x00" * 70_000, "a container of", id="huge-count-big-payload"),
    pytest.param(b"\x5b" + b"\x7f" + b"\xff" * 7 + b"\x00" * 70_000, "a string of", id="huge-string-big-payload"),
    pytest.param(b"\x9f" + b"\x01" * 100, "", id="unterminated-indefinite"),
    pytest.param(b"\x9f" + b"\x01" * 100_000, "ends inside", id="unterminated-indefinite-big"),
    pytest.param(b"\x5f\x61a\xff", "", id="indefinite-bytes-with-text-chunk"),
    pytest.param(b"\xff", "", id="lone-break"),
    pytest.param(b"\x1c", "", id="reserved-info"),
    pytest.param(b"\x9a\x00\x01\x11\x71" + b"\x1c" * 70_001, "reserved additional information", id="reserved-big"),
    pytest.param(cbor2.dumps(2 ** (8 * (MAX_BIGNUM_BYTES + 1))), "bignum of", id="bignum-over-limit"),
    pytest.param(cbor2.dumps(-(2 ** 80000)), "bignum of", id="negative-bignum-10000-bytes"),
    pytest.param(b"\xc2\x9b" + b"\xff" * 8, "", id="bignum-of-an-array"),
    pytest.param(b"\xc2\x01", "bignum (tag 2) holds a byte string", id="bignum-of-an-int"),
    pytest.param(bytes.fromhex("c5 82 1b 3fffffffffffffff 01"), "tag 5", id="bigfloat-huge-exponent"),
    pytest.param(bytes.fromhex("c4 82 1b 3fffffffffffffff 01"), "tag 4", id="decimal-huge-exponent"),
    pytest.param(cbor2.dumps(cbor2.CBORTag(35, "(a+)+$")), "tag 35", id="regex"),
    pytest.param(cbor2.dumps(cbor2.CBORTag(1, 1e300)), "tag 1", id="epoch-datetime"),
    pytest.param(cbor2.dumps(cbor2.CBORTag(2**64 - 1, 0)), "not allowed", id="tag-2**64-1"),
    pytest.param(tiny_items(MAX_ITEMS + 10), f"more than {MAX_ITEMS} items", id="a-million-empty-maps"),
    pytest.param(b"\xf8\x00", "", id="invalid-simple-value"),
]


@pytest.mark.parametrize(("payload", "match"), CORPUS)
def test_the_hostile_corpus_gives_one_frame_error(payload: bytes, match: str) -> None:
    for decode in (decode_value, decode_frame):
        with pytest.raises(FrameError, match=re.escape(match) if match else None):
            decode(payload, max_size=BIG)


def test_what_stays_allowed_decodes() -> None:
    """The limits refuse attacks, not data: bignums up to the limit, indefinite items, big lists."""
    assert decode_value(cbor2.dumps(10**400)) == 10**400
    assert decode_value(cbor2.dumps(-(2 ** (8 * MAX_BIGNUM_BYTES - 1)))) == -(2 ** (8 * MAX_BIGNUM_BYTES - 1))
    assert decode_value(bytes.fromhex("9f 01 9f 02 ff bf 61 61 03 ff ff")) == [1, [2], {"a": 3}]
    assert decode_value(bytes.fromhex("5f 42 0102 41 03 ff")) == b"\x01\x02\x03"
    assert decode_value(cbor2.dumps(list(range(200_000)))) == list(range(200_000))
    deep: Any = 1
    for _ in range(MAX_DEPTH - 1):
        deep = [deep]
    assert decode_value(cbor2.dumps(deep)) == deep
    assert decode_value(tiny_items(100_000), max_size=BIG) == [{}] * 100_000
    assert decode_frame(frame_around(cbor2.dumps(10**400))).value == 10**400


def _size(value: Any) -> tuple[int, int]:
    """(items, depth) of a decoded value, walked without recursion."""
    items = depth = 0
    stack = [(value, 1)]
    while stack:
        item, level = stack.pop()
        items += 1
        depth = max(depth, level)
        if isinstance(item, dict):
            stack.extend((v, level + 1) for pair in item.items() for v in pair)
        elif isinstance(item, list | tuple):
            stack.extend((v, level + 1) for v in item)
    return items, depth


# random CBOR heads, with lengths and tags drawn to hit the edges: a structure-aware fuzz
heads = st.tuples(st.integers(0, 7), st.sampled_from([0, 1, 23, 24, 25, 26, 27, 28, 31]),
                  st.sampled_from([0, 1, 2, 28, 29, 40, 64, 255, 256, 2**16, 2**32, 2**63, 2**64 - 1]))


def _head_bytes(major: int, info: int, argument: int) -> bytes:
    if info < 24 or info > 27:
        return bytes([major << 5 | info])
    size = 1 << (info - 24)
    return bytes([major << 5 | info]) + (argument % (1 << (8 * size))).to_bytes(size, "big")


cbor_ish = st.lists(st.one_of(st.builds(_head_bytes, *[st.integers(0, 7), st.sampled_from(
    [0, 1, 23, 24, 25, 26, 27, 28, 31]), st.sampled_from([0, 1, 2, 28, 29, 40, 64, 256, 2**32, 2**64 - 1])]),
    st.binary(max_size=8)), max_size=40).map(b"".join)


def _decodes_within_limits(payload: bytes) -> None:
    for decode in (decode_value, decode_frame):
        try:
            value = decode(payload, max_size=BIG)
        except FrameError:
            continue
        if decode is decode_frame:
            value = value.value
        items, depth = _size(value)
        assert items <= max(len(payload), 1) and depth <= MAX_DEPTH


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=256))
def test_random_bytes_give_a_value_or_a_frame_error(payload: bytes) -> None:
    _decodes_within_limits(payload)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cbor_ish)
def test_random_cbor_heads_give_a_value_or_a_frame_error(payload: bytes) -> None:
    _decodes_within_limits(payload)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cbor_ish, st.integers(0, 3))
def test_big_payloads_are_walked_to_the_same_verdict(payload: bytes, pad: int) -> None:
    """Over 64 KiB the structure is walked first: a random head sequence padded with a big byte
    string (or big text, or many items) still gives a value within the limits or a FrameError."""
    filler = [b"\x5a\x00\x01\x10\x00" + b"\x00" * 0x11000, b"\x7a\x00\x01\x10\x00" + b"a" * 0x11000,
              b"\x9a\x00\x01\x10\x00" + b"\x00" * 0x11000, b""][pad]
    _decodes_within_limits(b"\x82" + filler + payload if filler else payload)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(min_size=1, max_size=4), st.integers(0, 40))
def test_bytes_spliced_into_a_valid_frame_give_a_value_or_a_frame_error(splice: bytes, where: int) -> None:
    frame = encode_frame({"temp": 21.5, "tags": ["a", "b"], "n": 2**70}, ts=1, seq=3)
    where = min(where, len(frame))
    _decodes_within_limits(frame[:where] + splice + frame[where:])


# -- an agent under attack ---------------------------------------------------------------------
def _edge(*argv: str, broker_url: str, ns: str, tmp: Path) -> list[str]:
    return [sys.executable, "-m", "edge", "--broker", broker_url, "--namespace", ns, *argv]


def _env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_")}
    env["EDGE_DATA_DIR"] = str(tmp / "cli")
    return env


async def _count(bus: Bus, topic: str, seconds: float) -> int:
    """Frames arriving on ``topic`` during ``seconds`` (a rate, compared within the same run)."""
    async with bus.subscribe(topic) as sub:
        return await count_arrivals(sub, seconds)


@pytest.mark.timeout(120)
@pytest.mark.expect_errors("ignored an invalid spec")
async def test_the_bomb_as_a_retained_spec_and_as_a_frame_stops_nothing(broker, tmp_path: Path) -> None:
    ns = f"h{uuid.uuid4().hex[:8]}"
    topics = Topics(ns)
    url = broker.url.geturl()
    bomb = sharing_bomb()
    async with Bus(broker.url) as bus:
        # the bomb is retained before the agent starts: what a restarted agent finds
        await bus.publish(topics.deployment("evil"), spec_bomb("evil"), qos=1, retain=True)
        try:
            agent_settings = load_settings(broker=url, namespace=ns, agent_id="a1", data_dir=tmp_path / "a1")
            async with Agent(agent_settings, task_sources=[SAMPLES]) as agent, \
                    Controller(load_settings(broker=url, namespace=ns, data_dir=tmp_path / "c")) as ctl:
                await ctl.fleet.wait_for(lambda f: "a1" in f.agents and f.agents["a1"].types, TIMEOUT)
                await ctl.deploy(parse_spec({
                    "id": "other", "tasks": [{"id": "c", "type": "counter", "agent": "a1",
                                              "config": {"interval_ms": 20}},
                                             {"id": "s", "type": "scale", "agent": "a1"}],
                    "edges": [{"from": "c.out", "to": "topic:hostile/counts"},
                              {"from": "topic:hostile/in", "to": "s.in"}, {"from": "s.out", "to": "topic:hostile/out"}],
                }))
                await ctl.fleet.wait_for(
                    lambda f: [s.state for s in f.tasks_of("other")] == ["running", "running"], TIMEOUT)
                assert agent.errors >= 1 and ctl.fleet.errors >= 1  # the retained bomb: refused and counted
                assert "evil" not in ctl.fleet.deployments
                before = await _count(bus, "hostile/counts", 2.0)

                # the bomb, live: as a spec again, as a frame into a task, as a frame on a tailed topic
                tail = subprocess.Popen(_edge("tail", "hostile/#", broker_url=url, ns=ns, tmp=tmp_path),
                                        env=_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
                lines: list[bytes] = []
                reader = threading.Thread(target=lambda: lines.extend(iter(tail.stdout.readline, b"")), daemon=True)
                reader.start()
                try:
                    async with asyncio.timeout(TIMEOUT):  # subscribed once it shows the counter's frames
                        while not lines:
                            await asyncio.sleep(0.05)
                    await bus.publish(topics.deployment("evil2"), spec_bomb("evil2"), qos=1, retain=True)
                    for _ in range(20):
                        await bus.publish("hostile/in", frame_around(bomb))
                    during = await _count(bus, "hostile/counts", 2.0)
                    async with bus.subscribe("hostile/out") as out:
                        await bus.publish("hostile/in", encode_frame(21))
                        async with asyncio.timeout(TIMEOUT):
                            assert decode_frame((await out.get()).payload).value == 42
                    listed = await asyncio.to_thread(
                        subprocess.run, _edge("ls", "deployments", broker_url=url, ns=ns, tmp=tmp_path),
                        env=_env(tmp_path), capture_output=True, text=True, timeout=60)
                finally:
                    tail.send_signal(signal.SIGINT)
                    await asyncio.to_thread(tail.wait, timeout=30)
                    await asyncio.to_thread(reader.join, timeout=30)
                    tail.stdout.close()
                    tail_out = b"".join(lines)
                instance = agent.instances[("other", "s")]
                assert instance.task is not None and instance.task.in_metrics["in"].errors == 20
                assert instance.state == "running" and instance.restarts == 0
                assert agent.errors >= 2
                # the neighbour keeps its rate (the same window, the same run; 50 frames/s when idle)
                assert during >= before * 0.6, (before, during)
                assert listed.returncode == 0 and "other" in listed.stdout, listed.stdout + listed.stderr
                evil = [line for line in listed.stdout.splitlines() if line.startswith("evil")]
                assert len(evil) == 2 and all("refused" in line and "value sharing" in line for line in evil), evil
                text = tail_out.decode(errors="replace")
                assert "value sharing" in text and "Traceback" not in text, text[-2000:]
                assert tail.returncode in (0, 130), text[-2000:]
                await ctl.remove("other")
        finally:
            for dep in ("evil", "evil2"):
                await bus.publish(topics.deployment(dep), b"", qos=1, retain=True)
