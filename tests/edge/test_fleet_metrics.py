"""The fleet merges the agents' metrics batches into the task statuses every view shows.

A status is sent when what it says changes; a task's counters and rates come in its agent's
batches (``edge.reporting``). The fleet takes them only from the agent the task is placed on, only
while that agent is online in the life that sent them, never older than the status, and a cold
reader (``edge ls tasks``) asks for a full batch and gets every task's current counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from typing import Any

from edge.bus import Bus, Message
from edge.controller import Fleet
from edge.controller.views import AGENT_OFFLINE, deployment_views
from edge.frames import encode_frame, encode_value
from edge.graph import encode_spec, parse_spec
from edge.host import Host
from edge.settings import load_settings
from edge.task import Port, Task
from edge.topics import Topics

TIMEOUT = 10.0


class Scale(Task):
    """Doubles numbers."""

    inputs = {"in": Port(content="number")}
    outputs = {"out": Port(content="number")}

    async def run(self) -> None:
        async for frame in self.receive("in"):
            await self.send("out", frame.value * 2)


class _NoBus:
    """Drives ``Fleet._on_message`` directly: nothing is sent."""

    is_connected = False


def _metrics(frames: int, rate: float = 5.0) -> dict[str, Any]:
    return {"inputs": {"in": {"frames": frames, "errors": 0, "rate": rate}}, "outputs": {}, "dropped": 0, "errors": 0}


def _fleet() -> tuple[Fleet, Topics]:
    topics = Topics("m")
    fleet = Fleet(_NoBus(), topics)  # type: ignore[arg-type]
    spec = parse_spec({"id": "d", "tasks": [{"id": "t", "type": "scale", "agent": "a1"},
                                            {"id": "u", "type": "scale", "agent": "a2"}]})
    for agent in ("a1", "a2"):
        fleet._on_message(Message(topics.agent_state(agent), encode_value(
            {"online": True, "epoch": 1, "boot": f"b-{agent}", "ts": 1000})))
    fleet._on_message(Message(topics.deployment("d"), encode_spec(spec)))
    for task, agent in (("t", "a1"), ("u", "a2")):
        fleet._on_message(Message(topics.task_status("d", task), encode_value(
            {"state": "running", "agent": agent, "type": "scale", "version": 1, "ts": 2000, "metrics": _metrics(1)})))
    return fleet, topics


def _batch(topics: Topics, agent: str, tasks: list[tuple[str, int]], *, ts: int = 3000, **extra: Any) -> Message:
    return Message(topics.agent_metrics(agent), encode_value(
        {"boot": f"b-{agent}", "epoch": 1, "seq": 1, "ts": ts, "interval": 2.0, "full": False, "part": 0, "parts": 1,
         "tasks": [{"deployment": "d", "task": task, "metrics": _metrics(frames)} for task, frames in tasks],
         **extra}))


def test_a_batch_updates_the_shown_metrics_of_its_agents_tasks():
    fleet, topics = _fleet()
    changed: list[tuple[str, str]] = []
    fleet.on_change(lambda kind, key: changed.append((kind, key)))
    fleet._on_message(_batch(topics, "a1", [("t", 40)]))
    view = {v.task: v for v in deployment_views(fleet, "d")}["t"]
    assert view.current and view.metrics["inputs"]["in"]["frames"] == 40 and view.status is not None
    assert view.status.metrics_ts == 3000 and changed == [("status", "d/t")]
    # an older batch (measured before the last one) changes nothing
    fleet._on_message(_batch(topics, "a1", [("t", 30)], ts=2500))
    assert fleet.statuses[("d", "t")].metrics["inputs"]["in"]["frames"] == 40


def test_an_agent_speaks_only_for_its_own_tasks():
    fleet, topics = _fleet()
    fleet._on_message(_batch(topics, "a1", [("u", 999), ("nope", 5)]))  # u runs on a2; nope is in no spec
    assert fleet.statuses[("d", "u")].metrics["inputs"]["in"]["frames"] == 1
    assert ("d", "nope") not in fleet.statuses and ("d", "nope") not in fleet._live


def test_metrics_of_an_offline_agent_or_of_another_life_are_not_shown_as_live():
    fleet, topics = _fleet()
    fleet._on_message(_batch(topics, "a1", [("t", 40)]))
    fleet._on_message(Message(topics.agent_state("a1"), encode_value(
        {"online": False, "epoch": 1, "boot": "b-a1", "ts": 1000})))
    fleet._on_message(_batch(topics, "a1", [("t", 50)], ts=4000))  # a late batch after the will
    view = {v.task: v for v in deployment_views(fleet, "d")}["t"]
    assert view.state == AGENT_OFFLINE and not view.current  # the last known counts, no rates shown
    assert view.metrics["inputs"]["in"]["frames"] == 40
    fleet._on_message(Message(topics.agent_state("a1"), encode_value(
        {"online": True, "epoch": 1, "boot": "b-new", "ts": 5000})))
    fleet._on_message(_batch(topics, "a1", [("t", 60)], ts=6000))  # the old life's boot id: stale
    assert fleet.statuses[("d", "t")].metrics["inputs"]["in"]["frames"] == 40 and fleet.stale_batches == 2


def test_a_status_sent_later_than_a_batch_wins_and_an_earlier_one_does_not(caplog):
    fleet, topics = _fleet()
    fleet._on_message(_batch(topics, "a1", [("t", 40)], ts=3000))
    status = {"state": "running", "agent": "a1", "type": "scale", "version": 2, "metrics": _metrics(35)}
    fleet._on_message(Message(topics.task_status("d", "t"), encode_value({**status, "ts": 2900})))
    assert fleet.statuses[("d", "t")].metrics["inputs"]["in"]["frames"] == 40  # the batch is newer
    assert fleet.statuses[("d", "t")].version == 2
    fleet._on_message(Message(topics.task_status("d", "t"), encode_value({**status, "ts": 3100,
                                                                         "metrics": _metrics(41)})))
    assert fleet.statuses[("d", "t")].metrics["inputs"]["in"]["frames"] == 41
    fleet._on_message(Message(topics.task_status("d", "t"), encode_value(
        {"state": "stopped", "agent": "a1", "type": "scale", "ts": 3200})))
    fleet._on_message(_batch(topics, "a1", [("t", 50)], ts=3300))  # a stopped task has no live metrics
    assert fleet.statuses[("d", "t")].metrics == {}


def test_garbage_batches_and_entries_are_refused_and_counted(caplog):
    fleet, topics = _fleet()
    with caplog.at_level(logging.WARNING, logger="edge.controller"):
        for payload in ({"tasks": "abc"}, {"tasks": [], "parts": 10**30}, {"tasks": [1] * 3000}, [1, 2]):
            fleet._on_message(Message(topics.agent_metrics("a1"), encode_value(payload)))
        assert fleet.errors == 4
        good = {"deployment": "d", "task": "t", "metrics": _metrics(7)}
        bad = [{"deployment": "d/x", "task": "t", "metrics": {}}, {"deployment": "d", "task": "t",
                                                                 "metrics": {"inputs": [1]}}]
        fleet._on_message(Message(topics.agent_metrics("a1"), encode_value(
            {"boot": "b-a1", "epoch": 1, "ts": 3000, "tasks": [*bad, good]})))
    assert fleet.errors == 6  # each bad entry counted; the good one stands
    assert fleet.statuses[("d", "t")].metrics["inputs"]["in"]["frames"] == 7
    assert any("ignored a metrics entry of agent a1" in r.getMessage() for r in caplog.records)


def test_a_full_batch_is_counted_once_all_its_parts_came():
    fleet, topics = _fleet()
    fleet._on_message(_batch(topics, "a1", [("t", 40)], full=True, parts=2, part=0, seq=7))
    assert fleet._full_batches.get("a1", 0) == 0
    fleet._on_message(_batch(topics, "a1", [], full=True, parts=2, part=1, seq=7))
    assert fleet._full_batches["a1"] == 1


async def test_a_cold_reader_gets_every_tasks_current_counts(broker, tmp_path):
    """An idle task's counts changed after its last status: a new fleet asks for them and shows them."""
    topics = Topics(f"fm{uuid.uuid4().hex[:8]}")
    settings = load_settings(broker=broker.url.geturl(), namespace=topics.namespace, agent_id="a1",
                             data_dir=tmp_path / "a1")
    spec = parse_spec({"id": "d", "tasks": [{"id": "s", "type": "scale", "agent": "a1"}],
                       "edges": [{"from": f"topic:{topics.namespace}/in", "to": "s.in"}]})
    async with Host(settings, types=[Scale], persist=False, status_interval=0.2) as host, Bus(broker.url) as bus:
        await bus.publish(topics.deployment("d"), encode_spec(spec), qos=1, retain=True)
        async with asyncio.timeout(TIMEOUT):
            while not (host.instances.get(("d", "s")) and host.instances[("d", "s")].state == "running"):
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)  # the running status has gone out, with its snapshot of 0 frames
            for i in range(3):
                await bus.publish(f"{topics.namespace}/in", encode_frame(i))
            while (task := host.instances[("d", "s")].task) is None or task.in_metrics["in"].frames < 3:
                await asyncio.sleep(0.05)
        async with Fleet(bus, topics) as fleet:
            await fleet.synced(TIMEOUT)
            assert await fleet.fresh_metrics(TIMEOUT)
            view = deployment_views(fleet, "d")[0]
            assert view.state == "running" and view.metrics["inputs"]["in"]["frames"] == 3, view.metrics
            assert view.metrics["outputs"]["out"]["frames"] == 3


