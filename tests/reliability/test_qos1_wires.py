"""A QoS 1 wire between two agents across broker restarts: every frame arrives exactly once, or
each missing one is counted in the consumer's status (issue 22, section 3).

A producer on agent a1 sends numbered frames at QoS 1; a recorder on agent a2 keeps what it is
given; the broker is restarted (gracefully) five times while they run. Mosquitto keeps sessions
and queued messages across a restart (persistence), so nothing may be lost there; the embedded
broker keeps them in memory only, so frames may be lost, and then each one must be counted as a
``gap`` of the recorder's input. Copies (QoS 1 redelivery) are never handed to the task.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any, ClassVar

import pytest
from _brokers import TRANSPORTS, require_embedded, require_mosquitto

from edge.broker import EmbeddedBroker, MosquittoBroker, RunningBroker, free_port
from edge.bus import Bus
from edge.desired import encode_record
from edge.frames import encode_frame
from edge.graph import parse_spec
from edge.host import Host
from edge.settings import load_settings
from edge.task import Port, Task
from edge.topics import Topics

TIMEOUT = 20.0
RESTARTS = 5
INTERVAL = 0.01  # s between two frames of the producer: 100 frames/s


class Numbered(Task):
    """Sends 0, 1, 2, ... at QoS 1 until told to stop."""

    outputs: ClassVar = {"out": Port(content="number", qos=1)}
    stop = False

    async def run(self) -> None:
        n = 0
        while not self.stop:
            await self.send("out", n)
            n += 1
            await asyncio.sleep(INTERVAL)
        await asyncio.Event().wait()

    @property
    def sent(self) -> int:
        return self.out_metrics["out"].frames


class Recorder(Task):
    """Keeps every value it is given, in order."""

    inputs: ClassVar = {"in": Port(content="number")}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.values: list[int] = []

    async def run(self) -> None:
        async for frame in self.receive("in"):
            self.values.append(frame.value)


def start(kind: str, port: int, data_dir: Path) -> RunningBroker:
    return MosquittoBroker(port=port, data_dir=data_dir) if kind == "mosquitto" else \
        EmbeddedBroker(port=port, data_dir=data_dir)


async def wait_until(condition: Any, what: str) -> None:
    async with asyncio.timeout(TIMEOUT):
        while not condition():
            await asyncio.sleep(0.02)


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("kind", ["mosquitto", "embedded"])
async def test_a_qos1_wire_across_five_broker_restarts(tmp_path, kind, transport):
    require_mosquitto() if kind == "mosquitto" else require_embedded()
    port = free_port()
    broker = start(kind, port, tmp_path / "broker")
    await broker.__aenter__()
    url = broker.url.geturl()
    ns = f"q{uuid.uuid4().hex[:8]}"
    topics = Topics(ns)

    def host(agent: str, types: list[type[Task]]) -> Host:
        settings = load_settings(broker=url, namespace=ns, agent_id=agent, data_dir=tmp_path / agent,
                                 transport=transport)
        return Host(settings, types=types, status_interval=0.2)

    spec = parse_spec({"id": "wire", "tasks": [{"id": "src", "type": "numbered", "agent": "a1"},
                                               {"id": "rec", "type": "recorder", "agent": "a2"}],
                       "edges": [{"from": "src.out", "to": "rec.in"}]})
    try:
        async with host("a1", [Numbered]) as a1, host("a2", [Recorder]) as a2:
            async with Bus(url, client_id=f"deployer-{ns}") as bus:
                await bus.publish(topics.deployment("wire"), encode_record(spec), qos=1, retain=True)

            def task(h: Host, name: str) -> Any:
                instance = h.instances.get(("wire", name))
                return None if instance is None or instance.state != "running" else instance.task

            await wait_until(lambda: task(a1, "src") is not None and task(a2, "rec") is not None, "running")
            await wait_until(lambda: len(task(a2, "rec").values) >= 20, "frames flowing")
            for _ in range(RESTARTS):
                await broker.__aexit__(None, None, None)
                await asyncio.sleep(0.3)  # the producer goes on: its frames wait in its offline buffer
                broker = start(kind, port, tmp_path / "broker")
                await broker.__aenter__()
                await wait_until(lambda: a1.bus.is_connected and a2.bus.is_connected, "reconnected")
                await asyncio.sleep(0.3)
            producer, recorder = task(a1, "src"), task(a2, "rec")
            await asyncio.sleep(0.5)  # frames after the last restart reveal any hole before them
            producer.stop = True
            sent = producer.sent
            await wait_until(lambda: recorder.values and recorder.values[-1] == sent - 1, "the last frame")

            values = recorder.values
            metrics = recorder.in_metrics["in"]
            assert len(values) == len(set(values)), "a frame was handed to the task twice"
            assert values == sorted(values)
            # counted from the first frame the recorder saw: a consumer that joins a stream misses nothing
            # before it (the producer may start first)
            missing = sent - values[0] - len(values)
            assert metrics.gaps == missing, f"{missing} frames missing, {metrics.gaps} counted"
            if kind == "mosquitto":  # sessions and queued messages survive its restarts
                assert missing == 0
            # and the status says so
            await wait_until(lambda: a2.instances[("wire", "rec")].metrics()["inputs"]["in"]["gaps"] == missing,
                             "gaps in the status")
    finally:
        await broker.__aexit__(None, None, None)


async def test_frames_sent_while_the_consumer_agent_is_away_arrive_when_it_is_back(tmp_path, mosquitto_broker):
    """The agent's persistent session keeps its inputs subscribed while it restarts: the QoS 1 frames
    published meanwhile wait at the broker and are handed to the task when the agent is back."""
    url = mosquitto_broker.url.geturl()
    ns = f"q{uuid.uuid4().hex[:8]}"
    topics = Topics(ns)
    settings = load_settings(broker=url, namespace=ns, agent_id=f"rec-{ns}", data_dir=tmp_path / "a2")
    spec = parse_spec({"id": "wire", "tasks": [{"id": "rec", "type": "recorder", "agent": f"rec-{ns}"}],
                       "edges": [{"from": "topic:" + topics.stream("wire", "src", "out"), "to": "rec.in"}]})
    stream = topics.stream("wire", "src", "out")
    async with Bus(url, client_id=f"producer-{ns}") as bus:
        await bus.publish(topics.deployment("wire"), encode_record(spec), qos=1, retain=True)
        async with Host(settings, types=[Recorder]) as host:
            await wait_until(lambda: ("wire", "rec") in host.instances
                             and host.instances[("wire", "rec")].state == "running", "running")
            for seq in range(10):
                await bus.publish(stream, encode_frame(seq, seq=seq), qos=1)
            await wait_until(lambda: len(host.instances[("wire", "rec")].task.values) == 10, "first frames")
        for seq in range(10, 30):  # the agent is away
            await bus.publish(stream, encode_frame(seq, seq=seq), qos=1)
        async with Host(settings, types=[Recorder]) as host:
            def values() -> list[int]:
                instance = host.instances.get(("wire", "rec"))
                return [] if instance is None or instance.task is None else instance.task.values
            await wait_until(lambda: len(values()) >= 20, "the frames of the time away")
            await bus.publish(stream, encode_frame(30, seq=30), qos=1)
            await wait_until(lambda: values()[-1:] == [30], "a live frame after them")
            assert values() == list(range(10, 31))
            assert host.instances[("wire", "rec")].task.in_metrics["in"].gaps == 0


async def test_copies_are_dropped_and_holes_counted_by_seq(tmp_path, mosquitto_broker):
    """Per input fed by one task's stream: a frame with a seq and ts seen before is a copy (dropped,
    counted in ``duplicates``), a jump leaves a hole (``gaps``), and a producer that starts over at
    seq 0 is a new run, not a copy or a hole."""
    url = mosquitto_broker.url.geturl()
    ns = f"q{uuid.uuid4().hex[:8]}"
    topics = Topics(ns)
    stream = topics.stream("wire", "src", "out")
    settings = load_settings(broker=url, namespace=ns, agent_id=f"rec-{ns}", data_dir=tmp_path / "a2")
    spec = parse_spec({"id": "wire", "tasks": [{"id": "rec", "type": "recorder", "agent": f"rec-{ns}"}],
                       "edges": [{"from": "topic:" + stream, "to": "rec.in"}]})
    sent = [(0, 100), (1, 101), (2, 102), (2, 102), (1, 101), (5, 105), (0, 900), (1, 901), (3, 903),
            (0, 950), (0, 950)]  # a producer that does not count: seq 0 is never taken for a copy
    async with Bus(url, client_id=f"producer-{ns}") as bus, Host(settings, types=[Recorder]) as host:
        await bus.publish(topics.deployment("wire"), encode_record(spec), qos=1, retain=True)
        await wait_until(lambda: ("wire", "rec") in host.instances
                         and host.instances[("wire", "rec")].state == "running", "running")
        for seq, ts in sent:
            await bus.publish(stream, encode_frame(ts, seq=seq, ts=ts), qos=1)
        recorder = host.instances[("wire", "rec")].task
        await wait_until(lambda: len(recorder.values) >= 9, "the last frame")
        assert recorder.values == [100, 101, 102, 105, 900, 901, 903, 950, 950]
        metrics = recorder.in_metrics["in"]
        assert (metrics.frames, metrics.duplicates, metrics.gaps) == (9, 2, 2 + 1)
        status = host.instances[("wire", "rec")].metrics()
        assert status["inputs"]["in"]["duplicates"] == 2 and status["gaps"] == 3
