"""Task inputs that wait (``Port(overflow="wait")``, ``Policy.WAIT``) against real brokers, both transports.

A plain paho client publishes numbered frames at QoS 1 as fast as it can to a task whose input
takes nothing until the test lets it: the input holds QoS 1 frames unacknowledged once its lane
is full, so the broker stops at its in-flight window and keeps the rest queued; when the task
reads, every frame arrives, in order, and the agent never held more than the window. The same
with the default policy drops the oldest frames, counted. The windows are measured, not
assumed (docs/reliability.md): Mosquitto keeps to an MQTT 5 client's receive maximum, and to
its ``max_inflight_messages`` (20) for MQTT 3.1.1 (the paho transport's default protocol); the
embedded broker (rumqttd) ignores the receive maximum and keeps to its ``max_inflight_count``
(100, edge.broker.embedded).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any, ClassVar

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge.broker import RunningBroker
from edge.bus import Bus
from edge.frames import decode_frame, encode_frame
from edge.task import Port, Task, TaskContext

TIMEOUT = 20.0
FRAMES = 300
LANE = 10  # frames an input queues before it waits (EDGE_QUEUE_SIZE)
RECEIVE_MAXIMUM = 16


def window(broker: RunningBroker, transport: str) -> int:
    """The unacknowledged QoS 1 messages the broker sends one connection (measured, see the module doc)."""
    if type(broker).__name__ == "EmbeddedBroker":
        return 100
    return RECEIVE_MAXIMUM if transport == "mqtt5" else 20


def overshoot(broker: RunningBroker) -> int:
    """Messages past its window a broker was seen to send: Mosquitto 2.0.11 sometimes sends one or
    two more when acknowledgements come back while it sends (eclipse-mosquitto/mosquitto#2301)."""
    return 0 if type(broker).__name__ == "EmbeddedBroker" else 4


class Sink(Task):
    """Takes frames only while ``gate`` is open; keeps their values."""

    inputs: ClassVar = {"in": Port(content="number", overflow="wait")}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.gate = asyncio.Event()
        self.values: list[int] = []

    async def run(self) -> None:
        while True:
            await self.gate.wait()
            self.values.append((await self.recv("in")).value)


class DroppingSink(Sink):
    inputs: ClassVar = {"in": Port(content="number")}


def publish(broker: RunningBroker, topic: str, count: int, *, start: int = 0) -> None:
    """``count`` frames at QoS 1 from a plain paho client, as fast as the broker acknowledges them."""
    url = broker.url
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:8]}")
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    if url.username is not None:
        client.username_pw_set(url.username, url.password)
    client.connect(url.host, url.port)
    client.loop_start()
    try:
        infos = [client.publish(topic, encode_frame(n, seq=n), qos=1) for n in range(start, start + count)]
        for info in infos:
            info.wait_for_publish(TIMEOUT)
            assert info.is_published()
    finally:
        client.loop_stop()
        client.disconnect()


async def until(condition: Callable[[], bool], what: str, state: Callable[[], object] = lambda: "") -> None:
    try:
        async with asyncio.timeout(TIMEOUT):
            while not condition():
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"no {what} within {TIMEOUT} s {state()}") from None


def bus_for(broker: RunningBroker, transport: str, **kwargs: Any) -> Bus:
    return Bus(broker.url, transport=transport, client_id=f"wait-{uuid.uuid4().hex[:8]}",  # type: ignore[arg-type]
               receive_maximum=RECEIVE_MAXIMUM, **kwargs)


async def started(task: Task) -> asyncio.Task[None]:
    await task.open_inputs()
    return asyncio.get_running_loop().create_task(task.run())


async def stop(runner: asyncio.Task[None], *tasks: Task) -> None:
    runner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await runner
    for task in tasks:
        await task.close()


