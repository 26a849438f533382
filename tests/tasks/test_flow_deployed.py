"""Every flow-control and data-shaping type deployed by spec to a real runtime, driven by a plain paho client.

One deployment holds them all, each wired from and to plain topics (``topic:`` edges; split feeds
join directly). A paho client, as any other MQTT program would, publishes the spec and the input
frames and reads what comes out, the tasks' statuses with their metrics included.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
import uuid
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edge.frames import decode_frame, decode_value, encode_frame
from edge.graph import encode_spec, parse_spec
from edge.host import Host
from edge.settings import load_settings
from edge.topics import Topics
from tasks.builtin import TYPES
from tasks.schedule import TYPES as SCHEDULE_TYPES

TIMEOUT = 10.0


class Client:
    """A plain paho client on its own network thread: what it receives, per topic."""

    def __init__(self, url: Any) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"flow-{uuid.uuid4().hex[:10]}",
                                  protocol=mqtt.MQTTv311, clean_session=True)
        if url.username:
            self.client.username_pw_set(url.username, url.password)
        self.url = url
        self.received: dict[str, queue.Queue[bytes]] = {}
        self._lock = threading.Lock()
        self._acked: set[int] = set()
        self._connected = threading.Event()
        self.client.on_connect = lambda *_: self._connected.set()
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda _c, _u, mid, *_: self._acked.add(mid)

    def _on_message(self, _c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        self._queue(message.topic).put(message.payload)

    def _queue(self, topic: str) -> queue.Queue[bytes]:
        with self._lock:
            return self.received.setdefault(topic, queue.Queue())

    def __enter__(self) -> Client:
        self.client.connect(self.url.host, self.url.port, keepalive=30)
        self.client.loop_start()
        assert self._connected.wait(TIMEOUT)
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def subscribe(self, topic: str) -> None:
        _, mid = self.client.subscribe(topic, qos=1)
        deadline = time.monotonic() + TIMEOUT
        while mid not in self._acked:
            assert time.monotonic() < deadline, f"no SUBACK for {topic}"
            time.sleep(0.005)

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(TIMEOUT)
        assert info.is_published()

    def next(self, topic: str) -> bytes:
        try:
            return self._queue(topic).get(timeout=TIMEOUT)
        except queue.Empty:
            raise AssertionError(f"nothing on {topic} within {TIMEOUT} s") from None

    def frames(self, topic: str, count: int) -> list[Any]:
        return [decode_frame(self.next(topic)) for _ in range(count)]

    def status(self, topic: str, predicate: Any) -> dict[str, Any]:
        """The first status on ``topic`` for which ``predicate`` holds."""
        deadline = time.monotonic() + TIMEOUT
        while True:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no such status on {topic}"
            try:
                payload = self._queue(topic).get(timeout=remaining)
            except queue.Empty:
                continue
            if payload and predicate(status := decode_value(payload)):
                return status


TASKS: dict[str, tuple[str, dict[str, Any]]] = {
    "filter": ("filter", {"mode": "deadband", "band": 1}),
    "throttle": ("throttle", {"count": 1, "interval_ms": 1000, "keep": "latest"}),
    "trigger": ("trigger", {"delay_ms": 100, "first": "on", "second": "off"}),
    "schedule": ("schedule", {"cron": ["* * * * * *"], "value": "tick", "timezone": "UTC"}),
    "change": ("change", {"rules": [{"action": "set", "path": "unit", "value": "°C"},
                                    {"action": "move", "path": "t", "to": "temp"}]}),
    "split": ("split", {}),
    "join": ("join", {}),
    "batch": ("batch", {"count": 3}),
    "parse": ("parse", {"format": "csv", "numbers": True}),
    "format": ("format", {"format": "json"}),
}


async def test_every_flow_and_shaping_type_deployed_and_fed_by_a_plain_client(broker, tmp_path):
    ns = f"t{uuid.uuid4().hex[:10]}"
    topics = Topics(ns)
    base = f"test/flow/{ns}"
    edges = [{"from": f"{name}.out", "to": f"topic:{base}/out/{name}"} for name in TASKS]
    edges += [{"from": f"topic:{base}/in/{name}", "to": f"{name}.in"} for name in TASKS
              if name not in ("schedule", "join")]
    edges.append({"from": "split.out", "to": "join.in"})
    spec = {"id": "flow", "tasks": [{"id": name, "type": kind, "agent": "pi", "config": config}
                                    for name, (kind, config) in TASKS.items()], "edges": edges}
    assert {kind for kind, _ in TASKS.values()} == {t.type_name for t in (*TYPES, *SCHEDULE_TYPES)
                                                     if t.category in ("flow", "data") or t.type_name == "schedule"}
    settings = load_settings(broker=str(broker.url), namespace=ns, agent_id="pi", data_dir=tmp_path)
    async with Host(settings, types=[*TYPES, *SCHEDULE_TYPES], persist=False, status_interval=0.1):
        # paho waits block: the client runs in a thread while the runtime runs in this event loop
        await asyncio.to_thread(_drive, broker.url, topics, base, spec)


def _drive(url: Any, topics: Topics, base: str, spec: dict[str, Any]) -> None:
    with Client(url) as client:
        client.subscribe(f"{base}/out/#")
        for name in TASKS:
            client.subscribe(topics.task_status("flow", name))
        client.subscribe(topics.agent_metrics("pi"))
        client.publish(topics.deployment("flow"), encode_spec(parse_spec(spec)), retain=True)
        for name in TASKS:  # running: its inputs are subscribed
            client.status(topics.task_status("flow", name), lambda s: s["state"] == "running")

        def feed(name: str, *values: Any) -> None:
            for value in values:
                client.publish(f"{base}/in/{name}", encode_frame(value))

        def out(name: str, count: int = 1) -> list[Any]:
            return [frame.value for frame in client.frames(f"{base}/out/{name}", count)]

        feed("filter", 20.0, 20.5, 21.5, 21.0)
        assert out("filter", 2) == [20.0, 21.5]
        feed("throttle", 1, 2, 3)
        assert out("throttle", 2) == [1, 3]  # 2 is dropped; 3, the newest, at the interval's end
        feed("trigger", "x")
        assert out("trigger", 2) == ["on", "off"]
        tick = client.frames(f"{base}/out/schedule", 1)[0]
        assert tick.value == "tick" and tick.ts % 1000 == 0
        feed("change", {"t": 21.5, "room": "hall"})
        assert out("change") == [{"room": "hall", "unit": "°C", "temp": 21.5}]
        feed("split", [1, "two", {"three": 3}])
        items = client.frames(f"{base}/out/split", 3)
        assert [f.value for f in items] == [1, "two", {"three": 3}]
        assert [f.extra["part"]["index"] for f in items] == [0, 1, 2]
        assert out("join") == [[1, "two", {"three": 3}]]
        feed("batch", 1, 2, 3, 4)
        assert out("batch") == [[1, 2, 3]]
        feed("parse", "room,temp\nhall,21.5\n", "a,b\n1,2,3\n", "x\n1\n")
        assert out("parse", 2) == [[{"room": "hall", "temp": 21.5}], [{"x": 1}]]
        feed("format", {"a": [1, None]}, float("nan"))
        assert out("format") == ['{"a":[1,null]}']

        def metrics(name: str, predicate: Any) -> dict[str, Any]:
            """The task's metrics in the first of the agent's metrics batches where ``predicate`` holds."""
            client.publish(topics.agent_metrics_request("pi"), b"")  # metrics go to a reader who asks (a lease)
            batch = client.status(topics.agent_metrics("pi"), lambda b: any(
                e["deployment"] == "flow" and e["task"] == name and predicate(e["metrics"]) for e in b["tasks"]))
            return next(e["metrics"] for e in batch["tasks"] if e["deployment"] == "flow" and e["task"] == name)

        assert metrics("throttle", lambda m: m["dropped"] >= 1)["dropped"] == 1
        assert metrics("parse", lambda m: m["errors"] >= 1)["inputs"]["in"]["errors"] == 1
        assert metrics("format", lambda m: m["errors"] >= 1)["inputs"]["in"]["errors"] == 1
        client.publish(topics.deployment("flow"), b"", retain=True)  # no retained spec left on the shared broker
