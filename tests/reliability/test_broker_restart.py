"""A broker restart (Mosquitto with persistence): everything reconnects by itself, announces itself
again, running tasks resume, and QoS 1 frames published during the outage arrive after it."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from pathlib import Path

from agent import Agent
from edge.broker import MosquittoBroker, free_port
from edge.bus import Bus
from edge.controller import Controller
from edge.frames import decode_frame, encode_frame
from edge.graph import parse_spec
from edge.settings import load_settings

HERE = Path(__file__).parent
SAMPLES = str(HERE.parent / "agent" / "sample_tasks.py")
ADDER = str(HERE.parent / "agent" / "adder_script.py")
TIMEOUT = 20.0


async def test_broker_restart_with_persistence(tmp_path):
    port = free_port()
    url = f"mqtt://127.0.0.1:{port}"
    ns = f"r{uuid.uuid4().hex[:8]}"
    broker_dir = tmp_path / "broker"

    def settings(name: str):
        return load_settings(broker=url, namespace=ns, agent_id=name, data_dir=tmp_path / name)

    broker = MosquittoBroker(port=port, data_dir=broker_dir)
    await broker.__aenter__()
    script = subprocess.Popen([sys.executable, ADDER, "--broker", url, "--id", "adders"],
                              env={**os.environ, "EDGE_NAMESPACE": ns, "EDGE_DATA_DIR": str(tmp_path / "fn")},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    received: list[int] = []
    try:
        async with Agent(settings("a1"), task_sources=[SAMPLES]), Controller(settings("ctl")) as ctl, \
                Bus(url, client_id=f"keeper-{ns}", clean_start=False, reconnect_delay=(0.05, 0.5)) as keeper:
            sub = await keeper.subscribe("rel/out", qos=1, callback=lambda m: received.append(
                decode_frame(m.payload).value))
            await ctl.fleet.wait_for(lambda f: {"a1", "adders"} <= {a.id for a in f.online}
                                     and f.agents["a1"].offers("ticker")
                                     and f.agents["adders"].offers("adder"), TIMEOUT)
            epochs = {a.id: a.epoch for a in ctl.fleet.online}
            await ctl.deploy(parse_spec({"id": "rel", "tasks": [
                {"id": "tick", "type": "ticker", "agent": "a1"},
                {"id": "add", "type": "adder", "agent": "adders"}],
                "edges": [{"from": "tick.out", "to": "topic:rel/out"}, {"from": "topic:rel/a", "to": "add.a"},
                          {"from": "topic:rel/b", "to": "add.b"}, {"from": "add.out", "to": "topic:rel/sum"}]}))
            await ctl.fleet.wait_for(lambda f: [s.state for s in f.tasks_of("rel")] == ["running", "running"],
                                     TIMEOUT)
            async with asyncio.timeout(TIMEOUT):
                while len(received) < 10:
                    await asyncio.sleep(0.02)

            await broker.__aexit__(None, None, None)  # the broker goes away for a while
            await asyncio.sleep(1.5)
            before_restart = len(received)
            broker = MosquittoBroker(port=port, data_dir=broker_dir)
            await broker.__aenter__()

            # births again (new epochs), statuses running, the fn_task script serves again
            await ctl.fleet.wait_for(lambda f: all(f.agents[a].online and f.agents[a].epoch > e
                                                   for a, e in epochs.items()), TIMEOUT)
            async with ctl.bus.subscribe("rel/sum") as sums:
                await ctl.bus.publish("rel/a", encode_frame(20))
                await asyncio.sleep(0.2)  # MQTT orders per topic only: let a arrive before b
                await ctl.bus.publish("rel/b", encode_frame(22))
                async with asyncio.timeout(TIMEOUT):
                    assert decode_frame((await sums.get()).payload).value == 42
            async with asyncio.timeout(TIMEOUT):
                while len(received) < before_restart + 100:
                    await asyncio.sleep(0.05)
            await sub.aclose()
            await ctl.remove("rel")
    finally:
        script.terminate()
        script.wait(10)
        await broker.__aexit__(None, None, None)
    # every tick arrived, those of the outage too (QoS 1 may bring a duplicate, never a gap)
    values = sorted(set(received))
    assert values == list(range(values[0], values[-1] + 1))
    assert values[0] == 0 and len(values) > 100
