"""Status traffic: an idle task's retained status is not sent again until something in it changes.

Every retained message makes the managed Mosquitto rewrite its database (it saves on every
change), so a status republished every interval with nothing new but its timestamp cost CPU and
disk for nothing (bench/autosave.py). Liveness comes from the agent's state, not from statuses.
"""

from __future__ import annotations

import asyncio
import uuid

from sample_tasks import Scale

from edge.bus import Bus
from edge.frames import decode_value, encode_frame
from edge.graph import encode_spec, parse_spec
from edge.host import Host
from edge.settings import load_settings
from edge.topics import Topics

TIMEOUT = 10.0
INTERVAL = 0.1  # s between the agent's status reports in this test


async def _statuses(sub, seconds: float) -> list[dict]:
    """Every status that arrives within ``seconds``."""
    seen: list[dict] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while (left := deadline - loop.time()) > 0:
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
            Bus(broker.url) as bus, bus.subscribe(topics.task_status("d", "s")) as sub:
        await bus.publish(topics.deployment("d"), encode_spec(spec), qos=1, retain=True)
        async with asyncio.timeout(TIMEOUT):
            while not (host.instances.get(("d", "s")) and host.instances[("d", "s")].state == "running"):
                await asyncio.sleep(INTERVAL)
        await _statuses(sub, 5 * INTERVAL)  # starting, running, the first rate window: settled
        idle = await _statuses(sub, 20 * INTERVAL)
        # 20 report intervals of an idle task: nothing new to say, nothing sent (before: one a report)
        assert idle == [], idle
        await bus.publish(f"{topics.namespace}/in", encode_frame(2))
        changed = await _statuses(sub, 10 * INTERVAL)  # a change (a frame in, its rate) goes at the next report
        assert [s["metrics"]["inputs"]["in"]["frames"] for s in changed][:1] == [1], changed
        assert all(s["state"] == "running" for s in changed)
        # then the rate falls back to 0 (one more change) and the status is quiet again
        assert await _statuses(sub, 20 * INTERVAL) == []
