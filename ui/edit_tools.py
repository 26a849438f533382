"""The graph editor's editing tools: undo and redo, copy and paste, several nodes selected at once,
and the comments and groups of the canvas (their side panels).

Every edit of the editor goes through :meth:`EditTools.step`, which records the draft's state
before it in the draft's history (:mod:`ui.history`). Keys: Ctrl+Z undoes, Ctrl+Shift+Z and
Ctrl+Y redo, Ctrl+C / Ctrl+X / Ctrl+V copy, cut and paste, Delete removes the selection (not
while typing in a field or a code editor: the field's own undo and clipboard work there; the
canvas component reports them, :meth:`ui.graph_view.GraphView.on_key`).

The clipboard is the browser's session (``app.storage.user``), so a piece copied in one
deployment's editor pastes in another's; it is also put on the system clipboard as YAML text
where the browser allows, and "paste YAML" takes text copied elsewhere.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any, Protocol

from nicegui import app, ui

from edge.errors import SpecError
from ui.clipboard import MAX_CLIP, copy_text, paste_text
from ui.draft import Draft
from ui.frame import transient_dialog
from ui.graph_view import TOPIC, GraphView, mark_props, node_box
from ui.refusal import notify_refused
from ui.viewport import Viewport

__all__ = ["COLORS", "EditTools", "Editing"]

CLIP_KEY = "edge-clipboard"
NOTE_HEIGHT = 60
#: the colours a group can have (name -> #rrggbb)
COLORS = {"grey": "#90a4ae", "blue": "#1e88e5", "green": "#43a047", "orange": "#fb8c00", "red": "#e53935",
          "purple": "#8e24aa"}


class Editing(Protocol):
    """What the tools use of the editor page (:class:`ui.pages.editor.Editor`)."""

    draft: Draft
    selected: dict[str, Any] | None
    label: ui.input
    graph: GraphView
    viewport: Viewport

    def redraw(self) -> None: ...

    def show_selection(self) -> None: ...

    def deselect(self) -> None: ...


class EditTools:
    """The undo, redo, copy, paste, comment and group buttons of an :class:`~ui.pages.editor.Editor`."""

    def __init__(self, editor: Editing) -> None:
        self.editor = editor
        self.multi: list[str] = []
        self._restoring = False
        with ui.button_group().props("flat"):
            self.undo_button = ui.button(icon="undo", on_click=self.undo).props("flat dense").mark("undo").tooltip(
                "undo (Ctrl+Z)")
            self.redo_button = ui.button(icon="redo", on_click=self.redo).props("flat dense").mark("redo").tooltip(
                "redo (Ctrl+Shift+Z, Ctrl+Y)")
        ui.button(icon="content_copy", on_click=self.copy).props("flat dense").mark("copy").tooltip(
            "copy the selection (Ctrl+C)")
        ui.button(icon="content_paste", on_click=self.paste).props("flat dense").mark("paste").tooltip(
            "paste (Ctrl+V)")
        ui.button("paste YAML", on_click=self.paste_dialog).props("flat dense").mark("paste-yaml").tooltip(
            "paste tasks copied as YAML text elsewhere")
        ui.button("comment", icon="sticky_note_2", on_click=self.add_note).props("flat dense").mark("add-note").tooltip(
            "add a comment")
        self.buttons()

    # -- steps --------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def step(self, key: str | None = None) -> Iterator[None]:
        """An edit of the draft: its state before is kept for undo (``key``: edits of one field coalesce)."""
        if self._restoring:  # a field set back by undo reports its change: not an edit of the user
            yield
            return
        before = self.editor.draft.snapshot()
        try:
            yield
        finally:
            if self.editor.draft.record(before, key):
                self.buttons()

    def buttons(self) -> None:
        history = self.editor.draft.history
        self.undo_button.set_enabled(history.can_undo)
        self.redo_button.set_enabled(history.can_redo)

    def undo(self) -> None:
        self._back(self.editor.draft.undo(), "nothing to undo")

    def redo(self) -> None:
        self._back(self.editor.draft.redo(), "nothing to redo")

    def _back(self, done: bool, otherwise: str) -> None:
        if not done:
            ui.notify(otherwise)
            return
        editor = self.editor
        self._restoring = True
        try:
            editor.label.value = editor.draft.label or ""
            self.multi = [n for n in self.multi if n in self._node_ids()]
            if editor.selected is not None and not self._exists(editor.selected):
                editor.selected = None
            editor.redraw()
            editor.show_selection()
        finally:
            self._restoring = False
        self.buttons()

    def _node_ids(self) -> set[str]:
        draft = self.editor.draft
        return {t.id for t in draft.tasks} | {f"{TOPIC}{t}" for t in draft.topics} | {
            f"{TOPIC}{end.topic}" for e in draft.edges for end in (e.source, e.target) if end.topic is not None}

    def _exists(self, selected: dict[str, Any]) -> bool:
        draft, ident = self.editor.draft, str(selected.get("id"))
        kind = selected.get("kind")
        if kind == "edge":
            return any(draft.edge_key(e) == ident for e in draft.edges)
        if kind == "note":
            return any(n.id == ident for n in draft.notes)
        if kind == "group":
            return any(g.id == ident for g in draft.groups)
        return ident in self._node_ids()

    def key(self, action: str, text: str = "") -> None:
        """An editing key pressed on the page (static/graph_view.js says which, not while typing in a
        field); ``text``: the system clipboard's, for a paste."""
        if action == "paste":
            self.paste(text)
            return
        {"undo": self.undo, "redo": self.redo, "copy": self.copy, "cut": self.cut,
         "delete": self.delete_selection}[action]()

    # -- drawing ------------------------------------------------------------------------------------
    def draw(self) -> None:
        notes, groups = mark_props(self.editor.draft.notes, self.editor.draft.groups)
        self.editor.graph.set_marks(notes, groups, self.multi)

    # -- selection of several -------------------------------------------------------------------------
    def select_many(self, ids: list[str]) -> None:
        self.multi = ids
        self.editor.selected = None
        self.editor.graph.props["selected"] = None
        self.editor.show_selection()

    def chosen(self) -> tuple[list[str], list[str]]:
        """The selected task ids and comment ids."""
        selected = self.editor.selected
        if self.multi:
            return [n for n in self.multi if not n.startswith(TOPIC)], []
        if selected and selected.get("kind") == "note":
            return [], [str(selected["id"])]
        if selected and selected.get("kind") == "node" and not str(selected["id"]).startswith(TOPIC):
            return [str(selected["id"])], []
        return [], []

    def multi_panel(self) -> None:
        tasks = [n for n in self.multi if not n.startswith(TOPIC)]
        count = len(self.multi)
        ui.label(f"{count} node{'s' if count != 1 else ''} selected").classes("text-subtitle2").mark("multi-selected")
        ui.label(", ".join(self.multi)).classes("text-caption edge-mono")
        ui.label("Drag one of them to move them all; shift-click adds or takes out one.").classes(
            "text-caption text-grey-7")
        with ui.row().classes("gap-1"):
            ui.button("delete", icon="delete", on_click=self.delete_selection).props("flat color=negative").mark(
                "delete-selection")
            ui.button("copy", icon="content_copy", on_click=self.copy).props("flat")
            if tasks:
                label = ui.input("group label", value="").props("dense").classes("w-40").mark("group-label")
                ui.button("group", icon="select_all", on_click=lambda: self.group(tasks, label.value or "")).props(
                    "flat").mark("group-selection")
        groups = {g.id: g.label or g.id for g in self.editor.draft.groups}
        if tasks and groups:
            with ui.row().classes("items-center gap-1"):
                into = ui.select(groups, label="group", value=next(iter(groups))).props("dense").classes(
                    "w-40").mark("join-group")
                ui.button("add to group", on_click=lambda: self.join(str(into.value), tasks)).props("flat").mark(
                    "join-group-button")

    def delete_selection(self) -> None:
        editor = self.editor
        selected = editor.selected
        with self.step():
            if self.multi:
                for node in self.multi:
                    if node.startswith(TOPIC):
                        editor.draft.remove_topic(node[len(TOPIC):])
                    else:
                        editor.draft.remove_task(node)
                count = len(self.multi)
                self.multi = []
                ui.notify(f"deleted {count} node{'s' if count != 1 else ''}")
            elif selected is None:
                return
            elif selected["kind"] == "edge":
                editor.draft.disconnect(str(selected["id"]))
            elif selected["kind"] == "note":
                editor.draft.remove_note(str(selected["id"]))
            elif selected["kind"] == "group":
                editor.draft.remove_group(str(selected["id"]))
            elif str(selected["id"]).startswith(TOPIC):
                editor.draft.remove_topic(str(selected["id"])[len(TOPIC):])
            else:
                editor.draft.remove_task(str(selected["id"]))
        editor.deselect()

    def move_many(self, moves: list[tuple[str, int, int]]) -> None:
        with self.step():
            for ident, x, y in moves:
                self.editor.draft.positions[ident] = (x, y)
        where = {ident: (x, y) for ident, x, y in moves}
        for drawn in self.editor.graph.nodes:  # the browser moved them already: keep our copy in step
            if drawn["id"] in where:
                drawn["x"], drawn["y"] = where[drawn["id"]]

    # -- clipboard ----------------------------------------------------------------------------------
    def copy(self) -> bool:
        tasks, notes = self.chosen()
        if not tasks and not notes:
            ui.notify("select tasks or a comment to copy first")
            return False
        text = copy_text(self.editor.draft, tasks, notes)
        app.storage.user[CLIP_KEY] = text
        ui.run_javascript(f"navigator.clipboard && navigator.clipboard.writeText({json.dumps(text)}).catch(() => null)")
        what = [f"{len(tasks)} task{'s' if len(tasks) != 1 else ''}"] if tasks else []
        what += [f"{len(notes)} comment"] if notes else []
        ui.notify(f"copied {' and '.join(what)}")
        return True

    def cut(self) -> None:
        if self.copy():
            self.delete_selection()

    def paste(self, system: str = "") -> None:
        """Paste the system clipboard's text when it is a piece of a graph (copied in this panel or
        another), else what was copied in this browser's session."""
        if system.strip() and self._pastes(system):
            self.paste_text(system)
            return
        text = app.storage.user.get(CLIP_KEY)
        if not isinstance(text, str) or not text:
            ui.notify("nothing copied yet: select tasks and copy them (Ctrl+C), or paste YAML")
            return
        self.paste_text(text)

    def _pastes(self, text: str) -> bool:
        """Whether ``text`` pastes into this draft (tried on a copy of it)."""
        try:
            draft = self.editor.draft
            paste_text(Draft(id=draft.id, tasks=list(draft.tasks), edges=list(draft.edges), notes=list(draft.notes),
                             groups=list(draft.groups)), text)
        except SpecError:
            return False
        return True

    def paste_text(self, text: str) -> bool:
        editor = self.editor
        try:
            with self.step():
                added = paste_text(editor.draft, text)
        except SpecError as exc:
            notify_refused("not pasted", exc.errors or [str(exc)])
            return False
        self.multi = added
        editor.selected = None
        editor.redraw()
        editor.show_selection()
        ui.notify(f"pasted {len(added)} task{'s' if len(added) != 1 else ''}"
                  + (f": {', '.join(added)}" if added else ""))
        return True

    def paste_dialog(self) -> None:
        with transient_dialog() as dialog, ui.card().classes("w-[36rem] max-w-full"):
            ui.label("Paste tasks as YAML").classes("text-h6")
            ui.label("Tasks, wires, comments and groups copied from an editor (or any spec) are added to this "
                     "graph; ids that are taken are renamed.").classes("text-caption")
            text = ui.textarea("YAML").classes("w-full edge-mono").props(f"rows=12 maxlength={MAX_CLIP}").mark(
                "paste-text")

            def apply() -> None:
                if self.paste_text(text.value or ""):
                    dialog.close()

            with ui.row():
                ui.button("paste", on_click=apply).mark("paste-apply")
                ui.button("cancel", on_click=dialog.close).props("flat")
        dialog.open()

    # -- comments and groups --------------------------------------------------------------------------
    def add_note(self) -> None:
        editor = self.editor
        taken = [node_box(n) for n in editor.graph.nodes] + [(n.x, n.y, 180, NOTE_HEIGHT) for n in editor.draft.notes]
        spot = editor.viewport.spot(taken, width=180, height=NOTE_HEIGHT) or (0, -NOTE_HEIGHT - 20)
        with self.step():
            note = editor.draft.add_note("a comment", *spot)
        editor.selected = {"kind": "note", "id": note.id}
        self.multi = []
        editor.redraw()
        editor.show_selection()

    def move_note(self, note_id: str, x: int, y: int) -> None:
        try:
            with self.step():
                self.editor.draft.set_note(note_id, x=x, y=y)
        except (KeyError, ValueError):
            return
        for drawn in self.editor.graph.notes:  # moved in the browser already
            if drawn["id"] == note_id:
                drawn["x"], drawn["y"] = x, y

    def note_panel(self, note_id: str) -> None:
        try:
            note = self.editor.draft.note(note_id)
        except KeyError:
            self.editor.selected = None
            return
        ui.label(f"comment {note.id}").classes("text-subtitle2")
        ui.label("Kept with the deployment's spec; agents ignore it.").classes("text-caption text-grey-7")
        ui.textarea("text", value=note.text, on_change=lambda e: self.note_text(note.id, e.value or "")).props(
            "rows=4 maxlength=4096").classes("w-full").mark("note-text")
        ui.button("delete comment", icon="delete", on_click=self.delete_selection).props(
            "flat color=negative").mark("delete-note")

    def note_text(self, note_id: str, text: str) -> None:
        try:
            with self.step(f"note:{note_id}"):
                self.editor.draft.set_note(note_id, text=text)
        except (KeyError, ValueError):
            return
        self.editor.redraw()

    def group(self, tasks: list[str], label: str) -> None:
        with self.step():
            group = self.editor.draft.add_group(label.strip()[:256], tasks, COLORS["blue"])
        self.multi = []
        self.editor.selected = {"kind": "group", "id": group.id}
        self.editor.redraw()
        self.editor.show_selection()

    def join(self, group_id: str, tasks: list[str]) -> None:
        try:
            group = self.editor.draft.group(group_id)
        except KeyError:
            return
        self.set_group(group_id, None, tasks=list(dict.fromkeys([*group.tasks, *tasks])))

    def group_panel(self, group_id: str) -> None:
        try:
            group = self.editor.draft.group(group_id)
        except KeyError:
            self.editor.selected = None
            return
        ui.label(f"group {group.id}").classes("text-subtitle2")
        ui.label("Select tasks (shift-click, or Shift and drag) to add them to it.").classes(
            "text-caption text-grey-7")
        if group.tasks:
            ui.select(group.tasks, label="tasks", value=list(group.tasks), multiple=True,
                      on_change=lambda e: self.set_group(group.id, None, tasks=[t for t in group.tasks
                                                                                if t in (e.value or [])])
                      ).props("dense use-chips").classes("w-full").mark("group-tasks").tooltip(
                "take a task out of the group: remove its chip")
        ui.input("label", value=group.label,
                 on_change=lambda e: self.set_group(group.id, f"group:{group.id}", label=(e.value or "")[:256])).props(
            "dense").classes("w-full").mark("group-label")
        names = {v: k for k, v in COLORS.items()}
        ui.select(list(COLORS), label="colour", value=names.get(group.color or "", "grey"),
                  on_change=lambda e: self.set_group(group.id, None, color=COLORS.get(e.value, COLORS["grey"]))
                  ).classes("w-full").mark("group-color")
        ui.button("ungroup", icon="delete", on_click=self.delete_selection).props("flat color=negative").mark(
            "delete-group").tooltip("remove the box; its tasks stay")

    def set_group(self, group_id: str, key: str | None, **changes: Any) -> None:
        try:
            with self.step(key):
                self.editor.draft.set_group(group_id, **changes)
        except (KeyError, ValueError):
            return
        self.editor.redraw()
