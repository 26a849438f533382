"""Frames between tasks of one agent, handed over in-process (edge.local), on real brokers.

A large array between two tasks of one agent is not published unless someone watches its stream;
small values still are; a consumer on another agent, a watcher (``edge.watch``) or
``EDGE_LOCAL_STREAMS=0`` puts the stream on the broker; the consumer gets the producer's array as a
read-only view; hostile watch messages are counted and change nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import uuid
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import numpy as np
import pytest

from edge.bus import Bus, Subscription
from edge.controller import Controller
from edge.frames import Frame, decode_frame, encode_value
from edge.graph import parse_spec
from edge.host import Host
from edge.local import LOCAL_ONLY_BYTES, LocalStreams, local_value
from edge.settings import load_settings
from edge.task import Port, Task
from edge.topics import Topics
from edge.watch import Watching

TIMEOUT = 15.0
ARRAY = (LOCAL_ONLY_BYTES // 8 + 16,)  # float64s: just over the size that stays in-process


class Pictures(Task):
    """Sends a large array (its index in every cell) and a small number per tick, up to 10,000."""

    type_name = "pictures"
    outputs: ClassVar = {"big": Port(content="array"), "small": Port(content="number")}

    async def run(self) -> None:
        for i in range(10_000):
            await self.send("big", np.full(ARRAY, float(i)))
            await self.send("small", i)
            await asyncio.sleep(0.02)


class Keep(Task):
    """Keeps what reaches its inputs (the test reads ``Keep.got``)."""

    type_name = "keep"
    inputs: ClassVar = {"big": Port(content="array"), "small": Port(content="number")}
    got: ClassVar[dict[str, list[Frame]]] = {}

    async def run(self) -> None:
        async for port, frame in self.receive_any():
            Keep.got.setdefault(f"{self.instance_id}.{port}", []).append(frame)


def _spec(consumer_agent: str, *, version: int = 1) -> Any:
    return parse_spec({"id": "loc", "version": version, "tasks": [
        {"id": "cam", "type": "pictures", "agent": "a1"},
        {"id": "sink", "type": "keep", "agent": consumer_agent}],
        "edges": [{"from": "cam.big", "to": "sink.big"}, {"from": "cam.small", "to": "sink.small"}]})


@contextlib.asynccontextmanager
async def _fleet(broker: Any, tmp_path: Any, **settings: Any) -> AsyncIterator[tuple[Controller, list[Host], Topics]]:
    ns = f"l{uuid.uuid4().hex[:10]}"

    def make(name: str) -> Any:
        return load_settings(broker=broker.url.geturl(), namespace=ns, agent_id=name, data_dir=tmp_path / name,
                             **settings)

    Keep.got = {}
    hosts = [Host(make(name), types=[Pictures, Keep], persist=False) for name in ("a1", "a2")]
    async with hosts[0], hosts[1], Controller(make("ctl")) as controller:
        await controller.fleet.wait_for(lambda f: {"a1", "a2"} <= {a.id for a in f.online}
                                        and all(f.agents[a].types for a in ("a1", "a2")), TIMEOUT)
        yield controller, hosts, Topics(ns)


async def _until(predicate: Any, timeout: float = TIMEOUT) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


def _drain(sub: Subscription) -> list[Frame]:
    out = []
    while sub.queued:
        out.append(decode_frame(sub.get_nowait().payload))
    return out


async def test_a_large_array_to_a_task_of_the_same_agent_stays_in_process_until_watched(broker, tmp_path):
    async with _fleet(broker, tmp_path) as (controller, hosts, topics), Bus(broker.url.geturl()) as probe, \
            probe.subscribe(topics.stream("loc", "cam", "big")) as big, \
            probe.subscribe(topics.stream("loc", "cam", "small")) as small:
        await controller.deploy(_spec("a1"))
        await _until(lambda: len(Keep.got.get("loc/sink.big", [])) >= 20)
        # every frame came, in order, as a read-only view of the sender's array
        frames = Keep.got["loc/sink.big"]
        assert [f.seq for f in frames] == list(range(frames[0].seq, frames[0].seq + len(frames)))
        assert all(f.value.shape == ARRAY and f.value[0] == f.seq and not f.value.flags.writeable for f in frames)
        assert hosts[0].local.delivered >= 40
        # small values are published as always (any MQTT client sees them); the large ones are not (but
        # for those sent before the consumer was there: with no consumer in-process, a stream is published)
        _drain(big), _drain(small)
        await _until(lambda: small.queued >= 5)
        assert big.queued == 0
        # someone watches: the large frames go to the broker too, while the consumer keeps getting them
        async with Watching(probe, topics, topics.all_streams("loc"), lease=1.0):
            async with asyncio.timeout(TIMEOUT):
                watched = decode_frame((await big.get()).payload)
        assert watched.value.shape == ARRAY and watched.value[0] == watched.seq
        # the lease runs out a second after the last renewal: the stream goes back to in-process only
        await asyncio.sleep(1.5)
        _drain(big)
        seen = len(Keep.got["loc/sink.big"])
        await _until(lambda: len(Keep.got["loc/sink.big"]) >= seen + 10)
        assert big.queued == 0
        sink = controller.fleet.statuses[("loc", "sink")].metrics.get("inputs", {}).get("big", {})
        assert sink.get("gaps", 0) == 0


async def test_a_consumer_on_another_agent_reads_through_the_broker_and_moving_it_back_restarts_it(broker, tmp_path):
    async with _fleet(broker, tmp_path) as (controller, hosts, topics), Bus(broker.url.geturl()) as probe, \
            probe.subscribe(topics.stream("loc", "cam", "big")) as big:
        await controller.deploy(_spec("a2"))
        await _until(lambda: len(Keep.got.get("loc/sink.big", [])) >= 5 and big.queued >= 5)
        assert hosts[0].local.delivered == 0 and not hosts[0].local.is_local(topics.stream("loc", "cam", "big"))
        await controller.deploy(_spec("a1", version=2))  # the consumer comes to the producer's agent
        await _until(lambda: hosts[0].local.is_local(topics.stream("loc", "cam", "big"))
                     and hosts[0].local.consumers(topics.stream("loc", "cam", "big")) == 1)
        count = hosts[0].local.delivered
        await _until(lambda: hosts[0].local.delivered >= count + 10)
        _drain(big)
        await asyncio.sleep(0.3)
        assert big.queued == 0


async def test_a_reader_on_another_agent_joining_and_leaving_rewires_the_local_one_without_a_restart(broker,
                                                                                                      tmp_path):
    big_topic = None

    def spec(version: int, *, remote: bool) -> Any:
        data = _spec("a1", version=version).to_dict()
        if remote:
            data["tasks"].append({"id": "far", "type": "keep", "agent": "a2"})
            data["edges"].append({"from": "cam.big", "to": "far.big"})
        return parse_spec(data)

    async with _fleet(broker, tmp_path) as (controller, hosts, topics):
        big_topic = topics.stream("loc", "cam", "big")
        local = hosts[0].local
        await controller.deploy(spec(1, remote=False))
        await _until(lambda: len(Keep.got.get("loc/sink.big", [])) >= 10 and local.consumers(big_topic) == 1)
        task = hosts[0].instances[("loc", "sink")].task
        await controller.deploy(spec(2, remote=True))  # another agent reads it too: through the broker
        await _until(lambda: len(Keep.got.get("loc/far.big", [])) >= 10 and local.consumers(big_topic) == 0)
        assert not local.is_local(big_topic)
        seen = len(Keep.got["loc/sink.big"])
        await _until(lambda: len(Keep.got["loc/sink.big"]) >= seen + 10)
        await controller.deploy(spec(3, remote=False))  # it leaves: in-process again
        await _until(lambda: local.consumers(big_topic) == 1 and local.is_local(big_topic))
        seen = len(Keep.got["loc/sink.big"])
        await _until(lambda: len(Keep.got["loc/sink.big"]) >= seen + 10)
        assert hosts[0].instances[("loc", "sink")].task is task  # never restarted
        frames = Keep.got["loc/sink.big"]
        assert all(b.seq > a.seq for a, b in itertools.pairwise(frames))  # in order, no copy
        await _until(lambda: ("loc", "sink") in controller.fleet.statuses
                     and controller.fleet.statuses[("loc", "sink")].version == 3)
        sink = controller.fleet.statuses[("loc", "sink")].metrics.get("inputs", {}).get("big", {})
        assert sink.get("duplicates", 0) == 0


async def test_with_local_streams_off_every_frame_goes_through_the_broker(broker, tmp_path):
    async with _fleet(broker, tmp_path, local_streams=False) as (controller, hosts, topics), \
            Bus(broker.url.geturl()) as probe, probe.subscribe(topics.stream("loc", "cam", "big")) as big:
        await controller.deploy(_spec("a1"))
        await _until(lambda: len(Keep.got.get("loc/sink.big", [])) >= 5 and big.queued >= 5)
        assert hosts[0].local.delivered == 0


@pytest.mark.parametrize("payload", [
    b"\xff\x00garbage",
    encode_value({"filter": "a/#", "lease": float("nan")}),
    encode_value({"filter": "a/#", "lease": float("inf")}),
    encode_value({"filter": "a/#", "lease": -1}),
    encode_value({"filter": "a/#/b", "lease": 5}),
    encode_value({"filter": "x" * 5000, "lease": 5}),
    encode_value({"filter": ["a"], "lease": 5}),
    encode_value([1, 2, 3]),
    encode_value({"filter": "a/#", "lease": 2**200}),
], ids=["garbage", "nan", "inf", "negative", "bad-filter", "huge-filter", "wrong-type", "not-a-map", "bignum"])
async def test_a_hostile_watch_message_is_counted_and_changes_nothing(broker, tmp_path, payload):
    async with _fleet(broker, tmp_path) as (_, hosts, topics), Bus(broker.url.geturl()) as probe:
        before = hosts[0].errors
        await probe.publish(topics.watch, payload, qos=1)
        await _until(lambda: hosts[0].errors > before)
        assert not hosts[0].local.observed("a/b")


def test_leases_are_bounded_and_expire():
    now = [100.0]
    local = LocalStreams(clock=lambda: now[0])
    local.set_local(["s/1", "s/2"])
    assert not local.needs_broker("s/1") and local.needs_broker("other")
    local.watch("s/#", 1e9)  # cut to LEASE_MAX
    assert local.needs_broker("s/1") and local.needs_broker("s/2")
    now[0] += 61
    assert not local.needs_broker("s/1")
    local.watch("s/2", 5)
    assert local.needs_broker("s/2") and not local.needs_broker("s/1")


def test_only_numeric_arrays_and_bytes_are_shared_as_they_are():
    array = np.arange(4)
    view = local_value(array)
    assert view is not None and view.base is array and not view.flags.writeable and array.flags.writeable
    assert local_value(b"abc") == b"abc"
    for value in ("text", 1, {"a": 1}, np.array(["x"], dtype=object), np.arange(3).astype(">i4")):
        assert local_value(value) is None
