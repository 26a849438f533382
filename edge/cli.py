"""The ``edge`` command. Subcommands import what they need when they run, so ``edge pub``
never loads NiceGUI and an agent on a Pi pays only for the agent."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import re
import reprlib
import shutil
import sys
import textwrap
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from edge import __version__
from edge._signals import run_until_signal
from edge.errors import ConfigError, EdgeError

if TYPE_CHECKING:
    from edge.controller import Fleet
    from edge.settings import Settings

__all__ = ["main"]

log = logging.getLogger("edge")

_QUIET_COMMANDS = {"acl", "health", "pub", "tail", "ls", "describe", "deploy", "rm", "rollback"}
_EXIT_BROKEN_PIPE = 128 + 13  # as a Unix tool killed by SIGPIPE: `edge tail X | head -1`

Command = Callable[[argparse.Namespace, "Settings"], Coroutine[Any, Any, int]]


# -- commands ------------------------------------------------------------------------------------
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


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _printable(text: str) -> str:
    """``text`` with control characters escaped: what agents and devices publish must not drive the terminal."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def _one_line(text: str) -> str:
    return " / ".join(line.strip() for line in text.splitlines() if line.strip())


def _table(header: Sequence[str], rows: Sequence[Sequence[object]], *, wrap_last: bool = False) -> str:
    """Columns padded to their widest cell. ``wrap_last``: on a terminal, the last column (an error, a
    description) wraps within the terminal's width under itself; in a pipe it stays whole on its row."""
    cells = [[str(c) for c in header], *[[_printable(_one_line(str(c))) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = []
    room = 0
    if wrap_last and sys.stdout.isatty():
        room = shutil.get_terminal_size().columns - sum(w + 2 for w in widths[:-1])
    for row in cells:
        head = "  ".join(c.ljust(w) for c, w in zip(row[:-1], widths, strict=False))
        last = row[-1]
        if room >= 20 and len(last) > room:
            wrapped = textwrap.wrap(last, room, break_long_words=True, break_on_hyphens=False) or [""]
            indent = " " * (len(head) + 2 if head else 0)
            lines.append(f"{head}  {wrapped[0]}" if head else wrapped[0])
            lines += [indent + part for part in wrapped[1:]]
        else:
            lines.append(f"{head}  {last}".rstrip() if head else last)
    return "\n".join(lines)


async def _open_controller(settings: Settings, args: argparse.Namespace, stack: contextlib.AsyncExitStack) -> Any:
    from edge.bus import Bus
    from edge.controller import Controller

    bus = await stack.enter_async_context(Bus.from_settings(settings, connect_timeout=args.timeout))
    return await stack.enter_async_context(Controller(settings, bus=bus, via="cli"))


def _load_spec_file(name: str, *, data: bool = False) -> Any:
    """The spec in a file (``data``: its parsed, unchecked data), or one line saying why it cannot be read."""
    from pathlib import Path

    from edge.graph import load_spec, load_spec_data

    try:
        return load_spec_data(Path(name)) if data else load_spec(Path(name))
    except OSError as exc:
        raise ConfigError(f"cannot read {name}: {exc.strerror or exc}", field="spec") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{name} is not UTF-8 text (byte {exc.start}): a spec is YAML, JSON or CBOR "
                          "(.cbor)", field="spec") from None


def _placement(spec: Any) -> str:
    return _table(("TASK", "TYPE", "AGENT"), [(t.id, t.type, t.agent or "-") for t in spec.tasks])


async def cmd_deploy(args: argparse.Namespace, settings: Settings) -> int:
    data = _load_spec_file(args.spec, data=True)
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


def _number(value: object) -> float | int | None:
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def _agent_rows(fleet: Fleet) -> list[dict[str, Any]]:
    load = fleet.load()
    # an offline agent's last CPU and memory are not its current ones: not shown (null)
    return [{"id": a.id, "online": a.online, "epoch": a.epoch, "version": a.version, "ts": a.ts,
             "host": a.host, "types": sorted(str(t.get("name")) for t in a.types if t.get("available", True)),
             "tasks": load.get(a.id, 0), "cpu_percent": _number(a.metrics.get("cpu_percent")) if a.online else None,
             "rss_mb": _number(a.metrics.get("rss_mb")) if a.online else None}
            for a in sorted(fleet.agents.values(), key=lambda a: a.id)]


def _type_rows(fleet: Fleet) -> list[dict[str, Any]]:
    rows = []
    for name, entry in sorted(fleet.types(online_only=False).items()):
        inputs, outputs = entry.get("inputs"), entry.get("outputs")
        rows.append({"name": name, "label": str(entry.get("label") or ""),
                     "description": str(entry.get("description") or ""),
                     "inputs": inputs if isinstance(inputs, dict) else {},
                     "outputs": outputs if isinstance(outputs, dict) else {},
                     "agents": entry["agents"], "available": bool(entry["agents"]),
                     "reason": None if entry["agents"] else str(entry.get("reason", "offline"))})
    return rows


def _deployment_rows(fleet: Fleet) -> list[dict[str, Any]]:
    from edge.controller.views import summarize

    rows: list[dict[str, Any]] = []
    for dep in sorted(set(fleet.deployments) | set(fleet.rejected)):
        spec = fleet.deployments.get(dep)
        if spec is None:  # only a refused spec on the broker: nothing runs, and the reason is shown
            rows.append({"id": dep, "version": None, "label": "", "tasks": 0, "running": 0,
                         "notes": [f"new spec refused: {fleet.rejected[dep]}"], "states": {}})
            continue
        shown = summarize(fleet, dep)  # the states every view shows: an offline agent's tasks are not running
        states = [view.state for view in shown.views]
        rows.append({"id": dep, "version": spec.version, "label": spec.label or "", "tasks": len(spec.tasks),
                     "running": shown.running, "notes": shown.notes,
                     "states": {s: states.count(s) for s in sorted(set(states))}})
    return rows


def _task_rows(fleet: Fleet) -> list[dict[str, Any]]:
    from edge.controller.views import deployment_views

    rows = []
    for dep in sorted(fleet.deployments):
        for view in deployment_views(fleet, dep):
            m = view.metrics
            rows.append({
                "deployment": dep, "task": view.task, "type": view.type, "agent": view.agent,
                "state": view.state, "shown": view.label, "restarts": view.restarts,
                "ts": view.status.ts if view.status is not None else None, "error": view.error or None,
                "notice": view.notice, "frames_in": _frames(m.get("inputs")), "frames_out": _frames(m.get("outputs")),
                "dropped": _number(m.get("dropped")) or 0})
    return rows


def _frames(ports: object) -> int:
    if not isinstance(ports, dict):
        return 0
    return sum(n for p in ports.values() if isinstance(p, dict) and isinstance(n := p.get("frames", 0), int))


def _ls_table(what: str, rows: list[dict[str, Any]]) -> str:
    if what == "agents":
        return _table(("AGENT", "STATUS", "EPOCH", "VERSION", "HOST", "TYPES", "TASKS", "CPU%", "RSS_MB"),
                      [(r["id"], "online" if r["online"] else "offline", r["epoch"], r["version"],
                        r["host"].get("name", ""), len(r["types"]), r["tasks"], _blank(r["cpu_percent"], r["online"]),
                        _blank(r["rss_mb"], r["online"])) for r in rows])
    if what == "types":
        return _table(("TYPE", "INPUTS", "OUTPUTS", "AGENTS"),
                      [(r["name"], ",".join(r["inputs"]) or "-", ",".join(r["outputs"]) or "-",
                        ",".join(r["agents"]) or f"unavailable: {r['reason']}") for r in rows], wrap_last=True)
    if what == "deployments":
        return _table(("DEPLOYMENT", "VERSION", "TASKS", "RUNNING", "LABEL"),
                      [(r["id"], "-" if r["version"] is None else r["version"], r["tasks"],
                        f"{r['running']}/{r['tasks']}" + (f" ({', '.join(r['notes'])})" if r["notes"] else ""),
                        r["label"]) for r in rows],
                      wrap_last=True)
    return _table(("TASK", "TYPE", "AGENT", "STATE", "IN", "OUT", "DROPPED", "ERROR"),
                  [(f"{r['deployment']}/{r['task']}", r["type"], r["agent"] or "-", r["shown"], r["frames_in"],
                    r["frames_out"], r["dropped"], r["error"] or r["notice"] or "") for r in rows], wrap_last=True)


def _blank(value: object, online: bool) -> object:
    """A metric for a table: "-" for an offline agent (its last values are not current), "" if unknown."""
    return value if value is not None else "" if online else "-"


_HINT_NAMESPACES = 5  # namespaces named when a namespace has no agents: those with most agents first
_LS_ROWS = {"agents": _agent_rows, "types": _type_rows, "deployments": _deployment_rows, "tasks": _task_rows}


async def cmd_ls(args: argparse.Namespace, settings: Settings) -> int:
    async with contextlib.AsyncExitStack() as stack:
        controller = await _open_controller(settings, args, stack)
        fleet = controller.fleet
        rows = _LS_ROWS[args.what](fleet)
        hint = None
        if not fleet.agents and args.what in ("agents", "types"):
            hint = await _no_agents_hint(controller.bus, settings.namespace, args.timeout)
    if args.json:
        print(json.dumps({"namespace": settings.namespace, args.what: rows}, indent=2, default=repr))
    elif rows or hint is None:
        print(_ls_table(args.what, rows))
    if hint is not None:
        print(hint, file=sys.stderr)
    return 0


async def _no_agents_hint(bus: Any, namespace: str, timeout: float) -> str:
    """No agents in ``namespace``: say so, and name the namespaces of this broker that hold some."""
    import uuid

    from edge.bus import Message
    from edge.topics import ANY_NAMESPACE_AGENT_STATES, Topics, namespace_of

    found: dict[str, set[str]] = {}

    def on_state(message: Message) -> None:
        ns = namespace_of(message.topic)
        if ns is not None and message.payload:  # an empty retained message is a removed agent
            found.setdefault(ns, set()).add(message.topic)

    sync = Topics(namespace).sync(f"cli-{uuid.uuid4().hex[:12]}")
    token = uuid.uuid4().hex.encode()
    back = asyncio.Event()
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout), bus.subscribe(ANY_NAMESPACE_AGENT_STATES, callback=on_state), \
                bus.subscribe(sync, qos=1, callback=lambda m: back.set() if m.payload == token else None):
            await bus.publish(sync, token, qos=1)  # it comes back after the retained states
            await back.wait()
    text = f"no agents found in namespace {namespace!r} on {bus.url}"
    others = sorted((ns for ns in found if ns != namespace), key=lambda ns: (-len(found[ns]), ns))
    if others:
        listed = ", ".join(f"{ns} ({len(found[ns])} agent{'s' if len(found[ns]) != 1 else ''})"
                           for ns in others[:_HINT_NAMESPACES])
        more = len(others) - _HINT_NAMESPACES
        listed += f" and {more} more" if more > 0 else ""
        text += f"; agents exist in namespace {listed}: set EDGE_NAMESPACE (or --namespace) to one of them"
    return text


# -- describe --------------------------------------------------------------------------------------
_SCHEMA_DEPTH = 4  # nested $ref / anyOf / items levels spelled out; deeper ones are "…"


def _schema_type(schema: object, defs: dict[str, Any], depth: int = 0) -> str:
    """A JSON Schema (as pydantic writes config schemas) in a few words: ``integer 1..60000``, ``one of a|b``."""
    if not isinstance(schema, dict):
        return "any"
    if depth > _SCHEMA_DEPTH:
        return "…"
    ref = schema.get("$ref")
    if isinstance(ref, str):
        target = defs.get(ref.rsplit("/", 1)[-1])
        return _schema_type(target, defs, depth + 1) if isinstance(target, dict) else ref.rsplit("/", 1)[-1]
    if isinstance(schema.get("enum"), list):
        return "one of " + "|".join(json.dumps(v, ensure_ascii=False, default=repr) for v in schema["enum"])
    if "const" in schema:
        return json.dumps(schema["const"], ensure_ascii=False, default=repr)
    for union in ("anyOf", "oneOf"):
        if isinstance(schema.get(union), list):
            return " or ".join(_schema_type(s, defs, depth + 1) for s in schema[union])
    kind = schema.get("type")
    text = "|".join(map(str, kind)) if isinstance(kind, list) else str(kind) if kind else "any"
    if kind == "array":
        text = f"list of {_schema_type(schema.get('items'), defs, depth + 1)}"
    elif kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        text = f"map of {_schema_type(schema['additionalProperties'], defs, depth + 1)}"
    return " ".join([text, *_bounds(schema)])


def _bounds(schema: dict[str, Any]) -> list[str]:
    low, high = schema.get("minimum"), schema.get("maximum")
    xlow, xhigh = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    if low is not None and high is not None:
        bounds = [f"{low}..{high}"]
    else:
        bounds = [f">{xlow}"] if xlow is not None else [f">={low}"] if low is not None else []
        bounds += [f"<{xhigh}"] if xhigh is not None else [f"<={high}"] if high is not None else []
    for what, key in (("length", "Length"), ("items", "Items")):
        least, most = schema.get(f"min{key}"), schema.get(f"max{key}")
        if least is not None or most is not None:
            bounds.append(f"{what} {least or 0}.." + ("" if most is None else str(most)))
    if isinstance(schema.get("pattern"), str):
        bounds.append(f"matching {schema['pattern']}")
    return bounds


def _config_rows(entry: dict[str, Any]) -> list[dict[str, Any]]:
    schema = entry.get("config_schema")
    if not isinstance(schema, dict) or not isinstance(schema.get("properties"), dict):
        return []
    defs: dict[str, Any] = schema["$defs"] if isinstance(schema.get("$defs"), dict) else {}
    required: list[Any] = schema["required"] if isinstance(schema.get("required"), list) else []
    rows = []
    for name, value in schema["properties"].items():
        prop: dict[str, Any] = value if isinstance(value, dict) else {}
        rows.append({"name": str(name), "type": _schema_type(prop, defs), "required": name in required,
                     "default": prop.get("default"), "has_default": "default" in prop,
                     "description": str(prop.get("description") or "")})
    return rows


def _metadata(meta: object) -> str:
    if not isinstance(meta, dict) or not meta:
        return "-"
    return " ".join(f"{k}={v if isinstance(v, str) else json.dumps(v, default=repr)}" for k, v in meta.items())


def _offers(fleet: Fleet, type_name: str) -> list[dict[str, Any]]:
    """Every agent whose catalog names the type, online or not, and whether it can run it."""
    offers = []
    for agent in sorted(fleet.agents.values(), key=lambda a: a.id):
        for entry in agent.types:
            if entry.get("name") == type_name:
                available = entry.get("available", True) is not False
                offers.append({"agent": agent.id, "online": agent.online, "available": available,
                               "reason": None if available else str(entry.get("reason", "?"))})
                break
    return offers


def _unknown_type(name: str, fleet: Fleet, namespace: str) -> str:
    import difflib

    known = fleet.types(online_only=False)
    if not known:
        return (f"unknown task type {name!r}: no agent in namespace {namespace!r} has published a catalog "
                "(edge ls agents)")
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    if name:
        close += [t for t in sorted(known) if name.lower() in t.lower() and t not in close][: 3 - len(close)]
    hint = f"did you mean {', '.join(close)}?" if close else "edge ls types lists them"
    return f"unknown task type {name!r} ({hint})"


def _describe_text(entry: dict[str, Any], config: list[dict[str, Any]], offers: list[dict[str, Any]]) -> str:
    label = str(entry.get("label") or "")
    lines = [f"{entry['name']}" + (f" ({label})" if label and label != entry["name"] else "")]
    description = str(entry.get("description") or "").strip()
    if description:
        lines.append(description)
    for title, given in (("INPUT", entry.get("inputs")), ("OUTPUT", entry.get("outputs"))):
        ports: dict[str, Any] = given if isinstance(given, dict) else {}
        lines.append("")
        lines.append(_table((title, "METADATA"), [(port, _metadata(meta)) for port, meta in ports.items()],
                            wrap_last=True) if ports else f"{title}: none")
    lines.append("")
    if config:
        lines.append(_table(("CONFIG", "TYPE", "DEFAULT", "DESCRIPTION"), [
            (c["name"], c["type"], "(required)" if c["required"] and not c["has_default"]
             else json.dumps(c["default"], ensure_ascii=False, default=repr) if c["has_default"] else "-",
             c["description"]) for c in config], wrap_last=True))
    else:
        lines.append("CONFIG: none")
    lines.append("")
    lines.append(_table(("AGENT", "STATUS", "CAN RUN IT"), [
        (o["agent"], "online" if o["online"] else "offline", "yes" if o["available"] else f"no: {o['reason']}")
        for o in offers], wrap_last=True))
    return "\n".join(lines)


async def cmd_describe(args: argparse.Namespace, settings: Settings) -> int:
    async with contextlib.AsyncExitStack() as stack:
        controller = await _open_controller(settings, args, stack)
        fleet = controller.fleet
        entry = fleet.types(online_only=False).get(args.type)
        if entry is None:
            raise ConfigError(_unknown_type(args.type, fleet, settings.namespace), field="type")
        offers = _offers(fleet, args.type)
    config = _config_rows(entry)
    if args.json:
        document = {"name": args.type, "label": entry.get("label"), "description": entry.get("description"),
                    "inputs": entry.get("inputs") or {}, "outputs": entry.get("outputs") or {},
                    "config": [{k: v for k, v in c.items() if k != "has_default" and (k != "default"
                                                                                     or c["has_default"])}
                               for c in config],
                    "config_schema": entry.get("config_schema"), "agents": offers}
        print(json.dumps(document, indent=2, ensure_ascii=False, default=repr))
    else:
        print(_describe_text(entry, config, offers))
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


_SHOW_LIMIT = 200  # characters of a value on a text line
_HEX_LIMIT = 64  # bytes of a payload shown in hex
PAYLOAD_FORMATS = ("auto", "cbor", "json", "raw")


def _jsonable(value: Any) -> Any:
    """What json.dumps cannot write, as a short description (an array, bytes, a CBOR tag…)."""
    import numpy as np

    if isinstance(value, np.ndarray):
        return f"<ndarray {value.dtype} {'x'.join(map(str, value.shape))}>"
    if isinstance(value, bytes | bytearray | memoryview):
        data = bytes(value)
        return f"<{len(data)} bytes: {data[:_HEX_LIMIT // 2].hex()}{'…' if len(data) > _HEX_LIMIT // 2 else ''}>"
    return f"<{type(value).__name__}: {reprlib.repr(value)}>"


def _show(value: Any, limit: int = _SHOW_LIMIT) -> str:
    """A value on one line as JSON writes it: the text "42" in quotes, the number 42 without."""
    try:
        text = json.dumps(value, default=_jsonable, ensure_ascii=False)
    except (ValueError, TypeError, RecursionError, OverflowError) as exc:  # a 10 000-digit int, deep nesting
        text = f"<{type(value).__name__} that cannot be shown: {type(exc).__name__}>"
    text = _printable(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _when(ts: int, *, utc: bool) -> str:
    """A frame's ts (ms since the epoch) as ISO 8601 with milliseconds, local time or UTC (``Z``)."""
    from datetime import UTC, datetime

    try:
        moment = datetime.fromtimestamp(ts / 1000, tz=UTC)
        moment = (moment if utc else moment.astimezone()).replace(tzinfo=None)
    except (OverflowError, ValueError, OSError):
        return f"ts={ts}"  # out of datetime's range: the number itself
    return moment.isoformat(timespec="milliseconds") + ("Z" if utc else "")


@dataclass(frozen=True, slots=True)
class _Payload:
    """One message as ``edge tail`` shows it: a frame, or a value in another format, or bytes."""

    format: str  # frame, cbor, json, text or hex
    value: Any
    ts: int | None = None
    seq: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    note: str | None = None  # why bytes shown in hex are not a frame (a malformed or hostile one)


def _decode_payload(payload: bytes, wanted: str, max_size: int) -> _Payload:
    """``payload`` read as ``wanted`` says; :class:`FrameError` when it is not that.

    auto: a frame, else JSON, else UTF-8 text, else hex (never fails); cbor: a frame, else any one CBOR
    value; json: JSON; raw: UTF-8 text, else hex. Plain CBOR is not guessed: most short texts are CBOR too.
    """
    from edge.errors import FrameError
    from edge.frames import decode_frame, decode_value

    not_frame = None
    if wanted in ("auto", "cbor"):
        try:
            frame = decode_frame(payload, max_size=max_size)
            return _Payload("frame", frame.value, frame.ts, frame.seq, dict(frame.extra))
        except FrameError as exc:
            if wanted == "cbor":
                return _Payload("cbor", decode_value(payload, max_size=max_size))
            not_frame = f"not a frame: {exc}"
    if wanted in ("auto", "json"):
        try:
            return _Payload("json", json.loads(payload))
        except (ValueError, RecursionError) as exc:  # RecursionError: [[[[… a million deep
            if wanted == "json":
                raise FrameError(f"not JSON: {exc}") from None
    try:
        return _Payload("text", payload.decode())
    except UnicodeDecodeError:
        return _Payload("hex", payload[:_HEX_LIMIT].hex() + ("…" if len(payload) > _HEX_LIMIT else ""),
                        note=not_frame)


def _tail_line(topic: str, shown: _Payload, *, utc: bool) -> str:
    topic = _printable(topic)
    if shown.format == "frame":
        assert shown.ts is not None
        extra = "".join(f" {_printable(str(k))}={_show(v, 40)}" for k, v in shown.extra.items())
        return f"{topic}  seq={shown.seq} {_when(shown.ts, utc=utc)}{extra}  {_show(shown.value)}"
    if shown.format == "hex":
        return f"{topic}  hex  {shown.value}" + (f"  ({_printable(shown.note)})" if shown.note else "")
    return f"{topic}  {shown.format}  {_show(shown.value)}"


def _tail_json(topic: str, shown: _Payload, *, utc: bool) -> str:
    document = {"topic": topic, "format": shown.format, "ts": shown.ts, "seq": shown.seq,
                "time": _when(shown.ts, utc=utc) if shown.ts is not None else None,
                "value": shown.value, "extra": shown.extra, "note": shown.note}
    try:
        return json.dumps(document, default=_jsonable, ensure_ascii=False)
    except (ValueError, TypeError, RecursionError, OverflowError) as exc:
        document["value"] = f"<{type(shown.value).__name__} that cannot be shown: {type(exc).__name__}>"
        document["extra"] = {k: _show(v, 80) for k, v in shown.extra.items()}
        return json.dumps(document, default=_jsonable, ensure_ascii=False)


async def cmd_tail(args: argparse.Namespace, settings: Settings) -> int:
    from edge.bus import Bus
    from edge.errors import FrameError
    from edge.topics import Topics

    seen = bad = 0
    pattern = args.pattern
    if "/" in pattern and "." in pattern.rsplit("/", 1)[-1] and pattern.count("/") == 1:
        dep, task_port = pattern.split("/")  # demo/add.out: a deployment's port by name
        task, port = task_port.split(".", 1)
        pattern = Topics(settings.namespace).stream(dep, task, port)
    # Nothing to flush, and no UNSUBSCRIBE to wait for (the DISCONNECT ends the session): SIGTERM or
    # Ctrl+C exits at once, even when the broker has stopped answering.
    async with Bus.from_settings(settings, connect_timeout=args.timeout, flush_timeout=0) as bus:
        sub = await bus.subscribe(pattern, qos=args.qos)
        print(f"tailing {_printable(pattern)} on {bus.url} (Ctrl+C to stop)", file=sys.stderr, flush=True)
        async with asyncio.timeout(args.duration):
            async for message in sub:
                try:
                    shown = _decode_payload(message.payload, args.format, settings.max_payload)
                except FrameError as exc:
                    bad += 1
                    print(f"{_printable(message.topic)}  <not {args.format}: {_printable(str(exc))}>",
                          file=sys.stderr, flush=True)
                    continue
                seen += 1
                line = (_tail_json if args.json else _tail_line)(message.topic, shown, utc=args.utc)
                print(line, flush=True)
                if args.count and seen >= args.count:
                    break
    if bad:
        print(f"{bad} message(s) were not {args.format}", file=sys.stderr)
    return 0


# -- parser ----------------------------------------------------------------------------------------
def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds, not {text}")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 (no limit) or more, not {value}")
    return value


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
    p.add_argument("--timeout", default=5.0, type=_seconds, help="seconds to wait for the broker")
    p = add("health", cmd_health, "exit 0 if this device's agent is connected to its broker (for HEALTHCHECK)")
    p.add_argument("--max-age", type=float, default=30.0, help="seconds after which the agent's report is stale")
    p.add_argument("--panel", action="store_true",
                   help="check the control panel instead: exit 0 if it answers on EDGE_CONTROLLER_PORT")
    p = add("deploy", cmd_deploy, "publish a deployment spec (YAML, JSON or CBOR file); "
                                 "a spec already deployed gets the next version")
    p.add_argument("spec", help="graph.yaml, graph.json or graph.cbor")
    p.add_argument("--dry-run", action="store_true", help="check and place, print the placement, publish nothing")
    p.add_argument("--timeout", default=5.0, type=_seconds, help="seconds to wait for the broker")
    p.add_argument("--check-timeout", default=3.0, type=_seconds,
                   help="seconds to wait for agents to run their task types' own config checks")
    p = add("rm", cmd_rm, "remove a deployment: its agents stop its tasks")
    p.add_argument("deployment")
    p.add_argument("--timeout", default=5.0, type=_seconds, help="seconds to wait for the broker")
    p = add("rollback", cmd_rollback, "deploy an earlier version of a deployment again, as its next version")
    p.add_argument("deployment")
    p.add_argument("version", nargs="?", type=int, help="default: the version before the deployed one")
    p.add_argument("--list", action="store_true", help="list the versions kept instead")
    p.add_argument("--timeout", default=5.0, type=_seconds, help="seconds to wait for the broker")
    p = add("ls", cmd_ls, "tables of the fleet: agents, task types, deployments or task instances")
    p.add_argument("what", choices=["agents", "types", "deployments", "tasks"], nargs="?", default="agents")
    p.add_argument("--json", action="store_true", help="one JSON document instead of a table (docs/cli.md)")
    p.add_argument("--timeout", default=5.0, type=_seconds, help="seconds to wait for the broker")
    p = add("describe", cmd_describe, "a task type from the fleet's catalogs: ports, config fields, agents")
    p.add_argument("type", help="task type name (edge ls types lists them)")
    p.add_argument("--json", action="store_true", help="one JSON document instead of text")
    p.add_argument("--timeout", default=5.0, type=_seconds, help="seconds to wait for the broker")
    p = add("tail", cmd_tail, "print the messages published on a topic pattern, live")
    p.add_argument("pattern", help="MQTT topic filter (+ and # allowed), or DEPLOYMENT/TASK.PORT")
    p.add_argument("-n", "--count", type=_count, default=0, help="exit after this many messages")
    p.add_argument("--duration", type=float, default=None, help="exit after this many seconds")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument("--format", choices=PAYLOAD_FORMATS, default="auto",
                   help="how to read payloads: auto (a frame, else JSON, else text, else hex), cbor (a frame or "
                        "any CBOR value), json, raw (text, else hex); default auto")
    p.add_argument("--utc", action="store_true", help="times in UTC (…Z) rather than local time")
    p.add_argument("--qos", type=int, choices=[0, 1, 2], default=0)
    p.add_argument("--timeout", default=5.0, type=_seconds, help="seconds to wait for the broker")
    p = add("pub", cmd_pub, "publish a value as a frame")
    p.add_argument("topic")
    p.add_argument("value", help="JSON (42, 1.5, true, [1,2], {\"a\":1}) or else text")
    p.add_argument("--text", action="store_true", help="send VALUE as text even if it parses as JSON")
    p.add_argument("--raw", action="store_true", help="send VALUE's bytes as they are, not as a frame")
    p.add_argument("--qos", type=int, choices=[0, 1, 2], default=0)
    p.add_argument("--retain", action="store_true")
    p.add_argument("--count", type=int, default=1, help="publish this many frames (seq 0, 1, ...)")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between frames with --count")
    p.add_argument("--timeout", default=5.0, type=_seconds, help="seconds to wait for the broker")
    return parser


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
        return asyncio.run(run_until_signal(args.func(args, settings))) or 0
    except KeyboardInterrupt:
        return 130
    except EdgeError as exc:
        print(f"edge: {exc}", file=sys.stderr)
        return 1
    except TimeoutError:
        return 0
    except BrokenPipeError:
        # the reader has gone (`edge tail X | head -1`): stop quietly, as Unix tools do; stdout now
        # points nowhere, so the interpreter's last flush has no pipe left to complain about
        with contextlib.suppress(OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return _EXIT_BROKEN_PIPE
    except OSError as exc:  # a file or directory named by the settings or arguments cannot be used
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"edge: {where}{exc.strerror or exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
