"""Status traffic: statuses are sent when what they say changes, metrics in bounded batches per agent,
and only while a reader holds a lease (``edge.reporting``).

Every retained message makes the managed Mosquitto rewrite its database (it saves on every
change), so statuses republished every interval for their counters and rates kept it busy: 10,000
busy tasks starved a neighbouring deployment (20 -> 6.6 frames/s). A status is now sent when the
task's state (error, crash notice, version...) changes, and the metrics of an agent's tasks go in
at most ``2 * MAX_BATCH_PARTS`` non-retained messages per report interval (``edge.reporting``).
"""

from __future__ import annotations

import asyncio
import tempfile
import time
import uuid
from pathlib import Path

import pytest
from sample_tasks import Counter, Metronome, Scale

from edge.broker import MosquittoBroker, free_port
from edge.bus import Bus
from edge.frames import decode_value, encode_frame, encode_value
from edge.graph import encode_spec, parse_spec
from edge.host import Host
from edge.protocol import MAX_BATCH_PARTS
from edge.settings import load_settings
from edge.topics import Topics

TIMEOUT = 10.0
INTERVAL = 0.1  # s between the agent's status reports in this test


async def _messages(sub, seconds: float) -> list[dict]:
    """Every non-empty message queued or arriving within ``seconds``, decoded."""
    seen: list[dict] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while True:
        if sub.queued:
            message = await sub.get()
        else:
            left = deadline - loop.time()
            if left <= 0:
                break
            try:
                async with asyncio.timeout(left):
                    message = await sub.get()
            except TimeoutError:
                break
        if message.payload:
            seen.append(decode_value(message.payload))
    return seen


async def test_an_idle_tasks_status_is_sent_again_only_when_it_changes(broker, tmp_path):
    topics = Topics(f"st{uuid.uuid4().hex[:8]}")
    settings = load_settings(broker=broker.url.geturl(), namespace=topics.namespace, agent_id="a1",
                             data_dir=tmp_path / "a1")
    spec = parse_spec({"id": "d", "tasks": [{"id": "s", "type": "scale", "agent": "a1"}],
                       "edges": [{"from": f"topic:{topics.namespace}/in", "to": "s.in"}]})
    async with Host(settings, types=[Scale], persist=False, status_interval=INTERVAL) as host, \
            Bus(broker.url) as bus, bus.subscribe(topics.task_status("d", "s")) as sub, \
            bus.subscribe(topics.agent_metrics("a1")) as batches:
        await bus.publish(topics.deployment("d"), encode_spec(spec), qos=1, retain=True)
        async with asyncio.timeout(TIMEOUT):
            while not (host.instances.get(("d", "s")) and host.instances[("d", "s")].state == "running"):
                await asyncio.sleep(INTERVAL)
        await _messages(sub, 5 * INTERVAL)  # starting, running, the first rate window: settled
        await bus.publish(topics.agent_metrics_request("a1"), encode_value({"watch": 60.0}))  # a reader watches
        await _messages(batches, 5 * INTERVAL)  # its full batch
        # 20 report intervals of an idle task: nothing new to say, nothing sent (before: one a report)
        assert await _messages(sub, 20 * INTERVAL) == []
        assert await _messages(batches, 0) == []
        await bus.publish(f"{topics.namespace}/in", encode_frame(2))
        # a frame in: its count and rate go in the agent's next metrics batch, the status stays as it is
        sent = await _messages(batches, 10 * INTERVAL)
        frames = [t["metrics"]["inputs"]["in"]["frames"] for b in sent for t in b["tasks"]]
        rates = [t["metrics"]["inputs"]["in"]["rate"] for b in sent for t in b["tasks"]]
        assert frames[:1] == [1] and rates[0] > 0, sent
        assert rates[-1] == 0 and len(sent) <= 3, sent  # then once more with its rate back to 0, then quiet
        assert all(b["tasks"][0]["deployment"] == "d" and b["tasks"][0]["task"] == "s" for b in sent)
        assert await _messages(sub, 0) == []  # counters are not a change of the status
        assert await _messages(batches, 10 * INTERVAL) == []


