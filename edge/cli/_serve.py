"""The long-running commands (``up``, ``broker``, ``agent``, ``ui``) and the set-up ones (``health``, ``acl``)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from typing import TYPE_CHECKING

from edge.cli._deploy import _load_spec_file, _open_controller
from edge.errors import ConfigError, EdgeError

if TYPE_CHECKING:
    from edge.settings import Settings



def _check_data_dir(settings: Settings) -> None:
    """An agent writes its state under EDGE_DATA_DIR: one line now rather than a traceback per reconnect."""
    path = settings.data_dir
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"EDGE_DATA_DIR {path} cannot be created: {exc.strerror or exc}",
                          field="EDGE_DATA_DIR") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(f"EDGE_DATA_DIR {path} is not writable", field="EDGE_DATA_DIR")


async def cmd_up(args: argparse.Namespace, settings: Settings) -> int:
    from agent import Agent
    from edge.broker import open_broker
    from edge.broker.choose import check_broker_exposure

    try:
        from ui import bind_panel, check_exposure, serve
    except ImportError as exc:
        raise EdgeError(f"the control panel needs the 'ui' extra: pip install 'edgetasks[ui]' ({exc})") from None
    # refuse a panel or a broker open to the network without a password, or a busy port, before starting anything
    check_exposure(settings)
    check_broker_exposure(settings)
    _check_data_dir(settings)
    panel_socket = bind_panel(settings)
    async with contextlib.AsyncExitStack() as stack:
        stack.callback(panel_socket.close)
        broker = await stack.enter_async_context(open_broker(settings))
        settings = settings.model_copy(update={"broker": broker.url.geturl()})
        print(f"broker    {broker.name} at {broker.url}", flush=True)
        sources = [*settings.task_sources, *args.tasks]
        async with Agent(settings, task_sources=sources) as agent, asyncio.TaskGroup() as tg:
            print(f"agent     {agent.agent_id} (namespace {settings.namespace}, data in {settings.data_dir}, "
                  f"{len(agent.types)} task types)", flush=True)
            print(f"panel     http://{settings.controller_host}:{settings.controller_port}", flush=True)
            tg.create_task(agent.run())
            tg.create_task(serve(settings, sock=panel_socket))
    return 0


async def cmd_broker(args: argparse.Namespace, settings: Settings) -> int:
    from edge.broker import open_broker

    async with open_broker(settings) as broker:
        print(f"{broker.name} broker listening at {broker.url} (Ctrl+C to stop)", flush=True)
        await asyncio.Event().wait()
    return 0


async def cmd_agent(args: argparse.Namespace, settings: Settings) -> int:
    from agent import Agent

    _check_data_dir(settings)
    async with Agent(settings, task_sources=[*settings.task_sources, *args.tasks]) as agent:
        print(f"agent {agent.agent_id} connecting to {settings.broker_url} with {len(agent.types)} task types "
              "(Ctrl+C to stop)", flush=True)
        for name, reason in sorted(agent.unavailable.items()):
            print(f"  unavailable: {name}: {reason}", file=sys.stderr, flush=True)
        await agent.run()
    return 0


async def cmd_ui(args: argparse.Namespace, settings: Settings) -> int:
    try:
        from ui import bind_panel, check_exposure, serve
    except ImportError as exc:
        raise EdgeError(f"the control panel needs the 'ui' extra: pip install 'edgetasks[ui]' ({exc})") from None
    check_exposure(settings)
    panel_socket = bind_panel(settings)
    print(f"control panel on http://{settings.controller_host}:{settings.controller_port}", flush=True)
    await serve(settings, sock=panel_socket)
    return 0


async def cmd_health(args: argparse.Namespace, settings: Settings) -> int:
    """Exit 0 when this device's agent is connected to its broker and wrote its health lately."""
    from edge.documents import HealthFile
    from edge.frames import now_ms
    from edge.protocol import ValidationError, problem

    if args.panel:
        return await _panel_health(settings)

    path = settings.data_dir / "agents" / settings.agent_id / "health.json"
    try:
        health = HealthFile.model_validate_json(path.read_bytes())
    except OSError as exc:
        print(f"unhealthy: no readable health file at {path} ({exc})", file=sys.stderr)
        return 1
    except ValidationError as exc:
        print(f"unhealthy: no readable health file at {path} (not an agent's health: {problem(exc)})",
              file=sys.stderr)
        return 1
    age = (now_ms() - health.ts) / 1000
    if age > args.max_age:
        print(f"unhealthy: agent {settings.agent_id} last reported {age:.0f} s ago", file=sys.stderr)
        return 1
    if not health.connected:
        print(f"unhealthy: agent {settings.agent_id} is not connected to its broker", file=sys.stderr)
        return 1
    print(f"healthy: agent {settings.agent_id} connected, {len(health.tasks)} task(s)")
    return 0


async def _panel_health(settings: Settings) -> int:
    """Exit 0 when the control panel answers a page on its port (``edge health --panel``)."""
    import urllib.error
    import urllib.request

    from edge.broker.ports import connect_host

    host = connect_host(settings.controller_host)
    url = f"http://{f'[{host}]' if ':' in host else host}:{settings.controller_port}/"

    def fetch() -> int:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status)

    try:
        status = await asyncio.to_thread(fetch)
    except (urllib.error.URLError, OSError) as exc:
        print(f"unhealthy: the control panel does not answer at {url} ({getattr(exc, 'reason', exc)})",
              file=sys.stderr)
        return 1
    print(f"healthy: the control panel answers at {url} (HTTP {status})")
    return 0


async def cmd_acl(args: argparse.Namespace, settings: Settings) -> int:
    from pathlib import Path

    from edge.acl import write_acl_files

    specs = [_load_spec_file(path) for path in args.spec]
    if args.from_broker:
        async with contextlib.AsyncExitStack() as stack:
            controller = await _open_controller(settings, args, stack)
            specs += list(controller.fleet.deployments.values())
    agents = [a.strip() for a in args.agents.split(",") if a.strip()]
    args.controller = args.controller or ["controller"]
    out = Path(args.out) if args.out else settings.data_dir / "acl"
    files = write_acl_files(out, namespace=settings.namespace, agents=agents, controllers=args.controller,
                            specs=specs, broker_url=args.broker_url or str(settings.broker_url),
                            controller_port=args.controller_port)
    print(f"wrote {files.acl} ({len(specs)} deployment(s)), {files.passwords}, {files.controller_passwords} "
          f"and {files.listeners}")
    for user, path in files.credentials.items():
        print(f"  credentials of {user}: {path}")
    print(f"put {files.listeners} in /etc/mosquitto/conf.d/ (agents and controllers get a listener each); "
          "after a deploy, run this again and reload Mosquitto (kill -HUP)")
    return 0
