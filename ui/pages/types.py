"""Task types: the catalog across agents, with ports, metadata and config fields, which agents
offer each type, and where a type is unavailable and why."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from nicegui import ui

from edge.controller import Fleet
from ui.app import current
from ui.config_form import schema_fields
from ui.frame import frame

__all__ = ["TypeView", "catalog", "create"]


@dataclass
class TypeView:
    name: str
    entry: dict[str, Any]
    offered_by: list[str] = field(default_factory=list)
    unavailable: dict[str, str] = field(default_factory=dict)

    def search_text(self) -> str:
        entry = self.entry
        ports = [f"{name} {meta}" for kind in ("inputs", "outputs") for name, meta in (entry.get(kind) or {}).items()]
        return " ".join([self.name, str(entry.get("label", "")), str(entry.get("description", "")), *ports,
                         *self.offered_by]).lower()


def catalog(fleet: Fleet) -> list[TypeView]:
    """Every type some agent lists (online or not), with who offers it and who cannot run it."""
    views: dict[str, TypeView] = {}
    for agent in sorted(fleet.agents.values(), key=lambda a: a.id):
        for entry in agent.types:
            name = entry.get("name")
            if not isinstance(name, str):
                continue
            view = views.setdefault(name, TypeView(name, entry))
            if entry.get("available", True):
                if not view.entry.get("available", True):
                    view.entry = entry  # describe it as the agents that can run it do
                if agent.online:
                    view.offered_by.append(agent.id)
            else:
                view.unavailable[agent.id] = str(entry.get("reason", "unavailable"))
    return [views[name] for name in sorted(views)]


def _meta(meta: Any) -> str:
    if not isinstance(meta, dict) or not meta:
        return "any"
    return ", ".join(f"{k}={v}" for k, v in sorted(meta.items()))


def _card(view: TypeView) -> ui.card:
    entry = view.entry
    with ui.card().classes("w-full gap-1 p-3").mark(f"type-{view.name}") as card:
        with ui.row().classes("items-center gap-2 w-full"):
            ui.label(str(entry.get("label") or view.name)).classes("text-subtitle1 font-bold")
            ui.label(view.name).classes("text-caption text-grey-7")
            ui.space()
            if view.offered_by:
                ui.badge(f"offered by {len(view.offered_by)}", color="green")
            else:
                ui.badge("unavailable" if view.unavailable else "no online agent", color="grey")
        if entry.get("description"):
            ui.label(str(entry["description"])).classes("text-body2")
        with ui.row().classes("gap-6 no-wrap"):
            for kind in ("inputs", "outputs"):
                ports = entry.get(kind) or {}
                with ui.column().classes("gap-0"):
                    ui.label(kind).classes("text-caption text-grey-7")
                    if not ports:
                        ui.label("none").classes("text-caption")
                    for name, meta in ports.items():
                        ui.label(f"{name}: {_meta(meta)}").classes("font-mono text-xs")
        fields = schema_fields(entry.get("config_schema"))
        if fields:
            ui.label("config").classes("text-caption text-grey-7")
            for spec in fields:
                with ui.row().classes("gap-x-2 gap-y-0 items-baseline"):
                    ui.label(spec.name).classes("font-mono text-xs font-bold")
                    ui.label(spec.summary()).classes("text-xs")
                if spec.description:
                    ui.label(spec.description).classes("text-xs text-grey-7 pl-3")
        if view.offered_by:
            ui.label("offered by " + ", ".join(view.offered_by)).classes("text-caption")
        for agent_id, reason in sorted(view.unavailable.items()):
            ui.label(f"unavailable on {agent_id}: {reason}").classes("text-caption text-negative")
    return card


def create() -> None:
    @ui.page("/types")
    def types_page() -> None:
        panel = current()
        with frame("Task types", active="/types"):
            with ui.row().classes("items-center w-full gap-4"):
                ui.label("Task types").classes("text-h5")
                count = ui.label()
                ui.space()
                search = ui.input(placeholder="search types, ports, agents").props("dense clearable").classes(
                    "w-72").mark("search")
            grid = ui.element("div").classes("w-full grid grid-cols-1 lg:grid-cols-2 2xl:grid-cols-3 gap-3 items-start")
            cards: dict[str, tuple[ui.card, str]] = {}
            shown: list[Any] = []
            seen = -1

            def apply_filter() -> None:
                needle = (search.value or "").strip().lower()
                visible = 0
                for card, text in cards.values():
                    card.visible = needle in text
                    visible += card.visible
                count.text = f"{visible} of {len(cards)} types"

            @ui.refreshable
            def listing(views: list[TypeView]) -> None:
                cards.clear()
                if not views:
                    ui.label("no agent has published a catalog yet").classes("text-grey-7")
                for view in views:
                    cards[view.name] = (_card(view), view.search_text())
                apply_filter()

            def refresh() -> None:
                nonlocal seen, shown
                if seen >= 0 and not panel.changes.since(seen, "agent"):
                    return
                seen = panel.changes.revision
                views = catalog(panel.fleet)
                digest = [(v.name, v.entry, v.offered_by, v.unavailable) for v in views]
                if digest != shown:  # agents report metrics every few seconds; redraw only when the catalog changed
                    shown = digest
                    listing.refresh(views)

            with grid:
                listing([])
            search.on_value_change(apply_filter)
            refresh()
            ui.timer(2.0, refresh)