async def test_a_start_is_one_status_and_the_last_state_is_always_sent(broker, tmp_path):
    """pending, starting and running of one task within COALESCE go as one message; stopping at once."""
    topics = Topics(f"st{uuid.uuid4().hex[:8]}")
    settings = load_settings(broker=broker.url.geturl(), namespace=topics.namespace, agent_id="a1",
                             data_dir=tmp_path / "a1")
    spec = parse_spec({"id": "d", "tasks": [{"id": f"s{i}", "type": "scale", "agent": "a1"} for i in range(20)]})
    async with Bus(broker.url) as bus, bus.subscribe(topics.all_task_statuses("d")) as sub:
        async with Host(settings, types=[Scale], persist=False, status_interval=INTERVAL) as host:
            started = time.monotonic()
            await bus.publish(topics.deployment("d"), encode_spec(spec), qos=1, retain=True)
            first = await _messages(sub, 1.5)
            assert len(first) == 20 and {s["state"] for s in first} == {"running"}, first
            async with asyncio.timeout(TIMEOUT):  # what the host holds is what was published
                while len(host.instances) < 20 or any(i.state != "running" for i in host.instances.values()):
                    await asyncio.sleep(INTERVAL)
            assert time.monotonic() - started < TIMEOUT
        last = await _messages(sub, 1.0)  # leaving the host stops its tasks: the final state is not coalesced away
        assert sorted(s["state"] for s in last) == ["stopped"] * 20, last


async def test_metrics_go_only_while_a_reader_holds_a_lease(broker, tmp_path):
    """A task whose counters move every interval: no batch until a request, a full batch at once, the
    changed metrics every interval during the lease, none once it ran out (before: a batch every
    interval forever, 2.0 of an idle fleet's 3.0 messages per agent per 5 s)."""
    topics = Topics(f"st{uuid.uuid4().hex[:8]}")
    settings = load_settings(broker=broker.url.geturl(), namespace=topics.namespace, agent_id="a1",
                             data_dir=tmp_path / "a1")
    spec = parse_spec({"id": "d", "tasks": [{"id": "c", "type": "counter", "agent": "a1",
                                             "config": {"interval_ms": int(INTERVAL * 500)}}]})
    async with Host(settings, types=[Counter], persist=False, status_interval=INTERVAL) as host, \
            Bus(broker.url) as bus, bus.subscribe(topics.agent_metrics("a1")) as batches:
        await bus.publish(topics.deployment("d"), encode_spec(spec), qos=1, retain=True)
        async with asyncio.timeout(TIMEOUT):
            while not (host.instances.get(("d", "c")) and host.instances[("d", "c")].state == "running"):
                await asyncio.sleep(INTERVAL)
        await _messages(batches, 3 * INTERVAL)  # the full batch that follows the connect, if it came late
        assert await _messages(batches, 20 * INTERVAL) == [], "metrics sent though nobody asked"
        lease = 10 * INTERVAL
        await bus.publish(topics.agent_metrics_request("a1"), encode_value({"watch": lease}))
        sent = await _messages(batches, lease + 3 * INTERVAL)
        assert sent and sent[0]["full"] and not any(b["full"] for b in sent[1:]), sent
        counts = [t["metrics"]["outputs"]["out"]["frames"] for b in sent for t in b["tasks"]]
        assert len(sent) >= 5 and counts == sorted(counts) and counts[-1] > counts[0], counts  # live, moving
        assert await _messages(batches, 10 * INTERVAL) == [], "metrics sent after the lease ran out"
        for garbage in (b"\xff", encode_value({"watch": -1}), encode_value({"watch": float("nan")}), b"x" * 5000):
            await bus.publish(topics.agent_metrics_request("a1"), garbage)  # read as the default lease
        sent = await _messages(batches, 5 * INTERVAL)
        assert sent and sent[0]["full"] and host.instances[("d", "c")].state == "running"


BUSY = 1500  # tasks whose counters change every interval
BUSY_INTERVAL = 1.0  # s between the agent's reports
NEIGHBOUR_RATE = 20.0  # the neighbour's frames/s
WINDOW = 2.5  # s of counting
SHM = Path("/dev/shm") if Path("/dev/shm").is_dir() else None  # tmpfs, where there is one


