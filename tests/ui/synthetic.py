"""A synthetic fleet published straight on the broker: many agents (retained states with metric
history, catalogs) and a big deployment (spec and task statuses), as real agents would publish
them, without running them. For the panel's scale tests."""

from __future__ import annotations

import asyncio
import random

from edge.bus import Bus
from edge.frames import encode_value, now_ms
from edge.graph import DeploymentSpec, encode_spec, parse_spec
from edge.topics import Topics

SAMPLES = 12  # metric samples per agent, so the sparklines have a history


def catalog_entries() -> list[dict[str, object]]:
    from ui_tasks import Double, Numbers

    return [Numbers.describe(), Double.describe()]


def agent_id(i: int) -> str:
    return f"syn-{i:03d}"


def big_spec(deployment: str, n_tasks: int, n_agents: int) -> DeploymentSpec:
    """A chain: a numbers source every ten tasks, doubles after it; tasks spread over the agents."""
    tasks, edges = [], []
    for i in range(n_tasks):
        source = i % 10 == 0
        agent = i % n_agents
        agent -= agent % 10 == 9  # publish_fleet's offline agents: a task there would show `agent offline`
        tasks.append({"id": f"t{i:03d}", "type": "numbers" if source else "double", "agent": agent_id(agent),
                      "label": f"task {i}"})
        if not source:
            edges.append({"from": f"t{i - 1:03d}.out", "to": f"t{i:03d}.in"})
    return parse_spec({"id": deployment, "label": "synthetic", "tasks": tasks, "edges": edges})


def status(spec: DeploymentSpec, index: int, *, frames: int) -> dict[str, object]:
    task = spec.tasks[index]
    state = "failed" if index % 25 == 7 else "running"
    metrics = {"outputs": {"out": {"frames": frames, "rate": 10.0}}, "dropped": 0, "errors": 0}
    if task.type == "double":
        metrics["inputs"] = {"in": {"frames": frames, "errors": 0, "rate": 10.0}}
    failed = state == "failed"
    return {"state": state, "agent": task.agent, "type": task.type, "version": spec.version, "ts": now_ms(),
            "restarts": 3 if failed else 0, "error": "RuntimeError: synthetic" if failed else None, "metrics": metrics}


async def publish_fleet(bus: Bus, topics: Topics, *, n_agents: int = 200, n_tasks: int = 100,
                        deployment: str = "big") -> DeploymentSpec:
    """Publish the fleet in rounds of one message per agent, a moment apart: a broker queues at most
    so many QoS 1 messages for a subscriber (Mosquitto: ``max_queued_messages 1000``) and drops the
    rest, and a real fleet never reports 2,400 times in one burst."""
    rng = random.Random(7)
    types = catalog_entries()
    ts = now_ms() - SAMPLES * 5000
    for i in range(n_agents):
        aid = agent_id(i)
        await bus.publish(topics.agent_catalog(aid), encode_value({"agent": aid, "epoch": 1, "types": types}),
                          qos=1, retain=True)
    for k in range(SAMPLES):  # the fleet keeps one sample per state message
        await asyncio.sleep(0.2)
        for i in range(n_agents):
            host = {"name": f"pi-{i:03d}", "platform": "Linux-6.6", "machine": "aarch64", "python": "3.11.2",
                    "cpus": 4}
            state = {"online": i % 10 != 9, "epoch": 1, "ts": ts + k * 5000, "version": "0.1.0", "host": host,
                     "metrics": {"cpu_percent": round(rng.uniform(1, 60), 1),
                                 "rss_mb": round(rng.uniform(30, 90), 1)}}
            await bus.publish(topics.agent_state(agent_id(i)), encode_value(state), qos=1, retain=k == SAMPLES - 1)
    spec = big_spec(deployment, n_tasks, n_agents)
    await bus.publish(topics.deployment(deployment), encode_spec(spec), qos=1, retain=True)
    for index, task in enumerate(spec.tasks):
        await bus.publish(topics.task_status(deployment, task.id), encode_value(status(spec, index, frames=100)),
                          qos=1, retain=True)
    return spec


async def clear_fleet(bus: Bus, topics: Topics, *, n_agents: int = 200, n_tasks: int = 100,
                      deployment: str = "big") -> None:
    for i in range(n_agents):
        await bus.publish(topics.agent_catalog(agent_id(i)), b"", qos=1, retain=True)
        await bus.publish(topics.agent_state(agent_id(i)), b"", qos=1, retain=True)
    await bus.publish(topics.deployment(deployment), b"", qos=1, retain=True)
    for i in range(n_tasks):
        await bus.publish(topics.task_status(deployment, f"t{i:03d}"), b"", qos=1, retain=True)
