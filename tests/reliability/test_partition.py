"""A network partition between an agent and its broker, in network namespaces made by the test.

The broker listens on one end of a veth pair in the root namespace, the agent runs in its own
namespace on the other end. The test cuts the link, sees the broker declare the agent dead (its
will, after the keep-alive), heals the link, and sees everything converge by itself: the agent
online with a new epoch, its task running, and not one of its QoS 1 frames lost.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.broker import MosquittoBroker, free_port
from edge.bus import Bus
from edge.controller import Controller
from edge.frames import decode_frame
from edge.graph import parse_spec
from edge.settings import load_settings

SAMPLES = str(Path(__file__).parents[1] / "agent" / "sample_tasks.py")
TIMEOUT = 30.0


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=20)


@pytest.fixture
def netns() -> Iterator[tuple[str, str, str, str]]:
    """(namespace, root-side interface, broker address, agent address), removed afterwards."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("network namespaces need root and iproute2 (ip)")
    tag = secrets.token_hex(3)
    ns, root_if, ns_if = f"edge-{tag}", f"er{tag}", f"ea{tag}"
    octet = int(tag[:2], 16) % 250 + 1
    broker_addr, agent_addr = f"10.213.{octet}.1", f"10.213.{octet}.2"
    try:
        ip("netns", "add", ns)
    except subprocess.CalledProcessError as exc:
        pytest.skip(f"cannot create a network namespace here: {exc.stderr.decode().strip()}")
    try:
        ip("link", "add", root_if, "type", "veth", "peer", "name", ns_if)
        ip("link", "set", ns_if, "netns", ns)
        ip("addr", "add", f"{broker_addr}/30", "dev", root_if)
        ip("link", "set", root_if, "up")
        ip("-n", ns, "addr", "add", f"{agent_addr}/30", "dev", ns_if)
        ip("-n", ns, "link", "set", ns_if, "up")
        ip("-n", ns, "link", "set", "lo", "up")
        yield ns, root_if, broker_addr, agent_addr
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=20, check=False)
        subprocess.run(["ip", "link", "del", root_if], capture_output=True, timeout=20, check=False)


async def test_partition_heals_without_manual_steps(netns, tmp_path):
    ns_name, root_if, broker_addr, _ = netns
    port = free_port()
    url = f"mqtt://{broker_addr}:{port}"
    namespace = f"p{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "EDGE_BROKER": url, "EDGE_NAMESPACE": namespace, "EDGE_AGENT_ID": "far",
           "EDGE_DATA_DIR": str(tmp_path / "far"), "EDGE_KEEPALIVE": "2"}
    received: list[int] = []
    async with MosquittoBroker(host=broker_addr, port=port, data_dir=tmp_path / "broker"):
        agent = subprocess.Popen(["ip", "netns", "exec", ns_name, sys.executable, "-m", "edge", "agent", "--tasks",
                                  SAMPLES], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            settings = load_settings(broker=url, namespace=namespace, data_dir=tmp_path / "ctl")
            async with Controller(settings) as ctl, \
                    Bus(url, client_id=f"keeper-{namespace}", clean_start=False) as keeper:
                await keeper.subscribe("part/out", qos=1, callback=lambda m: received.append(
                    decode_frame(m.payload).value))
                await ctl.fleet.wait_for(lambda f: "far" in f.agents and f.agents["far"].online
                                        and f.agents["far"].offers("ticker"), TIMEOUT)
                epoch = ctl.fleet.agents["far"].epoch
                await ctl.deploy(parse_spec({"id": "part", "tasks": [
                    {"id": "tick", "type": "ticker", "agent": "far", "config": {"interval_ms": 20}}],
                    "edges": [{"from": "tick.out", "to": "topic:part/out"}]}))
                await ctl.fleet.wait_for(lambda f: [s.state for s in f.tasks_of("part")] == ["running"], TIMEOUT)

                ip("link", "set", root_if, "down")  # the partition
                loop = asyncio.get_running_loop()
                cut_at = loop.time()
                await ctl.fleet.wait_for(lambda f: not f.agents["far"].online, TIMEOUT)
                detected = loop.time() - cut_at
                assert detected < 2 * 1.5 * 2 + 2  # the broker's keep-alive check (1.5 x 2 s), with slack
                count_at_cut = len(received)
                await asyncio.sleep(2)
                ip("link", "set", root_if, "up")  # healed

                await ctl.fleet.wait_for(lambda f: f.agents["far"].online and f.agents["far"].epoch > epoch, TIMEOUT)
                await ctl.fleet.wait_for(lambda f: [s.state for s in f.tasks_of("part")] == ["running"], TIMEOUT)
                async with asyncio.timeout(TIMEOUT):
                    while len(received) < count_at_cut + 300:
                        await asyncio.sleep(0.05)
                await ctl.remove("part")
        finally:
            agent.terminate()
            agent.wait(15)
    values = sorted(set(received))
    assert values == list(range(values[0], values[-1] + 1)), "a tick was lost across the partition"
