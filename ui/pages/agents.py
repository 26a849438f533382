"""Agents: every agent of the namespace, live, with its host, version, task types, CPU and memory
sparklines and the task instances it runs.

Task chips take the state every view shows (:mod:`edge.controller.views`): an offline agent's
tasks are ``agent offline``. An offline agent's CPU and memory are its last known values, said
so with their age, never shown as current. An agent whose shared catalog has not come is "catalog
pending", one whose catalog was refused "catalog refused" with the reason, never an agent with no
types (:mod:`ui.catalog_notes`)."""

from __future__ import annotations

from typing import Any

from nicegui import ui

from edge.controller import Fleet
from edge.controller.views import format_age, replica_views
from edge.frames import now_ms
from ui.app import current
from ui.catalog_notes import CatalogNotes, catalog_notes, types_badge
from ui.frame import frame
from ui.live_table import Column, LiveTable
from ui.status import view_color

__all__ = ["COLUMNS", "agent_rows", "create", "instances"]

COLUMNS = (
    Column(name="id", label="Agent"),
    Column(name="status", label="Status", kind="badge"),
    Column(name="host", label="Host"),
    Column(name="version", label="Version"),
    Column(name="types", label="Types", kind="badge"),
    Column(name="cpu", label="CPU", kind="spark", unit=" %"),
    Column(name="rss", label="Memory", kind="spark", unit=" MB"),
    Column(name="tasks", label="Task instances", kind="chips"),
)


def _host(host: dict[str, Any]) -> str:
    parts = [str(host.get("name", "?"))]
    if host.get("machine"):
        parts.append(str(host["machine"]))
    if host.get("platform"):
        parts.append(str(host["platform"]))
    if host.get("python"):
        parts.append(f"Python {host['python']}")
    if host.get("cpus"):
        parts.append(f"{host['cpus']} CPUs")
    return " · ".join(parts)


def instances(fleet: Fleet) -> dict[str, list[dict[str, Any]]]:
    """Agent id -> a chip per task instance the specs give it, coloured by the task's status."""
    result: dict[str, list[dict[str, Any]]] = {}
    now = now_ms()
    for dep_id in sorted(fleet.deployments):
        for task in fleet.deployments[dep_id].tasks:
            for view in replica_views(fleet, dep_id, task, now=now):  # each replica of a task on its agent
                if view.agent is None or (task.replicas == 1 and task.agent is None):
                    continue
                title = " · ".join(filter(None, [f"{task.type}: {view.label}", view.detail, view.notice]))
                result.setdefault(view.agent, []).append({
                    "text": f"{dep_id}/{view.task}", "color": view_color(view), "value": dep_id, "title": title})
    return result


def _last_known(values: list[float], unit: str, age: str) -> dict[str, Any]:
    """An offline agent's metric: its history, and its last value said to be the last known."""
    text = f"{values[-1]}{unit} last known, {age} ago" if values else ""
    return {"values": values, "text": text}


def agent_rows(fleet: Fleet) -> list[dict[str, Any]]:
    tasks = instances(fleet)
    now = now_ms()
    counted: dict[int, int] = {}  # by type list: the agents are alive meanwhile, so are their lists
    rows = []
    for agent in sorted(fleet.agents.values(), key=lambda a: a.id):
        cpu: Any = [round(cpu, 1) for _, cpu, _ in agent.history]
        rss: Any = [round(rss, 1) for _, _, rss in agent.history]
        if not agent.online:
            sampled = agent.history[-1][0] if agent.history else agent.last_seen
            age = format_age((now - sampled) / 1000)
            cpu, rss = _last_known(cpu, " %", age), _last_known(rss, " MB", age)
        rows.append({
            "id": agent.id,
            "status": {"text": "online" if agent.online else "offline", "color": "green" if agent.online else "grey"},
            "host": _host(agent.host),
            "version": agent.version,
            "types": types_badge(agent, fleet.catalog_note(agent), counted),
            "cpu": cpu,
            "rss": rss,
            "tasks": tasks.get(agent.id, []),
        })
    return rows


def create() -> None:
    @ui.page("/")
    def agents_page() -> None:
        panel = current()
        with frame("Agents", active="/"):
            with ui.row().classes("items-center w-full gap-4"):
                ui.label("Agents").classes("text-h5")
                summary = ui.label().mark("summary")
                ui.space()
                search = ui.input(placeholder="filter").props("dense clearable").mark("filter")
            notes = CatalogNotes()
            table = LiveTable(columns=COLUMNS, empty="no agent has announced itself in this namespace yet")
            table.mark("agents")
            search.on_value_change(lambda e: table.set_filter(e.value or ""))
            table.on_cell(lambda _key, _column, value: ui.navigate.to(f"/deployments/{value}"))
            seen = -1

            def refresh() -> None:
                nonlocal seen
                ageing = any(not a.online for a in panel.fleet.agents.values())  # "last known, 25 s ago"
                if seen >= 0 and not panel.changes.since(seen) and not ageing:
                    return
                seen = panel.changes.revision
                table.set_rows(agent_rows(panel.fleet))
                online = len(panel.fleet.online)
                summary.text = f"{online} online, {len(panel.fleet.agents) - online} offline"
                notes.show(catalog_notes(panel.fleet))

            refresh()
            client = ui.context.client
            # a page left behind lives on for NiceGUI's reconnect timeout after its browser went elsewhere: not
            # rebuilt meanwhile (10,000 agents' rows, ~0.3 s a second, delayed the page the browser went to)
            ui.timer(1.0, lambda: refresh() if client.has_socket_connection else None)
