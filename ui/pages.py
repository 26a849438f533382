"""The panel's pages. The agents page lists the fleet live; more pages land with the controller issue."""

from __future__ import annotations

import time
from typing import Any

from nicegui import ui

from ui.app import current

__all__ = ["index"]

COLUMNS: list[dict[str, Any]] = [
    {"name": "id", "label": "Agent", "field": "id", "sortable": True, "align": "left"},
    {"name": "status", "label": "Status", "field": "status", "sortable": True, "align": "left"},
    {"name": "version", "label": "Version", "field": "version", "align": "left"},
    {"name": "host", "label": "Host", "field": "host", "align": "left"},
    {"name": "types", "label": "Task types", "field": "types", "align": "right"},
    {"name": "seen", "label": "Since", "field": "seen", "align": "left"},
]


def _rows() -> list[dict[str, Any]]:
    rows = []
    for agent in sorted(current().fleet.agents.values(), key=lambda a: a.id):
        host = agent.host
        rows.append({
            "id": agent.id,
            "status": "online" if agent.online else "offline",
            "version": agent.version,
            "host": f"{host.get('name', '?')} ({host.get('machine', '?')}, Python {host.get('python', '?')})",
            "types": len(agent.types),
            "seen": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(agent.ts / 1000)) if agent.ts else "",
        })
    return rows


@ui.page("/")
def index() -> None:
    panel = current()
    ui.page_title("edgetasks")
    with ui.header().classes("items-center"):
        ui.label("edgetasks").classes("text-h6")
        ui.label(f"namespace {panel.settings.namespace} · broker {panel.bus.url}").classes("text-caption")
    ui.label("Agents").classes("text-h5")
    connection = ui.label()
    table = ui.table(columns=COLUMNS, rows=_rows(), row_key="id").classes("w-full")
    table.add_slot("body-cell-status", """
        <q-td :props="props">
          <q-badge :color="props.value === 'online' ? 'green' : 'grey'" :label="props.value" />
        </q-td>""")

    def refresh() -> None:
        connection.text = "connected to the broker" if panel.bus.is_connected else "connecting to the broker…"
        rows = _rows()
        if rows != table.rows:
            table.rows = rows
            table.update()

    refresh()
    ui.timer(0.5, refresh)
