"""``edge ls``: tables (or JSON) of agents, task types, deployments and tasks, as every view shows them."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from typing import TYPE_CHECKING, Any

from edge.cli._deploy import _open_controller
from edge.cli._output import _number, _table

if TYPE_CHECKING:  # edge.documents loads the protocol's models: only ls and describe need them
    from edge.controller import Fleet
    from edge.documents import AgentList, AgentRow, DeploymentList, DeploymentRow, TaskList, TaskRow, TypeList, TypeRow
    from edge.settings import Settings



def _agent_rows(fleet: Fleet) -> list[AgentRow]:
    from edge.documents import AgentRow

    load = fleet.load()
    # an offline agent's last CPU and memory are not its current ones: not shown (null)
    return [AgentRow(id=a.id, online=a.online, epoch=a.epoch, version=a.version, ts=a.ts, host=a.host,
                     types=sorted(str(t.get("name")) for t in a.types if t.get("available", True)),
                     catalog_problem=fleet.catalog_note(a),
                     tasks=load.get(a.id, 0), cpu_percent=_number(a.metrics.get("cpu_percent")) if a.online else None,
                     rss_mb=_number(a.metrics.get("rss_mb")) if a.online else None)
            for a in sorted(fleet.agents.values(), key=lambda a: a.id)]


def _type_rows(fleet: Fleet) -> list[TypeRow]:
    from edge.documents import TypeRow

    rows = []
    for name, entry in sorted(fleet.types(online_only=False).items()):
        inputs, outputs = entry.get("inputs"), entry.get("outputs")
        rows.append(TypeRow(name=name, label=str(entry.get("label") or ""),
                            description=str(entry.get("description") or ""),
                            inputs=inputs if isinstance(inputs, dict) else {},
                            outputs=outputs if isinstance(outputs, dict) else {},
                            agents=entry["agents"], available=bool(entry["agents"]),
                            reason=None if entry["agents"] else str(entry.get("reason", "offline"))))
    return rows


def _deployment_rows(fleet: Fleet) -> list[DeploymentRow]:
    from edge.controller.views import summarize
    from edge.documents import DeploymentRow

    rows: list[DeploymentRow] = []
    for dep in sorted(set(fleet.deployments) | set(fleet.rejected)):
        spec = fleet.deployments.get(dep)
        if spec is None:  # only a refused spec on the broker: nothing runs, and the reason is shown
            rows.append(DeploymentRow(id=dep, version=None, label="", tasks=0, running=0,
                                      notes=[f"new spec refused: {fleet.rejected[dep]}"], states={}))
            continue
        shown = summarize(fleet, dep)  # the states every view shows: an offline agent's tasks are not running
        states = [view.state for view in shown.views]
        rows.append(DeploymentRow(id=dep, version=spec.version, label=spec.label or "", tasks=shown.total,
                                  running=shown.running, notes=shown.notes,
                                  states={s: states.count(s) for s in sorted(set(states))}))
    return rows


def _task_rows(fleet: Fleet) -> list[TaskRow]:
    from edge.controller.views import deployment_views
    from edge.documents import TaskRow

    rows = []
    for dep in sorted(fleet.deployments):
        for view in deployment_views(fleet, dep):
            m = view.metrics
            rows.append(TaskRow(
                deployment=dep, task=view.task, type=view.type, agent=view.agent,
                state=view.state, shown=view.label, restarts=view.restarts,
                ts=view.status.ts if view.status is not None else None, error=view.error or None,
                notice=view.notice, frames_in=_frames(m.get("inputs")), frames_out=_frames(m.get("outputs")),
                dropped=_number(m.get("dropped")) or 0, lost=_number(m.get("gaps")) or 0,
                duplicates=_number(m.get("duplicates")) or 0))
    return rows


def _frames(ports: object) -> int:
    if not isinstance(ports, dict):
        return 0
    return sum(n for p in ports.values() if isinstance(p, dict) and isinstance(n := p.get("frames", 0), int))


def _ls_table(document: AgentList | TypeList | DeploymentList | TaskList) -> str:
    from edge.documents import AgentList, DeploymentList, TypeList

    if isinstance(document, AgentList):
        return _table(("AGENT", "STATUS", "EPOCH", "VERSION", "HOST", "TYPES", "TASKS", "CPU%", "RSS_MB"),
                      [(r.id, "online" if r.online else "offline", r.epoch, r.version, r.host.get("name", ""),
                        len(r.types) if r.catalog_problem is None else "?", r.tasks, _blank(r.cpu_percent, r.online),
                        _blank(r.rss_mb, r.online))
                       for r in document.agents])
    if isinstance(document, TypeList):
        return _table(("TYPE", "INPUTS", "OUTPUTS", "AGENTS"),
                      [(r.name, ",".join(r.inputs) or "-", ",".join(r.outputs) or "-",
                        ",".join(r.agents) or f"unavailable: {r.reason}") for r in document.types], wrap_last=True)
    if isinstance(document, DeploymentList):
        return _table(("DEPLOYMENT", "VERSION", "TASKS", "RUNNING", "LABEL"),
                      [(r.id, "-" if r.version is None else r.version, r.tasks,
                        f"{r.running}/{r.tasks}" + (f" ({', '.join(r.notes)})" if r.notes else ""),
                        r.label) for r in document.deployments],
                      wrap_last=True)
    return _table(("TASK", "TYPE", "AGENT", "STATE", "IN", "OUT", "DROPPED", "LOST", "ERROR"),
                  [(f"{r.deployment}/{r.task}", r.type, r.agent or "-", r.shown, r.frames_in,
                    r.frames_out, r.dropped, r.lost, r.error or r.notice or "") for r in document.tasks],
                  wrap_last=True)


def _blank(value: object, online: bool) -> object:
    """A metric for a table: "-" for an offline agent (its last values are not current), "" if unknown."""
    return value if value is not None else "" if online else "-"


_HINT_NAMESPACES = 5  # namespaces named when a namespace has no agents: those with most agents first


def _ls_document(what: str, namespace: str, fleet: Fleet) -> AgentList | TypeList | DeploymentList | TaskList:
    """What ``edge ls`` shows, as the model of its ``--json`` document (:mod:`edge.documents`)."""
    from edge.documents import AgentList, DeploymentList, TaskList, TypeList

    if what == "agents":
        return AgentList(namespace=namespace, agents=_agent_rows(fleet))
    if what == "types":
        return TypeList(namespace=namespace, types=_type_rows(fleet))
    if what == "deployments":
        return DeploymentList(namespace=namespace, deployments=_deployment_rows(fleet))
    return TaskList(namespace=namespace, tasks=_task_rows(fleet))


async def cmd_ls(args: argparse.Namespace, settings: Settings) -> int:
    async with contextlib.AsyncExitStack() as stack:
        controller = await _open_controller(settings, args, stack)
        fleet = controller.fleet
        if args.what == "tasks":  # statuses say what a task is; its current metrics come in its agent's batches
            await fleet.fresh_metrics()
        document = _ls_document(args.what, settings.namespace, fleet)
        hint = None
        if not fleet.agents and args.what in ("agents", "types"):
            hint = await _no_agents_hint(controller.bus, settings.namespace, args.timeout)
    if args.json:
        from edge.documents import to_json

        print(to_json(document, indent=2))
    elif getattr(document, args.what) or hint is None:
        print(_ls_table(document))
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
