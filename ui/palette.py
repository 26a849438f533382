"""The editor's palette: the catalog's task types by category, searchable, dragged onto the canvas.

It is the type picker (:mod:`ui.type_picker`: groups by category, filter as you type, click to
select, double-click or ``add`` to add) whose rows can also be dragged onto the graph: a row's
``dragstart`` puts the type's name in the drag data under :data:`DRAG_TYPE`, and the graph
(``static/graph_view.js``) emits ``typedrop`` with it and the point under the mouse in graph
coordinates (:meth:`ui.graph_view.GraphView.on_drop`). For keyboard users each row is focusable:
Tab to it, Enter adds it (where the canvas is looking), Space selects it (its help shows).

Groups: the built-in categories in :data:`ui.type_picker.ORDER`, then any other category a type
declares (a third-party package names its own: ``category = "acme"`` makes an "acme" group), then
"other" for types that declare none. The catalog does not say which package a type comes from, so
a package's types are grouped by the category they declare.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from ui.type_picker import TypePicker, _Row

__all__ = ["DRAG_TYPE", "Palette"]

#: the drag data's MIME type that carries a task type's name from a palette row to the graph
DRAG_TYPE: Final = "application/x-edgetasks-type"


class Palette(TypePicker):
    """``Palette(on_add=..., on_select=...)``: ``on_select(name)`` when a type is selected (its help)."""

    def __init__(self, *, on_add: Callable[[str], Any], on_select: Callable[[str], Any] | None = None) -> None:
        self._on_select = on_select
        super().__init__(on_add=on_add)
        self.listing.props('aria-label="palette"').mark("type-list", "palette")

    def _row(self, name: str, entry: Mapping[str, Any]) -> _Row:
        row = super()._row(name, entry)
        # names are ids ([A-Za-z0-9_-]): safe inside the JS string
        row.props(f'draggable=true tabindex=0 title="drag onto the canvas, or press Enter to add" data-type={name}')
        row.on("dragstart", js_handler=f"(e) => {{ e.dataTransfer.setData('{DRAG_TYPE}', '{name}'); "
                                       "e.dataTransfer.effectAllowed = 'copy'; }")
        row.on("keydown.enter", lambda n=name: self._add_now(n))
        row.on("keydown.space.prevent", lambda n=name: self.choose(n))
        return row

    def choose(self, name: str) -> None:
        super().choose(name)
        if self.value == name and self._on_select is not None:
            self._on_select(name)
