"""The node-graph view of a deployment: a pannable SVG component and the layout that feeds it.

The browser side (``static/graph_view.js``) draws nodes, ports and wires, pans (drag the
background), zooms (wheel, buttons), moves nodes and, when editable, connects an output to an
input by clicking one then the other (or dragging). It never changes the graph itself: it emits
``select``, ``connect``, ``move`` and ``port`` events, the server decides and sends the graph
back. Status colours are patched in place (:meth:`GraphView.set_states`) so a running view of a
100-task deployment does not resend its graph every time a status changes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from nicegui import events, ui

from edge.graph import DeploymentSpec

__all__ = ["GraphView", "graph_props", "layout"]

COLUMN_WIDTH = 260
ROW_GAP = 40
HEAD = 36
ROW = 20


def _height(n_in: int, n_out: int) -> int:
    return HEAD + max(n_in, n_out, 1) * ROW + 8


def layout(spec: DeploymentSpec, types: Mapping[str, Mapping[str, Any]],
           positions: Mapping[str, tuple[int, int]] | None = None) -> dict[str, tuple[int, int]]:
    """A position per task: sources left, each task one column right of what feeds it (cycles are cut),
    tasks of a column stacked; positions the user chose win."""
    ids = [t.id for t in spec.tasks]
    column = dict.fromkeys(ids, 0)
    wires = [(e.source.task, e.target.task) for e in spec.edges
             if e.source.task is not None and e.target.task is not None and e.source.task != e.target.task]
    for _ in range(len(ids)):  # longest path, bounded so that a cycle cannot run away
        changed = False
        for a, b in wires:
            if a in column and b in column and column[b] < column[a] + 1 < len(ids):
                column[b] = column[a] + 1
                changed = True
        if not changed:
            break
    heights: dict[int, int] = {}
    result: dict[str, tuple[int, int]] = {}
    for task in spec.tasks:
        entry = types.get(task.type, {})
        n_in, n_out = len(entry.get("inputs", {}) or {}), len(entry.get("outputs", {}) or {})
        col = column[task.id]
        y = heights.get(col, 0)
        result[task.id] = (col * COLUMN_WIDTH, y)
        heights[col] = y + _height(n_in, n_out) + ROW_GAP
    for task_id, xy in (positions or {}).items():
        if task_id in result:
            result[task_id] = (int(xy[0]), int(xy[1]))
    return result


def _meta_text(meta: object) -> str:
    if not isinstance(meta, Mapping) or not meta:
        return ""
    return ", ".join(f"{k}={v}" for k, v in sorted(meta.items()))


def graph_props(spec: DeploymentSpec, types: Mapping[str, Mapping[str, Any]], *,
                positions: Mapping[str, tuple[int, int]] | None = None,
                states: Mapping[str, str] | None = None) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """The nodes and edges the component draws, from a spec and the catalog entries by type."""
    xy = layout(spec, types, positions)
    topic_in = {(e.target.task, e.target.port): str(e.source) for e in spec.edges if e.source.topic is not None}
    topic_out: dict[tuple[str | None, str | None], list[str]] = {}
    for e in spec.edges:
        if e.target.topic is not None:
            topic_out.setdefault((e.source.task, e.source.port), []).append(str(e.target))
    nodes = []
    for task in spec.tasks:
        entry = types.get(task.type, {})
        inputs = entry.get("inputs", {}) or {}
        outputs = entry.get("outputs", {}) or {}
        # ports the catalog does not know (an unknown type, a typo) still get drawn where wires use them
        for e in spec.edges:
            if e.target.task == task.id and e.target.port not in inputs:
                inputs = {**inputs, e.target.port: {}}
            if e.source.task == task.id and e.source.port not in outputs:
                outputs = {**outputs, e.source.port: {}}
        x, y = xy[task.id]
        nodes.append({
            "id": task.id,
            "title": task.label or task.id,
            "subtitle": f"{task.type} @ {task.agent}" if task.agent else f"{task.type} (placed)",
            "x": x, "y": y,
            "state": (states or {}).get(task.id, "none"),
            "inputs": [{"name": name, "title": " · ".join(filter(None, [
                f"{task.id}.{name}", _meta_text(meta), topic_in.get((task.id, name), "")]))}
                for name, meta in inputs.items()],
            "outputs": [{"name": name, "title": " · ".join(filter(None, [
                f"{task.id}.{name}", _meta_text(meta), *topic_out.get((task.id, name), [])]))}
                for name, meta in outputs.items()],
        })
    edges = [{"key": f"{e.source}->{e.target}", "from": str(e.source), "to": str(e.target)}
             for e in spec.edges if e.source.task is not None and e.target.task is not None]
    return nodes, edges


class GraphView(ui.element, component="static/graph_view.js"):
    """``GraphView(editable=True)``; feed it with :meth:`set_graph`, listen with the ``on_*`` methods."""

    def __init__(self, *, editable: bool) -> None:
        super().__init__()
        self._props["nodes"] = []
        self._props["edges"] = []
        self._props["editable"] = editable
        self._props["selected"] = None
        self._states: dict[str, str] = {}

    @property
    def nodes(self) -> list[dict[str, Any]]:
        nodes: list[dict[str, Any]] = self._props["nodes"]
        return nodes

    @property
    def edges(self) -> list[dict[str, str]]:
        edges: list[dict[str, str]] = self._props["edges"]
        return edges

    def set_graph(self, nodes: list[dict[str, Any]], edges: list[dict[str, str]],
                  selected: dict[str, Any] | None = None) -> bool:
        """Send the graph when it differs from what the browser has; True when it was sent."""
        if nodes == self._props["nodes"] and edges == self._props["edges"] and selected == self._props["selected"]:
            return False
        self._props["nodes"] = nodes
        self._props["edges"] = edges
        self._props["selected"] = selected
        self._states = {n["id"]: n.get("state", "none") for n in nodes}
        self.update()
        return True

    def set_states(self, states: Mapping[str, str]) -> int:
        """Recolour the nodes whose state changed, without resending the graph; returns how many."""
        changed = {k: v for k, v in states.items() if k in self._states and self._states[k] != v}
        if changed:
            self._states.update(changed)
            for node in self._props["nodes"]:
                if node["id"] in changed:
                    node["state"] = changed[node["id"]]
            self.run_method("setStates", changed)
        return len(changed)

    def on_select(self, handler: Callable[[str | None, str | None], Any]) -> GraphView:
        self.on("select", lambda e: handler(e.args.get("kind"), e.args.get("id")))
        return self

    def on_connect(self, handler: Callable[[str, str], Any]) -> GraphView:
        self.on("connect", lambda e: handler(str(e.args["from"]), str(e.args["to"])))
        return self

    def on_move(self, handler: Callable[[str, int, int], Any]) -> GraphView:
        def forward(e: events.GenericEventArguments) -> Any:
            return handler(str(e.args["id"]), int(e.args["x"]), int(e.args["y"]))

        self.on("move", forward)
        return self

    def on_port(self, handler: Callable[[str, str, str], Any]) -> GraphView:
        def forward(e: events.GenericEventArguments) -> Any:
            return handler(str(e.args["task"]), str(e.args["port"]), str(e.args["side"]))

        self.on("port", forward)
        return self

    def _displayed_contents(self, *, only_visible: bool) -> list[Any]:
        texts = [f"{n['title']} {n['subtitle']}" for n in self._props["nodes"]]
        return [*super()._displayed_contents(only_visible=only_visible), *texts]
