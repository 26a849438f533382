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

__all__ = ["PAGE_SIZE", "Column", "LiveTable", "pager_text"]

#: rows per page: what the browser holds and renders at once
PAGE_SIZE = 100

Kind = Literal["text", "badge", "chips", "spark", "actions", "link"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Column:
    """One column: ``text`` cells hold a string, ``badge`` ``{"text", "color", "title"?, "sort"?}`` (``sort``: what
    the column sorts it by, else its text), ``chips`` a list of
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
    """``LiveTable(columns=[...])``, then :meth:`set_rows` as often as you like; only changes travel.

    The table holds every row on the server and shows one page of them (``page_size`` rows): the
    filter, the sort (a click on a column's header) and the pager work on all rows, server-side,
    and the browser only ever holds the page it shows, so a fleet of 10,000 agents is 100 rows in
    the page, never 10,000.
    """

    def __init__(self, *, columns: Sequence[Column], row_key: str = "id", empty: str = "nothing yet",
                 page_size: int = PAGE_SIZE) -> None:
        super().__init__()
        self._columns = list(columns)
        self._kinds = {c.name: c.kind for c in self._columns}
        self._row_key = row_key
        self.page_size = max(1, page_size)
        self._rows: dict[str, dict[str, Any]] = {}
        self._texts: dict[str, str] = {}  # each row's searchable text, lower case
        self._shown: dict[str, dict[str, Any]] = {}  # the page the browser holds
        self._filter = ""
        self._sort: tuple[str, bool] | None = None  # column, descending
        self._page = 0
        self._props["columns"] = [c.to_dict() for c in self._columns]
        self._props["rows"] = []
        self._props["row-key"] = row_key
        self._props["empty"] = empty
        self._props["pager"] = {"first": 0, "last": 0, "total": 0, "all": 0, "page": 0, "pages": 1, "text": ""}
        self._props["sort"] = None
        #: rows sent to the browser so far (patched or whole), for tests and measurements
        self.sent_rows = 0
        self.on("page", lambda e: self.set_page(self._page + int(e.args.get("delta", 0))
                                                if "delta" in e.args else int(e.args.get("page", 0))))
        self.on("sort", lambda e: self.sort_by(str(e.args.get("column", ""))))

    @property
    def rows(self) -> list[dict[str, Any]]:
        """Every row, in the order given (all pages, whatever the filter)."""
        return list(self._rows.values())

    @property
    def shown_rows(self) -> list[dict[str, Any]]:
        """The rows of the page the browser shows."""
        return list(self._shown.values())

    def set_rows(self, rows: Sequence[dict[str, Any]]) -> int:
        """Show ``rows`` (in this order, unless sorted by a column); returns how many rows had to be sent."""
        key = self._row_key
        new = {str(row[key]): row for row in rows}
        old, texts = self._rows, self._texts
        self._texts = {k: texts[k] if k in texts and old.get(k) == row else self.row_text(row).lower()
                       for k, row in new.items()}
        self._rows = new
        return self._send()

    def set_filter(self, text: str) -> None:
        """Show only the rows whose text contains ``text`` (case-insensitive), of all rows; back to page 1."""
        self._filter = text.strip()
        self._page = 0
        self._send()

    def sort_by(self, column: str) -> None:
        """Sort by ``column``: ascending, then descending on the next call, then as given; back to page 1."""
        if column not in self._kinds:
            return
        self._page = 0
        if self._sort is None or self._sort[0] != column:
            self._sort = (column, False)
        elif not self._sort[1]:
            self._sort = (column, True)
        else:
            self._sort = None
        self._props["sort"] = None if self._sort is None else {"column": self._sort[0], "descending": self._sort[1]}
        self._send()

    def set_page(self, page: int) -> None:
        """Show page ``page`` (from 0; clamped to the pages there are)."""
        self._page = page
        self._send()

    def _keys(self) -> list[str]:
        needle = self._filter.lower()
        keys = [k for k in self._rows if needle in self._texts[k]] if needle else list(self._rows)
        if self._sort is not None:
            column, descending = self._sort
            kind = self._kinds[column]
            keys.sort(key=lambda k: _sort_key(kind, self._rows[k].get(column)), reverse=descending)
        return keys

    def _send(self) -> int:
        keys = self._keys()
        pages = max(1, -(-len(keys) // self.page_size))
        self._page = min(max(self._page, 0), pages - 1)
        first = self._page * self.page_size
        page = {k: self._rows[k] for k in keys[first:first + self.page_size]}
        old = self._shown
        upserts = [row for k, row in page.items() if old.get(k) != row]
        removed = [k for k in old if k not in page]
        order = list(page) if list(page) != list(old) else None
        pager: dict[str, Any] = {"first": first + 1 if page else 0, "last": first + len(page), "total": len(keys),
                                 "all": len(self._rows), "page": self._page, "pages": pages}
        pager["text"] = pager_text(pager) if pages > 1 or pager["total"] != pager["all"] else ""
        self._shown = page
        # the props always hold the current page: a later full render shows it without a patch. Set quietly:
        # through the props, every row was wrapped in NiceGUI's observables and the whole table sent again
        # besides the patch, on every refresh (a third of the panel's busy time with 1,000 agents: py-spy)
        changed_pager = pager != self._props["pager"]
        dict.__setitem__(self._props, "rows", list(page.values()))
        dict.__setitem__(self._props, "pager", pager)
        if upserts or removed or order is not None or changed_pager:
            self.run_method("patch", upserts, removed, order, pager)
            self.sent_rows += len(upserts)
        return len(upserts)

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

    @staticmethod
    def row_text(row: dict[str, Any]) -> str:
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
        # what the user fixture's should_see() and ElementFilter match against: the cells of the page
        # shown, and the pager's line
        texts = [self.row_text(row) for row in self._shown.values()]
        line = [self._props["pager"]["text"]] if self._props["pager"]["text"] else []
        return [*super()._displayed_contents(only_visible=only_visible), *(texts or [self._props["empty"]]), *line]


def pager_text(pager: dict[str, Any]) -> str:
    """``101-200 of 10,000`` (``of 3 matching, 10,000 in all`` when a filter hides some)."""
    shown = f"{pager['first']:,}-{pager['last']:,} of {pager['total']:,}"
    return shown if pager["total"] == pager["all"] else f"{shown} matching, {pager['all']:,} in all"


def _sort_key(kind: str, value: Any) -> tuple[int, Any]:
    """Numbers before text, so a column sorts whatever its cells hold; a cell with nothing goes last."""
    if kind == "spark":
        values = value if isinstance(value, list) else value.get("values", []) if isinstance(value, dict) else []
        return (0, values[-1]) if values else (2, "")
    if kind == "chips":
        return (0, len(value)) if isinstance(value, list) else (2, "")
    if isinstance(value, dict):
        value = value.get("sort", value.get("text", ""))
    if isinstance(value, bool) or value is None:
        return (2, "") if value is None else (1, str(value))
    if isinstance(value, int | float):
        return (0, value)
    return (1, str(value).lower())
