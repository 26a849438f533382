"""What an agent's status traffic costs a neighbour: thousands of busy tasks beside a 20 frames/s deployment.

A managed Mosquitto (``edge.broker.MosquittoBroker``: a save after every retained change) and one
agent (a ``Host`` in this process) running a neighbouring deployment (a metronome sending 20 frames/s
to a topic this script counts) and N busy tasks (counters sending on an output wired nowhere, so
their counts change every report interval without any network traffic). Printed: the neighbour's
rate alone, while the busy tasks' start statuses go out (``start f/s``, over ``start s``) and
beside the running busy tasks once that is over (and the ratio to alone), the agent's status and
metrics messages per second as the broker delivers them then, and the broker's and this
process's CPU over that measurement.

    python bench/status_traffic.py [--tasks 10000] [--seconds 10] [--interval 2] [--tmpfs]

``--tmpfs`` keeps the broker's database in /dev/shm: each save then costs CPU only, not a disk's
fsync (on a disk shared with other work the start burst of N retained statuses goes at the
pace of its fsyncs). The script runs against any checkout (``PYTHONPATH=...``): before statuses were
sent on change, every busy task's status was republished every interval.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import ModuleType

from edge.broker import MosquittoBroker, free_port
from edge.bus import Bus, Subscription
from edge.frames import decode_frame, decode_value, encode_value, now_ms
from edge.graph import encode_spec, parse_spec
from edge.host import Host
from edge.settings import load_settings
from edge.task import Task
from edge.topics import Topics

SAMPLES = Path(__file__).parent.parent / "tests" / "agent" / "sample_tasks.py"  # Counter, Metronome
ARRIVALS = Path(__file__).parent.parent / "tests" / "_arrivals.py"  # count_arrivals, shared with the tests


def _load(path: Path) -> ModuleType:
    """A module of the tests, by its path (the tests' folder is not a package)."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _sample_types() -> list[type[Task]]:
    module = _load(SAMPLES)
    return [module.Counter, module.Metronome]


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().split()
    return (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")


async def _drain(sub) -> int:  # type: ignore[no-untyped-def]
    n = 0
    while sub.queued:
        await sub.get()
        n += 1
    return n


_count: Callable[[Subscription, float], Awaitable[int]] = _load(ARRIVALS).count_arrivals


async def measure(tasks: int, seconds: float, interval: float, data: Path) -> dict[str, float]:
    topics = Topics("bench")
    busy = parse_spec({"id": "busy", "tasks": [
        {"id": f"t{i}", "type": "counter", "agent": "a1", "config": {"interval_ms": int(interval * 900)}}
        for i in range(tasks)]})
    neighbour = parse_spec({"id": "neighbour", "tasks": [
        {"id": "n", "type": "metronome", "agent": "a1", "config": {"rate": 20.0}}],
        "edges": [{"from": "n.out", "to": "topic:bench/n"}]})
    async with MosquittoBroker(port=free_port(), data_dir=data / "broker") as broker:
        assert broker._proc is not None
        pid = broker._proc.pid
        settings = load_settings(broker=str(broker.url), namespace="bench", agent_id="a1", data_dir=data / "a1")
        async with Host(settings, types=_sample_types(), persist=False, status_interval=interval), \
                Bus(broker.url) as bus, bus.subscribe("bench/n", maxsize=100_000) as frames, \
                bus.subscribe(topics.all_task_statuses("busy"), maxsize=1_000_000) as statuses, \
                bus.subscribe(f"{topics.root}/agents/a1/metrics", maxsize=100_000) as batches:
            await bus.publish(topics.deployment("neighbour"), encode_spec(neighbour), qos=1, retain=True)
            await frames.get()
            alone = await _count(frames, seconds) / seconds
            started = time.monotonic()
            await bus.publish(topics.deployment("busy"), encode_spec(busy), qos=1, retain=True)
            running: set[str] = set()
            async with asyncio.timeout(600):
                while len(running) < tasks:
                    message = await statuses.get()
                    if message.payload and decode_value(message.payload).get("state") == "running":
                        running.add(message.topic)
            start_s = time.monotonic() - started
            # a reader watching (the panel with a browser): the agent sends changed metrics during the lease
            await bus.publish(topics.agent_metrics_request("a1"), encode_value({"watch": 3600.0}))
            during = await _drain(frames) / start_s  # what got through while the start's statuses were saved
            async with asyncio.timeout(600):  # frames held back behind them: through, before we count
                while (now_ms() - decode_frame((await frames.get()).payload).ts) > 200:
                    pass
            await asyncio.sleep(2 * interval)  # the first reports of the busy tasks
            for sub in (frames, statuses, batches):
                await _drain(sub)
            cpu_broker, cpu_self, t0 = _cpu(pid), time.process_time(), time.monotonic()
            beside = await _count(frames, seconds)
            elapsed = time.monotonic() - t0
            sent_statuses, sent_batches = await _drain(statuses), await _drain(batches)
            return {"tasks": tasks, "alone": alone, "during": during, "beside": beside / elapsed, "start_s": start_s,
                    "statuses_s": sent_statuses / elapsed, "metrics_s": sent_batches / elapsed,
                    "broker_cpu": 100 * (_cpu(pid) - cpu_broker) / elapsed,
                    "agent_cpu": 100 * (time.process_time() - cpu_self) / elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", default="10000", help="comma-separated counts of busy tasks")
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds of each measurement")
    parser.add_argument("--interval", type=float, default=2.0, help="the agent's report interval (s)")
    parser.add_argument("--tmpfs", action="store_true", help="keep the broker's database in /dev/shm")
    args = parser.parse_args()
    print(f"{'tasks':>6} {'start s':>8} {'alone f/s':>10} {'start f/s':>10} {'beside f/s':>11} {'ratio':>6} "
          f"{'status/s':>9} {'metrics/s':>10} {'broker CPU %':>13} {'agent CPU %':>12}")
    for tasks in (int(n) for n in args.tasks.split(",")):
        with tempfile.TemporaryDirectory(dir="/dev/shm" if args.tmpfs else None) as folder:
            r = asyncio.run(measure(tasks, args.seconds, args.interval, Path(folder)))
        print(f"{tasks:>6} {r['start_s']:>8.1f} {r['alone']:>10.1f} {r['during']:>10.1f} {r['beside']:>11.1f} "
              f"{r['beside'] / r['alone']:>6.2f} {r['statuses_s']:>9.1f} {r['metrics_s']:>10.1f} "
              f"{r['broker_cpu']:>13.1f} {r['agent_cpu']:>12.1f}")


if __name__ == "__main__":
    main()
