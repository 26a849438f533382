"""``edge inject``, run as a user runs it (its own process), into a task a real agent runs."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid

from agent import Agent
from edge.bus import Bus
from edge.controller import Controller
from edge.frames import decode_frame
from edge.graph import parse_spec
from edge.settings import load_settings
from edge.topics import Topics

TIMEOUT = 10.0


def edge(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edge", *args], env=env, capture_output=True, text=True, timeout=60)


async def test_edge_inject_sends_a_value_into_an_input(broker, tmp_path):
    ns = f"c{uuid.uuid4().hex[:10]}"
    url = broker.url.geturl()
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_")}
    env.update({"EDGE_BROKER": url, "EDGE_NAMESPACE": ns, "EDGE_DATA_DIR": str(tmp_path / "cli")})

    def settings(name: str):
        return load_settings(broker=url, namespace=ns, agent_id=name, data_dir=tmp_path / name)

    async with Agent(settings("pi")), Controller(settings("ctl")) as controller, Bus(url) as probe, \
            probe.subscribe(Topics(ns).stream("demo", "calc", "out")) as out:
        await controller.fleet.wait_for(lambda f: "pi" in f.agents and f.agents["pi"].offers("calculator"), TIMEOUT)
        await controller.deploy(parse_spec({"id": "demo", "tasks": [
            {"id": "calc", "type": "calculator", "config": {"formula": "a * 2"}}]}))
        await controller.fleet.wait_for(lambda f: [s.state for s in f.tasks_of("demo")] == ["running"], TIMEOUT)
        done = await asyncio.to_thread(edge, "inject", "demo/calc.a", "21", env=env)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "injected 21 into demo/calc.a"
        async with asyncio.timeout(TIMEOUT):
            assert decode_frame((await out.get()).payload).value == 42
        # a user's mistakes: one line each, exit 1, nothing sent
        for args, line in [(("demo/calc", "1"), "'demo/calc' is not DEPLOYMENT/TASK.PORT (an input: demo/double.in)"),
                           (("demo/calc.b", "1"), "demo/calc has no input 'b' (its inputs: a)"),
                           (("nope/calc.a", "1"), "nope is not deployed: there is nothing to inject into")]:
            done = await asyncio.to_thread(edge, "inject", *args, env=env)
            assert done.returncode == 1 and done.stderr.strip() == f"edge: {line}", done.stderr
        assert out.queued == 0