async def test_a_wait_input_gets_every_frame_of_a_faster_publisher(broker, transport):
    topic = f"wait/{uuid.uuid4().hex[:8]}"
    async with bus_for(broker, transport) as bus:
        sink = Sink(context=TaskContext(bus=bus, instance_id="sink", sources={"in": topic}, targets={},
                                        queue_size=LANE))
        runner = await started(sink)
        try:
            await asyncio.to_thread(publish, broker, topic, FRAMES)
            lane = sink._inbox["in"]  # type: ignore[index]
            limit = window(broker, transport)
            # the lane is full and holds a window's worth unacknowledged: the broker stopped there
            await until(lambda: sink.held_frames() >= limit, "a full window held", lambda: (len(lane), lane.held))
            assert len(lane) == LANE + lane.held and lane.dropped == 0
            sink.gate.set()
            await until(lambda: len(sink.values) == FRAMES, "every frame",
                        lambda: (len(sink.values), sink.values[-3:], len(lane), lane.held, lane.dropped))
            assert sink.values == list(range(FRAMES))
            assert sink.dropped() == 0 and sink.in_metrics["in"].errors == 0
            # the agent's memory: the lane and one window (and the broker's overshoot), never more
            assert limit <= lane.held_high_water <= limit + overshoot(broker)
            assert lane.high_water <= LANE and lane.overflow == 0 and sink.held_frames() == 0
        finally:
            await stop(runner, sink)


async def test_the_default_input_drops_the_oldest_and_counts(broker, transport):
    topic = f"wait/{uuid.uuid4().hex[:8]}"
    async with bus_for(broker, transport) as bus:
        sink = DroppingSink(context=TaskContext(bus=bus, instance_id="sink", sources={"in": topic}, targets={},
                                                queue_size=LANE))
        runner = await started(sink)
        try:
            await asyncio.to_thread(publish, broker, topic, FRAMES)
            await until(lambda: sink.dropped() == FRAMES - LANE, "the broker sent everything")
            sink.gate.set()
            await until(lambda: len(sink.values) == LANE, "what the lane kept")
            assert sink.values == list(range(FRAMES - LANE, FRAMES))  # the newest; the oldest were dropped
            assert sink.held_frames() == 0
        finally:
            await stop(runner, sink)


async def test_a_message_two_holders_share_is_acknowledged_once_both_took_it(broker, transport):
    """A wait input and a holding queue on a covering wildcard get the same messages (one broker
    subscription, routed locally): each message's PUBACK waits for both, so the slower one paces
    the window, and nothing is lost or acknowledged early for either."""
    base = f"wait/{uuid.uuid4().hex[:8]}"
    topic = f"{base}/x"
    count = 150
    async with bus_for(broker, transport) as bus:
        sink = Sink(context=TaskContext(bus=bus, instance_id="sink", sources={"in": topic}, targets={},
                                        queue_size=LANE))
        sink.gate.set()  # the task reads freely
        runner = await started(sink)
        try:
            async with bus.subscribe(f"{base}/#", qos=1, hold=True, maxsize=5) as queue:  # not read yet
                await asyncio.to_thread(publish, broker, topic, count)
                limit = window(broker, transport)
                # the queue holds past its maxsize, unacknowledged; the task has taken them all (its
                # lane acknowledged each at once) but their PUBACKs wait for the queue's reader
                await until(lambda: queue.queued >= limit, "the queue holds a window")
                assert queue.queued <= limit + overshoot(broker) and queue.dropped == 0
                await until(lambda: len(sink.values) == queue.queued, "the task has taken the same")
                assert sink.values == list(range(queue.queued))
                assert sink._inbox["in"].held == 0  # type: ignore[index]
                taken: list[int] = []
                while len(taken) < count:
                    async with asyncio.timeout(TIMEOUT):
                        message = await queue.get()  # takes and acknowledges: the broker sends one more
                    taken.append(decode_frame(message.payload).value)
                assert taken == list(range(count))
                await until(lambda: len(sink.values) == count, "every frame on the input too")
                assert sink.values == list(range(count)) and sink.dropped() == 0
        finally:
            await stop(runner, sink)


