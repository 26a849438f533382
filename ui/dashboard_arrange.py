"""The dashboard page's tabs and its arrange mode: move and resize cards, add, rename and delete
dashboards, then save the layout.

Saving a layout **republishes the deployed spec** with the new ``dashboards`` (the next version,
stamped like any deploy): the agents restart no task for it (a task restarts only when its own
spec or wiring changes), every open panel shows the new layout, and the history can roll it back.
It is refused when another version was deployed since arranging began (the user arranges again
on what runs now). The editor's draft, when it was based on the version replaced, takes the new
layout and version as its base, so the editor's own changes stay and are not reported as a
conflict; a draft that was already stale is left to the editor's conflict banner.
"""

from __future__ import annotations

from collections.abc import Callable

from nicegui import ui

from edge.errors import EdgeError, SpecError
from edge.graph import DeploymentSpec, parse_spec
from ui.app import Panel
from ui.dashboard_layout import Board, Layout

__all__ = ["CSS", "Dragging", "card_controls", "draggable", "save_layout", "tabs"]

# a grid of 4 columns on a wide screen, 2 on a narrow one, 1 on a phone, where every card is as
# wide as the screen and what is touched is at least 44 px (the size a finger hits)
CSS = """
.edge-board { display: grid; grid-template-columns: repeat(4, minmax(0, 1fr)); grid-auto-rows: minmax(150px, auto);
  gap: 12px; width: 100%; align-items: stretch; }
.edge-board > .edge-w2 { grid-column: span 2; } .edge-board > .edge-w3 { grid-column: span 3; }
.edge-board > .edge-w4 { grid-column: span 4; }
.edge-board > .edge-h2 { grid-row: span 2; } .edge-board > .edge-h3 { grid-row: span 3; }
.edge-board > .edge-h4 { grid-row: span 4; }
.edge-board > .q-card { min-width: 0; }
@media (max-width: 1100px) {
  .edge-board { grid-template-columns: repeat(2, minmax(0, 1fr)); }
  .edge-board > .edge-w3, .edge-board > .edge-w4 { grid-column: span 2; }
}
@media (max-width: 600px) {
  .edge-board { grid-template-columns: minmax(0, 1fr); }
  .edge-board > .edge-w2, .edge-board > .edge-w3, .edge-board > .edge-w4 { grid-column: auto; }
  .edge-board .q-btn, .edge-tabs .q-btn { min-height: 44px; min-width: 44px; }
  .edge-board .q-toggle__inner { font-size: 56px; }
  .edge-board .q-radio__inner { font-size: 48px; }
  .edge-board .q-field__control { min-height: 48px; }
  .edge-board .q-slider--h { height: 48px; }
  .q-header { flex-wrap: wrap; }
  .q-header .text-caption { display: none; }
}
"""


def tabs(layout: Layout, shown: Board, *, arranging: bool, switch: Callable[[str], None]) -> None:
    """One button per dashboard (none when there is only one and nothing is arranged): ``switch`` opens its
    page, or, while arranging, shows it in place (keeping the layout being arranged)."""
    if len(layout.boards) < 2 and not arranging:
        return
    for board in layout.boards:
        current = board is shown
        ui.button(board.title, on_click=lambda b=board: switch(b.id)).props(
            f"no-caps {'unelevated' if current else 'flat'}").mark(f"tab-{board.id}")


def card_controls(layout: Layout, board: Board, task: str, changed: Callable[[], None]) -> None:
    """The arrange mode's buttons on a card: earlier, later, narrower, wider, lower, taller, to another dashboard."""

    def act(done: bool) -> None:
        if done:
            changed()

    card = next(c for c in board.cards if c.task == task)
    with ui.row().classes("items-center gap-0 w-full").mark(f"arrange-{task}"):
        for icon, name, action in (
                ("arrow_back", "earlier", lambda: layout.move(board, task, -1)),
                ("arrow_forward", "later", lambda: layout.move(board, task, 1)),
                ("remove", "narrower", lambda: layout.resize(board, task, dw=-1)),
                ("add", "wider", lambda: layout.resize(board, task, dw=1)),
                ("expand_less", "lower", lambda: layout.resize(board, task, dh=-1)),
                ("expand_more", "taller", lambda: layout.resize(board, task, dh=1))):
            ui.button(icon=icon, on_click=lambda a=action: act(a())).props("flat dense round").tooltip(
                name).mark(f"{name}-{task}")
        ui.label(f"{card.w} x {card.h}").classes("text-caption text-grey-7 q-mx-sm")
        others = {b.id: b.title for b in layout.boards if b is not board}
        if others:
            ui.select(others, label="move to", on_change=lambda e: act(layout.move_to(board, task, e.value))).props(
                "dense").classes("w-32").mark(f"move-to-{task}")


class Dragging:
    """The card being dragged in the arrange mode (its task), between its dragstart and a drop."""

    def __init__(self) -> None:
        self.task: str | None = None


def draggable(element: ui.element, layout: Layout, board: Board, task: str, *, dragging: Dragging,
              changed: Callable[[], None]) -> None:
    """Make a card draggable onto another, whose place it takes (with a mouse; the buttons do the same)."""

    def start() -> None:
        dragging.task = task

    def drop() -> None:
        moved, dragging.task = dragging.task, None
        if moved is not None and any(c.task == moved for c in board.cards) and layout.place(board, moved, task):
            changed()

    element.props("draggable=true").classes("cursor-move")
    element.on("dragstart", start)
    element.on("dragover", js_handler="(e) => e.preventDefault()")  # a drop target, without a server round trip
    element.on("drop", drop)


async def save_layout(panel: Panel, dep: str, layout: Layout, based_on: int) -> DeploymentSpec | None:
    """Publish the deployed spec of ``dep`` with ``layout``'s dashboards (see the module doc); the new spec,
    or None (the user was told why in one line)."""
    deployed = panel.fleet.deployments.get(dep)
    if deployed is None:
        ui.notify(f"{dep} is not deployed any more: the layout was not saved", type="warning")
        return None
    if deployed.version != based_on:
        ui.notify(f"{dep} version {deployed.version} was deployed while you arranged version {based_on}: "
                  "the layout was not saved; arrange it again", type="warning", multi_line=True)
        return None
    data = deployed.to_dict()
    data.pop("deployed", None)
    data["dashboards"] = [board.model_dump(exclude_none=True) for board in layout.specs()]
    try:
        result = await panel.controller.deploy(parse_spec(data))
    except SpecError as exc:
        ui.notify("the layout was not saved: " + "; ".join(exc.errors or [str(exc)]), type="negative",
                  multi_line=True)
        return None
    except EdgeError as exc:
        ui.notify(f"the layout was not saved: {exc}", type="negative")
        return None
    draft = panel.drafts.get(dep)
    if draft is not None and not draft.stale(deployed):  # the editor's changes stay, on the new version
        draft.dashboards = list(result.spec.dashboards)
        draft.base, draft.version = result.spec, result.spec.version
    panel.changes.note("local", dep)
    ui.notify(f"layout saved: {dep} version {result.spec.version}", type="positive")
    return result.spec

