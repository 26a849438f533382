"""A table for live data that sends only the rows that changed.

NiceGUI sends an element's whole state on every update, so a ``ui.table`` of 200 agents with
their sparklines would ship every row each time one agent reports. :class:`LiveTable` keeps the
rows it last sent and, on :meth:`LiveTable.set_rows`, sends the browser a patch (changed and
new rows, removed keys, the order when it changed) through a method of its own small Vue
component (``static/live_table.js``). Cells are text, badges, chips, sparklines or action
buttons; all text is rendered escaped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from nicegui import events, ui

__all__ = ["Column", "LiveTable"]

Kind = Literal["text", "badge", "chips", "spark", "actions", "link"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Column:
    """One column: ``text`` cells hold a string, ``badge`` ``{"text", "color"}``, ``chips`` a list of
    ``{"text", "color"?, "value"?, "title"?}`` (clickable when they have a value), ``spark`` a list of
    numbers (or ``{"values", "text"}`` when they are not current: the text replaces the last value),
    ``link`` a string that emits ``cell`` when clicked, ``actions`` nothing (its buttons)."""

    name: str
    label: str
    kind: Kind = "text"
    unit: str = ""
    wrap: bool = False
    actions: Sequence[tuple[str, str]] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "label": self.label, "kind": self.kind}
        if self.unit:
            data["unit"] = self.unit
        if self.wrap:
            data["wrap"] = True
        if self.actions:
            data["actions"] = [{"name": name, "label": label} for name, label in self.actions]
        return data


class LiveTable(ui.element, component="static/live_table.js"):
    """``LiveTable(columns=[...])``, then :meth:`set_rows` as often as you like; only changes travel."""

    def __init__(self, *, columns: Sequence[Column], row_key: str = "id", empty: str = "nothing yet") -> None:
        super().__init__()
        self._columns = list(columns)
        self._row_key = row_key
        self._rows: dict[str, dict[str, Any]] = {}
        self._filter = ""
        self._props["columns"] = [c.to_dict() for c in self._columns]
        self._props["rows"] = []
        self._props["row-key"] = row_key
        self._props["empty"] = empty
        self._props["filter"] = ""
        #: rows sent to the browser so far (patched or whole), for tests and measurements
        self.sent_rows = 0

    @property
    def rows(self) -> list[dict[str, Any]]:
        return list(self._rows.values())

    def set_rows(self, rows: Sequence[dict[str, Any]]) -> int:
        """Show ``rows`` (in this order); returns how many rows had to be sent."""
        key = self._row_key
        new = {str(row[key]): row for row in rows}
        old = self._rows
        upserts = [row for k, row in new.items() if old.get(k) != row]
        removed = [k for k in old if k not in new]
        order = list(new) if list(new) != list(old) else None
        self._rows = new
        # the props always hold the current rows: a later full render shows them without a patch
        self._props["rows"] = list(new.values())
        if upserts or removed or order is not None:
            self.run_method("patch", upserts, removed, order)
            self.sent_rows += len(upserts)
        return len(upserts)

    def set_filter(self, text: str) -> None:
        """Show only the rows whose text contains ``text`` (case-insensitive), filtered in the browser."""
        self._filter = text.strip()
        self._props["filter"] = self._filter
        self.run_method("setFilter", self._filter)

    def on_action(self, handler: Callable[[str, str], Any]) -> LiveTable:
        """``handler(row_key, action_name)`` when an action button is clicked."""
        self.on("action", lambda e: handler(str(e.args["key"]), str(e.args["action"])))
        return self

    def on_cell(self, handler: Callable[[str, str, Any], Any]) -> LiveTable:
        """``handler(row_key, column, value)`` when a clickable chip or a link is clicked."""
        def forward(e: events.GenericEventArguments) -> Any:
            return handler(str(e.args["key"]), str(e.args["column"]), e.args.get("value"))

        self.on("cell", forward)
        return self

    def row_text(self, row: dict[str, Any]) -> str:
        parts: list[str] = []
        for value in row.values():
            if isinstance(value, dict):
                parts.append(str(value.get("text", "")))
            elif isinstance(value, list):
                parts.extend(str(chip.get("text", "")) for chip in value if isinstance(chip, dict))
            elif value is not None:
                parts.append(str(value))
        return " ".join(parts)

    def _displayed_contents(self, *, only_visible: bool) -> list[Any]:
        # what the user fixture's should_see() and ElementFilter match against: the visible cells
        needle = self._filter.lower()
        texts = [self.row_text(row) for row in self._rows.values()]
        shown = [t for t in texts if needle in t.lower()]
        return [*super()._displayed_contents(only_visible=only_visible), *(shown or [self._props["empty"]])]
