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

_QUIET_COMMANDS = {"acl", "health", "pub", "tail", "ls", "deploy", "rm", "rollback"}

Command = Callable[[argparse.Namespace, "Settings"], Coroutine[Any, Any, int]]


# -- commands ------------------------------------------------------------------------------------
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


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(c) for c in header], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells)


async def _open_controller(settings: Settings, args: argparse.Namespace, stack: contextlib.AsyncExitStack) -> Any:
    from edge.bus import Bus
    from edge.controller import Controller

    bus = await stack.enter_async_context(Bus.from_settings(settings, connect_timeout=args.timeout))
    return await stack.enter_async_context(Controller(settings, bus=bus, via="cli"))


def _placement(spec: Any) -> str:
    return _table(("TASK", "TYPE", "AGENT"), [(t.id, t.type, t.agent or "-") for t in spec.tasks])


async def cmd_deploy(args: argparse.Namespace, settings: Settings) -> int:
    from pathlib import Path

    from edge.graph import load_spec_data

    data = load_spec_data(Path(args.spec))
    async with contextlib.AsyncExitStack() as stack:
        controller = await _open_controller(settings, args, stack)
        report = await controller.validate(data, timeout=args.check_timeout)
        for line in report.lines():  # every problem at once, one line each (edge.validation)
            print(line, file=sys.stderr)
        if report.checked is None or not report.ok:
            print(f"edge: not deployed: {len(report.errors)} error(s)", file=sys.stderr)
            return 1
        result = await controller.deploy(report.checked, dry_run=args.dry_run, report=report)
    placed = result.spec
    verb = "would deploy" if args.dry_run else "deployed"
    print(f"{verb} {placed.id} version {placed.version}: {len(placed.tasks)} task(s), {len(placed.edges)} edge(s)")
    print(_placement(placed))
    return 0


async def cmd_rm(args: argparse.Namespace, settings: Settings) -> int:
    async with contextlib.AsyncExitStack() as stack:
        controller = await _open_controller(settings, args, stack)
        existed = await controller.remove(args.deployment)
    print(f"removed {args.deployment}" if existed else f"{args.deployment} was not deployed (cleared anyway)")
    return 0


async def cmd_rollback(args: argparse.Namespace, settings: Settings) -> int:
    async with contextlib.AsyncExitStack() as stack:
        controller = await _open_controller(settings, args, stack)
        if args.list:
            current = controller.fleet.deployments.get(args.deployment)
            for v in controller.history.versions(args.deployment):
                print(f"v{v}{'  (deployed)' if current is not None and current.version == v else ''}")
            return 0
        result = await controller.rollback(args.deployment, args.version)
    print(f"rolled {args.deployment} back: version {result.spec.version} is the content of an earlier version")
    print(_placement(result.spec))
    return 0


async def cmd_ls(args: argparse.Namespace, settings: Settings) -> int:
    from edge.controller.views import deployment_views, summarize

    async with contextlib.AsyncExitStack() as stack:
        controller = await _open_controller(settings, args, stack)
        fleet = controller.fleet
        rows: list[tuple[object, ...]]
        if args.what == "agents":
            load = fleet.load()
            rows = [(a.id, "online" if a.online else "offline", a.epoch, a.version, a.host.get("name", ""),
                     len(a.types), load.get(a.id, 0),
                     *((a.metrics.get("cpu_percent", ""), a.metrics.get("rss_mb", "")) if a.online else ("-", "-")))
                    for a in sorted(fleet.agents.values(), key=lambda a: a.id)]
            print(_table(("AGENT", "STATUS", "EPOCH", "VERSION", "HOST", "TYPES", "TASKS", "CPU%", "RSS_MB"), rows))
        elif args.what == "types":
            types = fleet.types(online_only=False)
            rows = [(name, ",".join(e.get("inputs", {})) or "-", ",".join(e.get("outputs", {})) or "-",
                     ",".join(e["agents"]) or f"unavailable: {e.get('reason', 'offline')}")
                    for name, e in sorted(types.items())]
            print(_table(("TYPE", "INPUTS", "OUTPUTS", "AGENTS"), rows))
        elif args.what == "deployments":
            rows = []
            for dep, spec in sorted(fleet.deployments.items()):
                shown = summarize(fleet, dep)  # the states every view shows: an offline agent's tasks are not running
                running = f"{shown.running}/{shown.total}" + (f" ({', '.join(shown.notes)})" if shown.notes else "")
                rows.append((dep, spec.version, len(spec.tasks), running, spec.label or ""))
            print(_table(("DEPLOYMENT", "VERSION", "TASKS", "RUNNING", "LABEL"), rows))
        else:
            rows = []
            for dep in sorted(fleet.deployments):
                for view in deployment_views(fleet, dep):
                    m = view.metrics
                    frames_in = sum(p.get("frames", 0) for p in m.get("inputs", {}).values())
                    frames_out = sum(p.get("frames", 0) for p in m.get("outputs", {}).values())
                    error = view.error or view.notice or ""
                    rows.append((f"{dep}/{view.task}", view.type, view.agent or "-", view.label,
                                 frames_in, frames_out, m.get("dropped", 0), error[:60]))
            print(_table(("TASK", "TYPE", "AGENT", "STATE", "IN", "OUT", "DROPPED", "ERROR"), rows))
    return 0


