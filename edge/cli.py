"""The ``edge`` command. Subcommands import what they need when they run, so ``edge pub``
never loads NiceGUI and an agent on a Pi pays only for the agent."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any

from edge import __version__
from edge.errors import EdgeError

if TYPE_CHECKING:
    from edge.settings import Settings

__all__ = ["main"]

log = logging.getLogger("edge")

_QUIET_COMMANDS = {"pub", "tail", "ls", "deploy", "rm"}

Command = Callable[[argparse.Namespace, "Settings"], Coroutine[Any, Any, int]]


# -- commands ------------------------------------------------------------------------------------
async def cmd_up(args: argparse.Namespace, settings: Settings) -> int:
    from agent import Agent
    from edge.broker import open_broker

    try:
        from ui import serve
    except ImportError as exc:
        raise EdgeError(f"the control panel needs the 'ui' extra: pip install 'edgetasks[ui]' ({exc})") from None
    async with open_broker(settings) as broker:
        settings = settings.model_copy(update={"broker": broker.url.geturl()})
        print(f"broker    {broker.name} at {broker.url}", flush=True)
        sources = [*settings.task_sources, *args.tasks]
        async with Agent(settings, task_sources=sources) as agent, asyncio.TaskGroup() as tg:
            print(f"agent     {agent.agent_id} (namespace {settings.namespace}, data in {settings.data_dir}, "
                  f"{len(agent.types)} task types)", flush=True)
            print(f"panel     http://{settings.controller_host}:{settings.controller_port}", flush=True)
            tg.create_task(agent.run())
            tg.create_task(serve(settings))
    return 0


async def cmd_broker(args: argparse.Namespace, settings: Settings) -> int:
    from edge.broker import open_broker

    async with open_broker(settings) as broker:
        print(f"{broker.name} broker listening at {broker.url} (Ctrl+C to stop)", flush=True)
        await asyncio.Event().wait()
    return 0


async def cmd_agent(args: argparse.Namespace, settings: Settings) -> int:
    from agent import Agent

    async with Agent(settings, task_sources=[*settings.task_sources, *args.tasks]) as agent:
        print(f"agent {agent.agent_id} connecting to {settings.broker_url} with {len(agent.types)} task types "
              "(Ctrl+C to stop)", flush=True)
        for name, reason in sorted(agent.unavailable.items()):
            print(f"  unavailable: {name}: {reason}", file=sys.stderr, flush=True)
        await agent.run()
    return 0


async def cmd_ui(args: argparse.Namespace, settings: Settings) -> int:
    try:
        from ui import serve
    except ImportError as exc:
        raise EdgeError(f"the control panel needs the 'ui' extra: pip install 'edgetasks[ui]' ({exc})") from None
    print(f"control panel on http://{settings.controller_host}:{settings.controller_port}", flush=True)
    await serve(settings)
    return 0


async def cmd_deploy(args: argparse.Namespace, settings: Settings) -> int:
    from pathlib import Path

    from edge.bus import Bus
    from edge.errors import SpecError
    from edge.graph import decode_spec, encode_spec, load_spec
    from edge.topics import Topics

    spec = load_spec(Path(args.spec))
    topics = Topics(settings.namespace)
    async with Bus.from_settings(settings, connect_timeout=args.timeout) as bus, \
            bus.subscribe(topics.deployment(spec.id)) as current:
        previous = None
        with contextlib.suppress(TimeoutError):  # the retained spec, if there is one, comes at once
            async with asyncio.timeout(0.5):
                message = await current.get()
                with contextlib.suppress(SpecError):  # garbage there is simply replaced
                    previous = decode_spec(message.payload) if message.payload else None
        if previous is not None and spec.version <= previous.version:
            spec = spec.model_copy(update={"version": previous.version + 1})
        await bus.publish(topics.deployment(spec.id), encode_spec(spec), qos=1, retain=True)
    unpinned = [t.id for t in spec.tasks if t.agent is None]
    print(f"deployed {spec.id} version {spec.version}: {len(spec.tasks)} task(s), {len(spec.edges)} edge(s)")
    if unpinned:
        print(f"not pinned to an agent, so not run until placed: {', '.join(unpinned)}", file=sys.stderr)
    return 0


async def cmd_rm(args: argparse.Namespace, settings: Settings) -> int:
    from edge.bus import Bus
    from edge.topics import Topics, validate_id

    dep = validate_id(args.deployment, "deployment id")
    async with Bus.from_settings(settings, connect_timeout=args.timeout) as bus:
        await bus.publish(Topics(settings.namespace).deployment(dep), b"", qos=1, retain=True)
    print(f"removed {dep}")
    return 0


async def cmd_later(args: argparse.Namespace, settings: Settings) -> int:
    print(f"edge {args.command}: arrives with the controller issue (see docs/deployments.md); "
          "nothing was done.", file=sys.stderr)
    return 2


def _parse_value(text: str) -> Any:
    """JSON where it parses (numbers, true, lists, maps), else the text itself."""
    try:
        return json.loads(text)
    except ValueError:
        return text


async def cmd_pub(args: argparse.Namespace, settings: Settings) -> int:
    from edge.bus import Bus
    from edge.frames import encode_frame

    value = args.value if args.text else _parse_value(args.value)
    async with Bus.from_settings(settings, connect_timeout=args.timeout) as bus:
        for seq in range(args.count):
            payload = args.value.encode() if args.raw else encode_frame(value, seq=seq)
            await bus.publish(args.topic, payload, qos=args.qos, retain=args.retain)
            if seq + 1 < args.count:
                await asyncio.sleep(args.interval)
    return 0


def _show(value: Any, limit: int = 200) -> str:
    import numpy as np

    if isinstance(value, np.ndarray):
        return f"<ndarray {value.dtype} {'x'.join(map(str, value.shape))}>"
    if isinstance(value, bytes | bytearray):
        return f"<{len(value)} bytes>"
    text = json.dumps(value, default=repr, ensure_ascii=False) if not isinstance(value, str) else value
    return text if len(text) <= limit else text[: limit - 1] + "…"


async def cmd_tail(args: argparse.Namespace, settings: Settings) -> int:
    from edge.bus import Bus
    from edge.errors import FrameError
    from edge.frames import decode_frame

    seen = bad = 0
    async with Bus.from_settings(settings, connect_timeout=args.timeout) as bus, \
            bus.subscribe(args.pattern, qos=args.qos) as sub:
        print(f"tailing {args.pattern} on {bus.url} (Ctrl+C to stop)", file=sys.stderr, flush=True)
        async with asyncio.timeout(args.duration):
            async for message in sub:
                try:
                    frame = decode_frame(message.payload, max_size=settings.max_payload)
                except FrameError as exc:
                    bad += 1
                    print(f"{message.topic}  <not a frame: {exc}>", file=sys.stderr, flush=True)
                    continue
                seen += 1
                if args.json:
                    print(json.dumps({"topic": message.topic, "ts": frame.ts, "seq": frame.seq,
                                      "value": frame.value, **dict(frame.extra)}, default=_show), flush=True)
                else:
                    print(f"{message.topic}  seq={frame.seq} ts={frame.ts}  {_show(frame.value)}", flush=True)
                if args.count and seen >= args.count:
                    break
    if bad:
        print(f"{bad} message(s) were not frames", file=sys.stderr)
    return 0


async def cmd_ls(args: argparse.Namespace, settings: Settings) -> int:
    from edge.bus import Bus
    from edge.controller import Fleet
    from edge.topics import Topics

    if args.what != "agents":
        return await cmd_later(argparse.Namespace(command=f"ls {args.what}"), settings)
    async with Bus.from_settings(settings, connect_timeout=args.timeout) as bus, \
            Fleet(bus, Topics(settings.namespace)) as fleet:
        # retained states arrive right after SUBACK; wait until a short quiet period has passed
        with contextlib.suppress(TimeoutError):
            await fleet.wait_for(lambda f: False, timeout=args.wait)
        rows = [(a.id, "online" if a.online else "offline", str(a.epoch), a.version,
                 str(a.host.get("name", "")), str(len(a.types))) for a in sorted(fleet.agents.values(),
                                                                                  key=lambda a: a.id)]
    header = ("AGENT", "STATUS", "EPOCH", "VERSION", "HOST", "TYPES")
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    for row in (header, *rows):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return 0


# -- parser ----------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edge",
        description="edgetasks: dataflow tasks on edge devices, wired together over MQTT. "
                    "Settings come from EDGE_* environment variables (see docs/settings.md).",
    )
    parser.add_argument("--version", action="version", version=f"edgetasks {__version__}")
    parser.add_argument("--broker", help="override EDGE_BROKER (embedded, mosquitto, auto or a URL)")
    parser.add_argument("--namespace", help="override EDGE_NAMESPACE")
    parser.add_argument("--log-level", help="override EDGE_LOG_LEVEL")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(name: str, func: Command, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(func=func)
        return p

    tasks_help = "also offer the task types in this module or .py file (repeatable)"
    p = add("up", cmd_up, "start a broker, a local agent and the control panel")
    p.add_argument("--tasks", action="append", default=[], metavar="MODULE_OR_FILE", help=tasks_help)
    add("broker", cmd_broker, "run the broker the settings choose, in the foreground")
    p = add("agent", cmd_agent, "run an agent on this device")
    p.add_argument("--tasks", action="append", default=[], metavar="MODULE_OR_FILE", help=tasks_help)
    add("ui", cmd_ui, "run the control panel")
    p = add("deploy", cmd_deploy, "publish a deployment spec (YAML, JSON or CBOR file); "
                                 "a spec already deployed gets the next version")
    p.add_argument("spec", help="graph.yaml, graph.json or graph.cbor")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the broker")
    p = add("rm", cmd_rm, "remove a deployment: its agents stop its tasks")
    p.add_argument("deployment")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the broker")
    p = add("ls", cmd_ls, "list agents (types, deployments and tasks arrive with the controller issue)")
    p.add_argument("what", choices=["agents", "types", "deployments", "tasks"], nargs="?", default="agents")
    p.add_argument("--wait", type=float, default=0.5, help="seconds to collect retained states")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the broker")
    p = add("tail", cmd_tail, "print the frames published on a topic pattern, live")
    p.add_argument("pattern", help="MQTT topic filter, + and # allowed")
    p.add_argument("-n", "--count", type=int, default=0, help="exit after this many frames")
    p.add_argument("--duration", type=float, default=None, help="exit after this many seconds")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument("--qos", type=int, choices=[0, 1, 2], default=0)
    p.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the broker")
    p = add("pub", cmd_pub, "publish a value as a frame")
    p.add_argument("topic")
    p.add_argument("value", help="JSON (42, 1.5, true, [1,2], {\"a\":1}) or else text")
    p.add_argument("--text", action="store_true", help="send VALUE as text even if it parses as JSON")
    p.add_argument("--raw", action="store_true", help="send VALUE's bytes as they are, not as a frame")
    p.add_argument("--qos", type=int, choices=[0, 1, 2], default=0)
    p.add_argument("--retain", action="store_true")
    p.add_argument("--count", type=int, default=1, help="publish this many frames (seq 0, 1, ...)")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between frames with --count")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the broker")
    return parser


async def _run_until_signal(coro: Coroutine[Any, Any, int]) -> int:
    """Run ``coro``; SIGTERM cancels it like Ctrl+C does, so context managers clean up."""
    task = asyncio.ensure_future(coro)
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        return await task
    except asyncio.CancelledError:
        return 0


def main(argv: Sequence[str] | None = None) -> int:
    from edge.settings import load_settings

    args = build_parser().parse_args(argv)
    overrides = {k: v for k, v in {"broker": args.broker, "namespace": args.namespace,
                                    "log_level": args.log_level}.items() if v is not None}
    try:
        settings = load_settings(**overrides)
    except EdgeError as exc:
        print(f"edge: {exc}", file=sys.stderr)
        return 2
    level = settings.log_level
    if args.command in _QUIET_COMMANDS and "log_level" not in settings.model_fields_set:
        level = "WARNING"  # a one-shot client prints its results, not the bus's comings and goings
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return asyncio.run(_run_until_signal(args.func(args, settings)))
    except KeyboardInterrupt:
        return 130
    except EdgeError as exc:
        print(f"edge: {exc}", file=sys.stderr)
        return 1
    except TimeoutError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