async def _count(sub, seconds: float) -> int:
    return len(await _messages(sub, seconds))


@pytest.mark.alone  # a timing figure: scripts/test.sh runs it with the machine to itself
async def test_thousands_of_busy_tasks_leave_a_neighbour_its_rate(tmp_path):
    """An agent with 1,500 busy tasks on the managed Mosquitto (saving on every retained change): its
    neighbouring deployment keeps its frame rate, and the agent's status and metrics messages stay
    within the bound whatever its task count (before: 1,500 retained statuses every interval, and the
    neighbour got no frame through)."""
    topics = Topics(f"st{uuid.uuid4().hex[:8]}")
    busy = parse_spec({"id": "busy", "tasks": [
        {"id": f"t{i}", "type": "counter", "agent": "a1", "config": {"interval_ms": int(BUSY_INTERVAL * 900)}}
        for i in range(BUSY)]})  # outputs wired nowhere: counters change, no frame goes out
    neighbour = parse_spec({"id": "neighbour", "tasks": [
        {"id": "n", "type": "metronome", "agent": "a1", "config": {"rate": NEIGHBOUR_RATE}}],
        "edges": [{"from": "n.out", "to": f"topic:{topics.namespace}/n"}]})
    # the managed config: a save after every retained change; in memory (tmpfs) where there is one, so
    # that its cost is the broker's CPU, not the fsyncs of a disk other processes keep busy
    with tempfile.TemporaryDirectory(dir=SHM or tmp_path) as data:
        await _measure(Path(data), tmp_path / "a1", topics, busy, neighbour)


async def _measure(data: Path, agent_dir: Path, topics: Topics, busy, neighbour) -> None:
    async with MosquittoBroker(port=free_port(), data_dir=data) as broker:
        settings = load_settings(broker=str(broker.url), namespace=topics.namespace, agent_id="a1",
                                 data_dir=agent_dir)
        async with Host(settings, types=[Counter, Metronome], persist=False, status_interval=BUSY_INTERVAL), \
                Bus(broker.url) as bus, bus.subscribe(f"{topics.namespace}/n", maxsize=10_000) as frames:
            await bus.publish(topics.deployment("neighbour"), encode_spec(neighbour), qos=1, retain=True)
            await frames.get()
            baseline = await _count(frames, WINDOW)
            async with bus.subscribe(topics.all_task_statuses("busy"), maxsize=100_000) as statuses, \
                    bus.subscribe(topics.agent_metrics("a1"), maxsize=10_000) as batches:
                await bus.publish(topics.deployment("busy"), encode_spec(busy), qos=1, retain=True)
                start: list[dict] = []
                async with asyncio.timeout(TIMEOUT):  # one status per task: pending, starting, running coalesced
                    while len(start) < BUSY:
                        start.append(decode_value((await statuses.get()).payload))
                assert {s["state"] for s in start} == {"running"}
                await bus.publish(topics.agent_metrics_request("a1"), encode_value({"watch": 60.0}))  # a reader
                await _messages(frames, 0)
                await _messages(batches, 0)
                started = time.monotonic()
                rate = await _count(frames, WINDOW)
                elapsed = time.monotonic() - started
                sent_statuses = await _messages(statuses, 0)
                sent_batches = await _messages(batches, 0)
        per_s = (len(sent_statuses) + len(sent_batches)) / elapsed
        bound = 2 * MAX_BATCH_PARTS / BUSY_INTERVAL
        live = {t["task"] for b in sent_batches for t in b["tasks"] if t["deployment"] == "busy"}
        assert len(live) == BUSY, f"the metrics of {BUSY - len(live)} busy tasks were not sent"
        assert sent_statuses == [], f"{len(sent_statuses)} statuses sent though no state changed"
        assert per_s <= bound, f"{per_s:.0f} status and metrics messages/s, over the bound of {bound:.0f}"
        assert rate >= 0.8 * baseline, f"the neighbour fell from {baseline} to {rate} frames in {WINDOW} s"
