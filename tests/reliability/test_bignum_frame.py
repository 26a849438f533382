"""One hostile value into a deployed built-in task on an agent: counted, never a restart (issue 22.4).

``value: 10**400`` used to crash calculator, plot, radio_buttons, slider, status_display and
value_bar; each crash restarted the task and dropped the frames queued behind the bad one. Here
a calculator on a real agent takes a bignum followed at once by 50 good frames: all 50 results
come out, the bad frame is one error on its input, and the status shows no restart.
"""

from __future__ import annotations

import asyncio
import uuid

from agent import Agent
from edge.bus import Bus
from edge.controller import Controller
from edge.frames import decode_frame, encode_frame
from edge.graph import parse_spec
from edge.settings import load_settings

TIMEOUT = 15.0
GOOD = 50


async def test_a_bignum_is_counted_and_the_frames_behind_it_are_not_lost(broker, tmp_path):
    ns = f"v{uuid.uuid4().hex[:8]}"
    async with Agent(load_settings(broker=broker.url.geturl(), namespace=ns, agent_id="a1",
                                   data_dir=tmp_path / "a1")) as agent, \
            Controller(load_settings(broker=broker.url.geturl(), namespace=ns, data_dir=tmp_path / "c")) as ctl, \
            Bus(broker.url) as bus:
        await ctl.fleet.wait_for(lambda f: "a1" in f.agents and f.agents["a1"].offers("calculator"), TIMEOUT)
        await ctl.deploy(parse_spec({"id": "d", "tasks": [
            {"id": "c", "type": "calculator", "agent": "a1", "config": {"formula": "a * 2"}}],
            "edges": [{"from": "topic:hv/in", "to": "c.a"}, {"from": "c.out", "to": "topic:hv/out"}]}))
        await ctl.fleet.wait_for(lambda f: [s.state for s in f.tasks_of("d")] == ["running"], TIMEOUT)
        async with bus.subscribe("hv/out", maxsize=10_000) as out:
            await bus.publish("hv/in", encode_frame(10**400), qos=1)
            for n in range(GOOD):
                await bus.publish("hv/in", encode_frame(n), qos=1)
            async with asyncio.timeout(TIMEOUT):
                results = [decode_frame((await out.get()).payload).value for _ in range(GOOD)]
        assert results == [2.0 * n for n in range(GOOD)]
        instance = agent.instances[("d", "c")]
        assert (instance.state, instance.restarts, instance.errors) == ("running", 0, type(instance.errors)())
        assert instance.task is not None and instance.task.in_metrics["a"].errors == 1

        def counted(fleet) -> bool:
            status = fleet.statuses.get(("d", "c"))
            return status is not None and status.metrics.get("inputs", {}).get("a", {}).get("errors") == 1

        await ctl.fleet.wait_for(counted, TIMEOUT)
        status = ctl.fleet.statuses[("d", "c")]
        assert (status.state, status.restarts, status.last_error) == ("running", 0, None)
        assert status.metrics["inputs"]["a"]["frames"] == GOOD + 1
        await ctl.remove("d")
