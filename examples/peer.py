"""An agent joining a running edgetasks server by URL.

    python examples/peer.py mqtt://192.168.1.10:1883 --id kitchen-pi
    python examples/peer.py mqtts://user:secret@broker.example:8883 --tasks my_tasks.py

It announces itself (retained birth, will), offers the built-in task types plus those of
``--tasks``, and runs whatever deployments pin to its id. ``--seconds N`` stops it after N
seconds (a clean stop: it publishes its offline state).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal

from agent import Agent
from edge.settings import load_settings


async def main(args: argparse.Namespace) -> None:
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)  # stop as Ctrl+C does
    overrides = {"broker": args.url}
    if args.id:
        overrides["agent_id"] = args.id
    settings = load_settings(**overrides)
    async with Agent(settings, task_sources=args.tasks) as agent:
        await agent.started.wait()
        print(f"agent {agent.agent_id} online at {agent.bus.url} (epoch {agent.epoch}), offering "
              f"{', '.join(sorted(agent.types)) or 'no task types'}", flush=True)
        async with asyncio.timeout(args.seconds):
            await agent.run()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url", help="broker URL, e.g. mqtt://server:1883")
    parser.add_argument("--id", help="agent id (default: EDGE_AGENT_ID, NODE_NAME or the host name)")
    parser.add_argument("--tasks", action="append", default=[], help="module or .py file with task types")
    parser.add_argument("--seconds", type=float, default=None, help="stop after this many seconds")
    with contextlib.suppress(KeyboardInterrupt, asyncio.CancelledError, TimeoutError):
        asyncio.run(main(parser.parse_args()))
