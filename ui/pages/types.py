"""Task types: the catalog across agents as a compact list grouped by category, searchable; a
type's ports (IO metadata as text), config fields, which agents offer it and where it is
unavailable and why show when its line is opened. Agents whose shared catalog has not come (or was
refused) are said above the list (:mod:`ui.catalog_notes`): their types are not in it yet."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from nicegui import ui

from edge.controller import Fleet
from edge.ports import rules_of
from ui.app import current
from ui.catalog_notes import CatalogNotes, catalog_notes
from ui.config_form import schema_fields
from ui.frame import frame
from ui.io_text import io_text
from ui.type_picker import category_of, grouped

__all__ = ["TypeView", "catalog", "create"]


@dataclass
class TypeView:
    name: str
    entry: dict[str, Any]
    offered_by: list[str] = field(default_factory=list)
    unavailable: dict[str, str] = field(default_factory=dict)

    def search_text(self) -> str:
        entry = self.entry
        ports = [f"{name} {io_text(meta)}" for kind in ("inputs", "outputs")
                 for name, meta in (entry.get(kind) or {}).items()]
        return " ".join([self.name, str(entry.get("label", "")), str(entry.get("description", "")),
                         category_of(entry), *ports, *self.offered_by]).lower()


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


def _ports(entry: dict[str, Any], kind: str) -> str:
    ports = entry.get(kind) or {}
    return ", ".join(ports) if ports else "none"


def _details(view: TypeView) -> None:
    """What the expansion of a type shows: ports with their metadata, config fields, agents."""
    entry = view.entry
    with ui.row().classes("gap-8 w-full"):
        for kind in ("inputs", "outputs"):
            ports = entry.get(kind) or {}
            with ui.column().classes("gap-0"):
                ui.label(kind).classes("text-caption text-grey-7")
                if not ports:
                    ui.label("none").classes("text-caption")
                for name, meta in ports.items():
                    ui.label(f"{name}: {io_text(meta)}").classes("edge-mono text-xs")
    rules, _ = rules_of(entry)
    if rules:
        ui.label("ports from the config (above: those of the default config)").classes(
            "text-caption text-grey-7 pt-1")
        for rule in rules:
            ui.label(rule.describe()).classes("text-xs").mark("ports-from")
    fields = schema_fields(entry.get("config_schema"))
    if fields:
        ui.label("config").classes("text-caption text-grey-7 pt-1")
        for spec in fields:
            with ui.row().classes("gap-x-2 gap-y-0 items-baseline"):
                ui.label(spec.name).classes("edge-mono text-xs font-bold")
                ui.label(spec.summary()).classes("text-xs")
            if spec.description:
                ui.label(spec.description).classes("text-xs text-grey-7 pl-3")
    if view.offered_by:
        ui.label("offered by " + ", ".join(view.offered_by)).classes("text-caption pt-1")
    for agent_id, reason in sorted(view.unavailable.items()):
        ui.label(f"unavailable on {agent_id}: {reason}").classes("text-caption text-negative")


def _row(view: TypeView) -> ui.expansion:
    """One line per type (label, name, description, where it runs); its details on demand."""
    entry = view.entry
    with ui.expansion().classes("w-full border-b").props("dense header-class=px-2").mark(
            f"type-{view.name}") as row:
        with row.add_slot("header"), ui.row().classes("items-center gap-3 w-full no-wrap"):
            with ui.column().classes("gap-0 grow min-w-0"):
                with ui.row().classes("items-baseline gap-2 no-wrap"):
                    ui.label(str(entry.get("label") or view.name)).classes("text-body2 font-bold")
                    ui.label(view.name).classes("edge-mono text-grey-7")
                    ui.label(f"in: {_ports(entry, 'inputs')} · out: {_ports(entry, 'outputs')}").classes(
                        "text-caption text-grey-7 ellipsis")
                if entry.get("description"):
                    ui.label(str(entry["description"])).classes("text-caption text-grey-9 ellipsis")
            if view.offered_by:
                ui.badge(f"offered by {len(view.offered_by)}", color="green")
            else:
                ui.badge("unavailable" if view.unavailable else "no online agent", color="grey")
        _details(view)
    return row


def create() -> None:
    @ui.page("/types")
    def types_page() -> None:
        panel = current()
        with frame("Task types", active="/types"):
            with ui.row().classes("items-center w-full gap-4"):
                ui.label("Task types").classes("text-h5")
                count = ui.label().mark("types-count")
                ui.space()
                search = ui.input(placeholder="search types, ports, categories, agents").props(
                    "dense clearable").classes("w-80").mark("search")
            ui.label("Click a type for its ports, config fields and the agents that run it.").classes(
                "text-caption text-grey-7")
            notes = CatalogNotes()
            listing_box = ui.column().classes("w-full gap-0 max-w-5xl")
            rows: dict[str, tuple[ui.expansion, str]] = {}
            headers: list[tuple[ui.label, list[str]]] = []
            shown: list[Any] = []
            seen = -1

            def apply_filter() -> None:
                words = (search.value or "").strip().lower().split()
                visible = 0
                for row, text in rows.values():
                    row.visible = all(word in text for word in words)
                    visible += row.visible
                for header, names in headers:
                    header.visible = any(rows[n][0].visible for n in names)
                count.text = f"{visible} of {len(rows)} types"

            @ui.refreshable
            def listing(views: list[TypeView], pending: bool) -> None:
                rows.clear()
                headers.clear()
                if not views:  # agents whose shared catalog has not come did publish a catalog: said above
                    ui.label("no task type has come from any agent yet" if pending
                             else "no agent has published a catalog yet").classes("text-grey-7")
                by_name = {v.name: v for v in views}
                for category, names in grouped({v.name: {**v.entry, "available": True} for v in views}):
                    header = ui.label(category).classes("text-overline text-grey-8 pt-2").mark(
                        f"types-group-{category}")
                    headers.append((header, names))
                    for name in names:
                        rows[name] = (_row(by_name[name]), by_name[name].search_text())
                apply_filter()

            def refresh() -> None:
                nonlocal seen, shown
                if seen >= 0 and not panel.changes.since(seen, "agent"):
                    return
                seen = panel.changes.revision
                lines = catalog_notes(panel.fleet)
                notes.show(lines)
                views = catalog(panel.fleet)
                digest = [bool(lines), *((v.name, v.entry, v.offered_by, v.unavailable) for v in views)]
                if digest != shown:  # agents report metrics every few seconds; redraw only when the catalog changed
                    shown = digest
                    listing.refresh(views, bool(lines))

            with listing_box:
                listing([], False)
            search.on_value_change(apply_filter)
            refresh()
            ui.timer(2.0, refresh)