async def test_a_watched_fleet_keeps_the_shown_counts_current_and_an_unwatched_one_lets_the_lease_end(broker,
                                                                                                       tmp_path):
    """While a reader watches (the panel with a browser), a task deployed meanwhile gets its agent asked at
    once and its counts follow; unwatched, the agent stops sending when the lease ends."""
    topics = Topics(f"fm{uuid.uuid4().hex[:8]}")
    settings = load_settings(broker=broker.url.geturl(), namespace=topics.namespace, agent_id="a1",
                             data_dir=tmp_path / "a1")
    spec = parse_spec({"id": "d", "tasks": [{"id": "s", "type": "scale", "agent": "a1"}],
                       "edges": [{"from": f"topic:{topics.namespace}/in", "to": "s.in"}]})
    async with Host(settings, types=[Scale], persist=False, status_interval=0.2), Bus(broker.url) as bus, \
            Fleet(bus, topics) as fleet, bus.subscribe(topics.agent_metrics("a1")) as batches:
        fleet.lease = 1.5
        await fleet.synced(TIMEOUT)
        fleet.watch("page")
        await bus.publish(topics.deployment("d"), encode_spec(spec), qos=1, retain=True)
        await fleet.wait_for(lambda f: (s := f.statuses.get(("d", "s"))) is not None and s.state == "running", TIMEOUT)

        def frames(f: Fleet) -> int:
            return int(f.statuses[("d", "s")].metrics.get("inputs", {}).get("in", {}).get("frames", 0))

        for i in range(1, 4):  # over two lease lengths: renewed while watched
            await bus.publish(f"{topics.namespace}/in", encode_frame(i))
            await fleet.wait_for(lambda f, i=i: frames(f) == i, TIMEOUT)
            await asyncio.sleep(0.8)  # the counts would stop following, were the lease not renewed
        fleet.unwatch("page")
        await asyncio.sleep(fleet.lease + 0.5)  # the last lease runs out
        while batches.queued:
            await batches.get()
        await bus.publish(f"{topics.namespace}/in", encode_frame(4))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1.0):
                message = await batches.get()
                raise AssertionError(f"a metrics batch without a lease: {message.payload!r}")
        assert frames(fleet) == 3  # what was last sent, until someone asks
        assert await fleet.fresh_metrics(TIMEOUT) and frames(fleet) == 4
