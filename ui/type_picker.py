"""The editor's task-type picker: the catalog grouped by category, with descriptions and a search.

Each type's catalog entry carries a ``category`` (``Task.category``; empty is "other"), a label
and a description. The picker lists the types that some agent can run under a header per
category; typing in the search keeps the types whose name, label, description or category hold
every word typed. Clicking a row selects it, ``add`` (or a double click, or Enter with one match
left) adds it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from nicegui import ui

from ui.catalog_notes import CatalogNotes

__all__ = ["ORDER", "TypePicker", "category_of", "grouped", "matches"]

#: the built-in categories, in the order a graph is usually built; others follow by name, "other" last
ORDER = ("logic", "timing", "flow", "data", "text", "connections", "dashboard", "integration", "hardware", "media",
         "inference")
OTHER = "other"


def category_of(entry: Mapping[str, Any]) -> str:
    category = entry.get("category")
    return category.strip().lower() if isinstance(category, str) and category.strip() else OTHER


def _rank(category: str) -> tuple[int, str]:
    if category in ORDER:
        return ORDER.index(category), ""
    return (len(ORDER) + 1, "") if category == OTHER else (len(ORDER), category)


def grouped(types: Mapping[str, Mapping[str, Any]]) -> list[tuple[str, list[str]]]:
    """The runnable types by category: ``[("logic", ["calculator", "gate"]), ...]``."""
    groups: dict[str, list[str]] = {}
    for name, entry in sorted(types.items()):
        if entry.get("available", True):
            groups.setdefault(category_of(entry), []).append(name)
    return [(category, groups[category]) for category in sorted(groups, key=_rank)]


def matches(needle: str, name: str, entry: Mapping[str, Any]) -> bool:
    """Whether every word of ``needle`` is in the type's name, label, description or category."""
    haystack = " ".join([name, str(entry.get("label") or ""), str(entry.get("description") or ""),
                         category_of(entry)]).lower()
    return all(word in haystack for word in needle.lower().split())


class _Row(ui.element):
    """One type in the list; found by its text ``Label (name)`` in tests, as users read it."""

    def __init__(self, text: str, description: str) -> None:
        super().__init__("div")
        self._texts = [text, description]

    def _displayed_contents(self, *, only_visible: bool) -> list[Any]:
        return [*super()._displayed_contents(only_visible=only_visible), *self._texts]


class TypePicker:
    """``TypePicker(on_add=...)``; :meth:`set_types` (re)fills it from the catalog."""

    def __init__(self, *, on_add: Callable[[str], Any]) -> None:
        self._on_add = on_add
        self._types: dict[str, dict[str, Any]] = {}
        self._filled = False  # an empty catalog is drawn too ("no agent offers a task type yet")
        self._rows: dict[str, _Row] = {}
        self._headers: dict[str, tuple[ui.label, list[str]]] = {}
        self.value: str | None = None
        with ui.row().classes("w-full items-center no-wrap gap-1"):
            self.search = ui.input("task type", placeholder="search names, descriptions, categories").props(
                "dense clearable").classes("grow").mark("add-type")
            ui.button("add", icon="add", on_click=self.add).props("dense").mark("add")
        self.count = ui.label().classes("text-caption text-grey-7").mark("type-count")
        #: agents whose types are not listed yet, and why (ui.catalog_notes)
        self.notes = CatalogNotes()
        self.listing = ui.element("div").classes("w-full max-h-72 overflow-auto border rounded").props(
            'role=listbox aria-label="catalog"').mark("type-list")
        self.search.on_value_change(lambda _: self.apply_filter())
        self.search.on("keydown.enter", self._enter)

    def set_types(self, types: Mapping[str, Mapping[str, Any]]) -> None:
        wanted = {name: dict(entry) for name, entry in types.items() if entry.get("available", True)}
        if wanted == self._types and self._filled:
            return
        self._types = wanted
        self._filled = True
        if self.value not in wanted:
            self.value = None
        self._rows.clear()
        self._headers.clear()
        self.listing.clear()
        with self.listing:
            if not wanted:
                ui.label("no agent offers a task type yet").classes("text-caption text-grey-7 p-2")
            for category, names in grouped(wanted):
                header = ui.label(category).classes(
                    "text-overline text-grey-8 px-2 pt-1 bg-grey-2 w-full").mark(f"type-group-{category}")
                self._headers[category] = (header, names)
                for name in names:
                    self._rows[name] = self._row(name, wanted[name])
        self.apply_filter()

    def set_notes(self, lines: list[str]) -> None:
        """Say which agents' types are missing from the list, and why (:func:`ui.catalog_notes.catalog_notes`)."""
        self.notes.show(lines)

    def _row(self, name: str, entry: Mapping[str, Any]) -> _Row:
        label = str(entry.get("label") or name)
        description = str(entry.get("description") or "")
        row = _Row(f"{label} ({name})", description)
        row.classes("px-2 py-1 cursor-pointer hover:bg-blue-1").props("role=option").mark(f"type-{name}")
        with row:
            with ui.row().classes("items-baseline gap-2 no-wrap"):
                ui.label(label).classes("text-body2 font-medium")
                ui.label(f"({name})").classes("text-caption text-grey-7 edge-mono")
            if description:
                ui.label(description).classes("text-caption text-grey-8 leading-tight line-clamp-2")
        row.on("click", lambda n=name: self.choose(n))
        row.on("dblclick", lambda n=name: self._add_now(n))
        return row

    def choose(self, name: str) -> None:
        """Select a type (highlighted; ``add`` adds it)."""
        if name not in self._rows:
            return
        if self.value in self._rows:
            self._rows[self.value].classes(remove="bg-blue-2").props(remove="aria-selected")
        self.value = name
        self._rows[name].classes(add="bg-blue-2").props("aria-selected=true")

    def visible_types(self) -> list[str]:
        return [name for name, row in self._rows.items() if row.visible]

    def apply_filter(self) -> None:
        needle = (self.search.value or "").strip()
        for name, row in self._rows.items():
            row.visible = matches(needle, name, self._types[name])
        for header, names in self._headers.values():
            header.visible = any(self._rows[n].visible for n in names)
        shown = len(self.visible_types())
        self.count.text = (f"{shown} of {len(self._rows)} types match" if needle else
                           f"{len(self._rows)} types: click one, then add (or double-click it)")

    def _enter(self) -> None:
        shown = self.visible_types()
        if len(shown) == 1:
            self._add_now(shown[0])
        elif self.value in shown:
            self.add()

    def _add_now(self, name: str) -> None:
        self.choose(name)
        self.add()

    def add(self) -> None:
        if not self.value:
            ui.notify("choose a task type first", type="warning")
            return
        self._on_add(self.value)
