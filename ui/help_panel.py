"""The editor's help panel: what a task type does, for the type selected in the palette or the node
selected on the canvas.

It shows the catalog entry's label, name and category, its description (the first paragraph of
the type's docstring: the rest is not in the catalog, which an agent with a small
``EDGE_MAX_PAYLOAD`` must still be able to publish), its ports with their IO metadata and its
config fields with their descriptions. For a node the ports are the instance's
own, from its config (:func:`edge.ports.catalog_ports`: a calculator's inputs are its formula's
variables), and each config field says the value the node has. Catalog text comes from agents:
it is shown as text (never as HTML or Markdown), so a hostile entry cannot inject markup.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from nicegui import ui

from edge.ports import catalog_ports, rules_of
from ui.config_form import schema_fields
from ui.io_text import io_text
from ui.type_picker import category_of

__all__ = ["HelpPanel", "value_text"]

VALUE_CHARS = 60  # of a node's config value shown beside its field


def value_text(value: Any) -> str:
    """A config value in one short line (JSON, cut)."""
    try:
        text = json.dumps(value, ensure_ascii=False, default=str)
    except ValueError:  # a circular value cannot come from JSON, but a draft is Python
        text = repr(value)
    return text if len(text) <= VALUE_CHARS else text[:VALUE_CHARS - 1] + "…"


class HelpPanel:
    """``HelpPanel()``; :meth:`show_type` for a palette type, :meth:`show_task` for a node, :meth:`clear`."""

    def __init__(self) -> None:
        self.card = ui.column().classes("w-full gap-1 border rounded p-2 max-h-96 overflow-auto no-wrap").mark("help")
        self.subject: str | None = None
        self.clear()

    def clear(self) -> None:
        self.subject = None
        self.card.clear()
        with self.card:
            ui.label("Help").classes("text-subtitle2")
            ui.label("Select a type in the palette or a node on the canvas: its documentation, ports and config "
                     "fields show here.").classes("text-caption text-grey-7")

    def show_type(self, name: str, entry: Mapping[str, Any] | None) -> None:
        """The help of task type ``name`` (its declared ports: those of the default config)."""
        self._show(name, entry, config=None, task=None)

    def show_task(self, task_id: str, type_name: str, entry: Mapping[str, Any] | None,
                  config: Mapping[str, Any]) -> None:
        """The help of a node: its type's, with the ports and config values of this instance."""
        self._show(type_name, entry, config=config, task=task_id)

    def _show(self, name: str, entry: Mapping[str, Any] | None, *, config: Mapping[str, Any] | None,
              task: str | None) -> None:
        self.subject = f"{task}:{name}" if task else name
        self.card.clear()
        with self.card:
            if entry is None:
                ui.label(f"Help: {name}").classes("text-subtitle2")
                ui.label(f"{name} is in no agent's catalog: there is no help for it.").classes(
                    "text-caption text-warning").mark("help-missing")
                return
            label = str(entry.get("label") or name)
            ui.label(f"Help: {label}").classes("text-subtitle2").mark("help-title")
            ui.label(f"type {name} · {category_of(entry)}" + (f" · node {task}" if task else "")).classes(
                "text-caption text-grey-7 edge-mono")
            description = entry.get("description")
            if isinstance(description, str) and description:
                ui.label(description).classes("text-body2").mark("help-description")
            self._ports(entry, config, task)
            self._config(entry, config)

    def _ports(self, entry: Mapping[str, Any], config: Mapping[str, Any] | None, task: str | None) -> None:
        # a type's ports are those of its default config; a node's, those of its own config
        inputs, outputs = catalog_ports(entry, config if config is not None else entry.get("config_default"))
        rules, _ = rules_of(entry)
        whose = (" (this node's, from its config)" if task else " (of the default config)") if rules else ""
        for kind, ports in (("inputs", inputs), ("outputs", outputs)):
            ui.label(kind + whose).classes("text-caption text-grey-7 pt-1")
            if not ports:
                ui.label("none").classes("text-xs")
            for port, meta in ports.items():
                ui.label(f"{port}: {io_text(meta)}").classes("edge-mono text-xs").mark(f"help-{kind}-{port}")
        for rule in rules:
            ui.label(rule.describe()).classes("text-xs text-grey-7")

    def _config(self, entry: Mapping[str, Any], config: Mapping[str, Any] | None) -> None:
        fields = schema_fields(entry.get("config_schema"))
        ui.label("config").classes("text-caption text-grey-7 pt-1")
        if not fields:
            ui.label("none").classes("text-xs")
        for spec in fields:
            with ui.row().classes("gap-x-2 gap-y-0 items-baseline").mark(f"help-field-{spec.name}"):
                ui.label(spec.name).classes("edge-mono text-xs font-bold")
                ui.label(spec.summary()).classes("text-xs")
                if config is not None and spec.name in config:
                    ui.label(f"= {value_text(config[spec.name])}").classes("edge-mono text-xs text-primary")
            if spec.description:
                ui.label(spec.description).classes("text-xs text-grey-7 pl-3")
