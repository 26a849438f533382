"""A whole edgetasks installation in one process: the embedded broker, an agent and the control panel.

    python examples/server.py                      # broker on 127.0.0.1:1883, panel on :8080
    python examples/server.py --port 1884 --http-port 8081 --tasks my_tasks.py
    DATA_DIR=/srv/edge python examples/server.py   # where specs and state are kept

Other devices join with ``python examples/peer.py mqtt://THIS_HOST:1883`` once the broker
listens on an address they reach (``--host 0.0.0.0``, and set credentials). This is what
``edge up`` does; the script shows the pieces and how they nest.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal

from agent import Agent
from edge.broker import open_broker
from edge.settings import load_settings
from ui import serve


async def main(args: argparse.Namespace) -> None:
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)  # stop as Ctrl+C does
    settings = load_settings(broker=args.broker, broker_host=args.host, broker_port=args.port,
                             controller_port=args.http_port)
    async with open_broker(settings) as broker:
        settings = settings.model_copy(update={"broker": broker.url.geturl()})
        async with Agent(settings, task_sources=args.tasks) as agent, asyncio.TaskGroup() as group:
            print(f"broker {broker.url}, agent {agent.agent_id}, data in {settings.data_dir}", flush=True)
            print(f"control panel on http://{settings.controller_host}:{settings.controller_port}", flush=True)
            group.create_task(agent.run())
            group.create_task(serve(settings))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--broker", default="embedded", help="embedded (default), mosquitto or auto")
    parser.add_argument("--host", default="127.0.0.1", help="address the broker binds to")
    parser.add_argument("--port", type=int, default=1883, help="MQTT port")
    parser.add_argument("--http-port", type=int, default=8080, help="control panel port")
    parser.add_argument("--tasks", action="append", default=[], help="module or .py file with task types")
    with contextlib.suppress(KeyboardInterrupt, asyncio.CancelledError):
        asyncio.run(main(parser.parse_args()))