def _parse_value(text: str) -> Any:
    """JSON where it parses (numbers, true, lists, maps), else the text itself."""
    try:
        return json.loads(text)
    except ValueError:
        return text


async def cmd_health(args: argparse.Namespace, settings: Settings) -> int:
    """Exit 0 when this device's agent is connected to its broker and wrote its health lately."""
    from edge.frames import now_ms

    if args.panel:
        return await _panel_health(settings)

    path = settings.data_dir / "agents" / settings.agent_id / "health.json"
    try:
        health = json.loads(path.read_text())
        age = (now_ms() - int(health["ts"])) / 1000
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"unhealthy: no readable health file at {path} ({exc})", file=sys.stderr)
        return 1
    if age > args.max_age:
        print(f"unhealthy: agent {settings.agent_id} last reported {age:.0f} s ago", file=sys.stderr)
        return 1
    if not health.get("connected"):
        print(f"unhealthy: agent {settings.agent_id} is not connected to its broker", file=sys.stderr)
        return 1
    print(f"healthy: agent {settings.agent_id} connected, {len(health.get('tasks', {}))} task(s)")
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
    from edge.graph import load_spec

    specs = [load_spec(Path(path)) for path in args.spec]
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
    from edge.topics import Topics

    seen = bad = 0
    pattern = args.pattern
    if "/" in pattern and "." in pattern.rsplit("/", 1)[-1] and pattern.count("/") == 1:
        dep, task_port = pattern.split("/")  # demo/add.out: a deployment's port by name
        task, port = task_port.split(".", 1)
        pattern = Topics(settings.namespace).stream(dep, task, port)
    async with Bus.from_settings(settings, connect_timeout=args.timeout) as bus, \
            bus.subscribe(pattern, qos=args.qos) as sub:
        print(f"tailing {pattern} on {bus.url} (Ctrl+C to stop)", file=sys.stderr, flush=True)
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
    p = add("acl", cmd_acl, "write a Mosquitto ACL, password files, listeners and per-user credentials for a fleet")
    p.add_argument("--agents", required=True, help="comma-separated agent ids (each logs in as its id)")
    p.add_argument("--controller", action="append", default=None, help="controller user (repeatable; "
                                                                          "default: controller)")
    p.add_argument("--spec", action="append", default=[], help="deployment spec file whose tasks to allow")
    p.add_argument("--from-broker", action="store_true", help="also allow the tasks of the live deployments")
    p.add_argument("--out", help="directory to write (default: {data_dir}/acl)")
    p.add_argument("--broker-url", help="EDGE_BROKER written into the agents' credential files (its port: the "
                                        "agents' listener)")
    p.add_argument("--controller-port", type=int, default=None,
                   help="port of the controllers' listener (default: the agents' port + 1)")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the broker")
    p = add("health", cmd_health, "exit 0 if this device's agent is connected to its broker (for HEALTHCHECK)")
    p.add_argument("--max-age", type=float, default=30.0, help="seconds after which the agent's report is stale")
    p.add_argument("--panel", action="store_true",
                   help="check the control panel instead: exit 0 if it answers on EDGE_CONTROLLER_PORT")
    p = add("deploy", cmd_deploy, "publish a deployment spec (YAML, JSON or CBOR file); "
                                 "a spec already deployed gets the next version")
    p.add_argument("spec", help="graph.yaml, graph.json or graph.cbor")
    p.add_argument("--dry-run", action="store_true", help="check and place, print the placement, publish nothing")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the broker")
    p.add_argument("--check-timeout", type=float, default=3.0,
                   help="seconds to wait for agents to run their task types' own config checks")
    p = add("rm", cmd_rm, "remove a deployment: its agents stop its tasks")
    p.add_argument("deployment")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the broker")
    p = add("rollback", cmd_rollback, "deploy an earlier version of a deployment again, as its next version")
    p.add_argument("deployment")
    p.add_argument("version", nargs="?", type=int, help="default: the version before the deployed one")
    p.add_argument("--list", action="store_true", help="list the versions kept instead")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the broker")
    p = add("ls", cmd_ls, "tables of the fleet: agents, task types, deployments or task instances")
    p.add_argument("what", choices=["agents", "types", "deployments", "tasks"], nargs="?", default="agents")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the broker")
    p = add("tail", cmd_tail, "print the frames published on a topic pattern, live")
    p.add_argument("pattern", help="MQTT topic filter (+ and # allowed), or DEPLOYMENT/TASK.PORT")
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