async def test_a_stuck_wait_input_stalls_the_other_qos1_inputs_until_it_counts_as_stuck(broker, transport, caplog):
    """The head-of-line cost: one connection's window is shared by every QoS 1 input of the agent.
    Once a wait input that takes nothing holds the whole window, another QoS 1 input gets nothing,
    until ``queue_stall`` s pass without the stuck task taking a frame: then it lets its frames go
    (acknowledged), drops the oldest from then on (``overflow``), and the other input flows again."""
    stuck_topic, live_topic = f"wait/{uuid.uuid4().hex[:8]}", f"live/{uuid.uuid4().hex[:8]}"
    stall = 2.0
    async with bus_for(broker, transport) as bus:
        stuck = Sink(context=TaskContext(bus=bus, instance_id="stuck", sources={"in": stuck_topic}, targets={},
                                         queue_size=LANE, queue_stall=stall))
        live = DroppingSink(context=TaskContext(bus=bus, instance_id="live", sources={"in": live_topic},
                                                targets={}, queue_size=LANE))
        live.gate.set()
        runners = [await started(stuck), await started(live)]
        publishing = asyncio.get_running_loop().create_task(asyncio.to_thread(publish, broker, stuck_topic, FRAMES))
        try:
            limit = window(broker, transport)
            await until(lambda: stuck.held_frames() >= limit, "a full window held")
            loop = asyncio.get_running_loop()
            blocked_at = loop.time()
            await asyncio.to_thread(publish, broker, live_topic, 5)
            inbox = stuck._inbox
            assert inbox is not None
            if not inbox.stalls:  # (a machine this slow would make the next assertion meaningless)
                assert live.values == []  # QoS 1 behind the full window: nothing yet
            await until(lambda: len(live.values) == 5, "the live input after the stall")
            waited = loop.time() - blocked_at
            assert live.values == list(range(5))
            assert inbox.stalls >= 1 and waited < 2 * stall + 1.5, f"released after {waited:.2f} s"
            assert any("input 'in' held" in r.getMessage() and "the task took none" in r.getMessage()
                       for r in caplog.records if r.levelname == "WARNING")
            lane = inbox["in"]
            # the rest of the stuck input's frames came, and each pushed the oldest out, counted: the
            # lane kept the newest LANE frames
            await publishing
            await until(lambda: lane.overflow == FRAMES - LANE, "the stuck input's overflow",
                        lambda: (lane.overflow, len(lane)))
            assert lane.dropped == lane.overflow and stuck.held_frames() == 0
        finally:
            for runner in runners:
                runner.cancel()
            await asyncio.gather(*runners, publishing, return_exceptions=True)
            await stuck.close()
            await live.close()


async def test_a_deployment_spec_makes_an_input_wait(tmp_path, mosquitto_broker):
    """``wait: [in]`` in a spec makes an input of a type that does not declare it wait, on an agent,
    and changing it restarts the instance with the new policy."""
    from edge.desired import encode_record
    from edge.graph import parse_spec
    from edge.host import Host
    from edge.settings import load_settings
    from edge.topics import Topics

    ns = f"w{uuid.uuid4().hex[:8]}"
    url = mosquitto_broker.url.geturl()
    settings = load_settings(broker=url, namespace=ns, agent_id="a1", data_dir=tmp_path / "a1", queue_size=LANE)

    def spec(version: int, wait: list[str]) -> Any:
        return parse_spec({"id": "d", "version": version, "tasks": [
            {"id": "sink", "type": "dropping_sink", "agent": "a1", "wait": wait}],
            "edges": [{"from": f"topic:{ns}/in", "to": "sink.in"}]})

    async with Host(settings, types=[DroppingSink], status_interval=0.2) as host, \
            Bus(url, client_id=f"deployer-{ns}") as bus:
        def policy() -> str | None:
            instance = host.instances.get(("d", "sink"))
            task = instance.task if instance is not None and instance.state == "running" else None
            inbox = task._inbox if task is not None else None
            return inbox["in"].policy.value if inbox is not None else None

        await bus.publish(Topics(ns).deployment("d"), encode_record(spec(1, ["in", "nope"])), qos=1, retain=True)
        await until(lambda: policy() == "wait", "a waiting input", policy)
        await bus.publish(Topics(ns).deployment("d"), encode_record(spec(2, [])), qos=1, retain=True)
        await until(lambda: policy() == "oldest", "the default again", policy)
