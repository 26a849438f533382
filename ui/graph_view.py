"""The node-graph view of a deployment: a pannable SVG component and the layout that feeds it.

The browser side (``static/graph_view.js``) draws nodes, ports and wires, pans (drag the
background), zooms (wheel, buttons), moves nodes and, when editable, connects an output to an
input by clicking one then the other (or dragging). It never changes the graph itself: it emits
``select``, ``connect``, ``move`` and ``port`` events, the server decides and sends the graph
back. Status colours are patched in place (:meth:`GraphView.set_states`) so a running view of a
100-task deployment does not resend its graph every time a status changes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from nicegui import events, ui

from edge.graph import DeploymentSpec, Endpoint, GroupSpec, NoteSpec, TaskSpec
from edge.ports import catalog_ports
from edge.topics import is_valid_id
from ui.io_text import io_text

__all__ = ["TOPIC", "TOPIC_HEIGHT", "GraphView", "graph_props", "layout", "mark_props", "meta_text", "node_box",
           "node_height", "placed_agents", "topic_nodes"]

COLUMN_WIDTH = 260
ROW_GAP = 40
HEAD = 36
ROW = 20
NODE_WIDTH = 190  # as static/graph_view.js draws them
TOPIC_HEIGHT = 44  # a topic node: one pill with its input on the left, its output on the right
TOPIC = "topic:"
FAR = 1_000_000  # a dropped node's coordinates are kept within this
#: what the editing keys do (static/graph_view.js's onKey)
KEY_ACTIONS = frozenset({"undo", "redo", "copy", "cut", "paste", "delete"})
MAX_PASTE = 1_000_000  # characters of pasted text taken
SELECTABLE = ("node", "edge", "note", "group")  # what a click selects
#: the metadata of a port a wire uses but the task does not have
MISSING: Any = object()


def node_height(n_in: int, n_out: int) -> int:
    """The height of a task node with that many inputs and outputs, as the browser draws it."""
    return HEAD + max(n_in, n_out, 1) * ROW + 8


def _ref(end: Endpoint) -> str:
    """The node id of an edge's end: the task, or ``topic:...`` for a topic node."""
    return f"{TOPIC}{end.topic}" if end.topic is not None else str(end.task)


def topic_nodes(spec: DeploymentSpec, extra: Iterable[str] = ()) -> list[str]:
    """The topics drawn as nodes: every ``topic:`` end of the spec's edges, then ``extra`` (not yet wired)."""
    found: dict[str, None] = {}
    for e in spec.edges:
        for end in (e.source, e.target):
            if end.topic is not None:
                found[end.topic] = None
    for topic in extra:
        found[topic] = None
    return list(found)


def layout(spec: DeploymentSpec, types: Mapping[str, Mapping[str, Any]],
           positions: Mapping[str, tuple[int, int]] | None = None,
           topics: Iterable[str] = ()) -> dict[str, tuple[int, int]]:
    """A position per node (tasks, and ``topic:...`` nodes): sources left, each node one column right
    of what feeds it (cycles are cut), nodes of a column stacked; positions the user chose win."""
    heights_of: dict[str, int] = {}
    for task in spec.tasks:
        inputs, outputs = catalog_ports(types.get(task.type, {}), task.config)
        heights_of[task.id] = node_height(len(inputs), len(outputs))
    for topic in topic_nodes(spec, topics):
        heights_of[f"{TOPIC}{topic}"] = TOPIC_HEIGHT
    ids = list(heights_of)
    column = dict.fromkeys(ids, 0)
    wires = [(_ref(e.source), _ref(e.target)) for e in spec.edges if _ref(e.source) != _ref(e.target)]
    for _ in range(len(ids)):  # longest path, bounded so that a cycle cannot run away
        changed = False
        for a, b in wires:
            if a in column and b in column and column[b] < column[a] + 1 < len(ids):
                column[b] = column[a] + 1
                changed = True
        if not changed:
            break
    stacked: dict[int, int] = {}
    result: dict[str, tuple[int, int]] = {}
    for node_id in ids:
        col = column[node_id]
        y = stacked.get(col, 0)
        result[node_id] = (col * COLUMN_WIDTH, y)
        stacked[col] = y + heights_of[node_id] + ROW_GAP
    for node_id, xy in (positions or {}).items():
        if node_id in result:
            result[node_id] = (int(xy[0]), int(xy[1]))
    return result


def meta_text(meta: object) -> str:
    """IO metadata as a port's tooltip shows it (empty when there is none)."""
    return io_text(meta, empty="")


def placed_agents(wanted: Iterable[TaskSpec], deployed: DeploymentSpec | None) -> dict[str, str]:
    """Task -> agent, for the tasks that name no agent in ``wanted`` and that placement put on one."""
    if deployed is None:
        return {}
    unpinned = {t.id for t in wanted if not t.agent}
    return {t.id: t.agent for t in deployed.tasks if t.id in unpinned and t.agent}


def _subtitle(task: TaskSpec, placed: Mapping[str, str]) -> str:
    if task.replicas > 1:  # x3 and where each replica runs (placed ones, in the deployed spec)
        where = ", ".join(task.agents) if task.agents else task.agent or "any agents"
        return f"{task.type} x{task.replicas} @ {where}" if task.agents or task.agent else \
            f"{task.type} x{task.replicas} · {where}"
    if task.id in placed:
        return f"{task.type} @ {placed[task.id]} (placed)"
    if task.agent:
        return f"{task.type} @ {task.agent}"
    return f"{task.type} · any agent"


def _topic_node(topic: str, xy: tuple[int, int]) -> dict[str, Any]:
    is_filter = "+" in topic or "#" in topic
    node_id = f"{TOPIC}{topic}"
    # a filter can only be read: no input (a task cannot publish to a wildcard)
    inputs = [] if is_filter else [{"name": "in", "title": f"tasks wired here publish on {topic}"}]
    return {"id": node_id, "kind": "topic", "title": topic,
            "subtitle": "MQTT topic filter" if is_filter else "MQTT topic",
            "x": xy[0], "y": xy[1], "state": "topic", "inputs": inputs,
            "outputs": [{"name": "out", "title": f"tasks wired from here subscribe to {topic}"}]}


def graph_props(spec: DeploymentSpec, types: Mapping[str, Mapping[str, Any]], *,
                positions: Mapping[str, tuple[int, int]] | None = None,
                states: Mapping[str, str] | None = None,
                topics: Iterable[str] = (),
                placed: Mapping[str, str] | None = None) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """The nodes and edges the component draws, from a spec and the catalog entries by type.

    Every ``topic:`` end of an edge is a node of its own (``kind: topic``, id ``topic:...``), so
    every edge of the spec is drawn; ``topics`` adds topic nodes that have no wire yet. ``placed``
    (task -> agent) names the tasks that placement put on an agent.
    """
    xy = layout(spec, types, positions, topics)
    wired = _wired_ports(spec)
    nodes = []
    for task in spec.tasks:
        # the instance's own ports: they may follow its config (edge.ports), redrawn as it changes
        own_inputs, own_outputs = catalog_ports(types.get(task.type, {}), task.config)
        inputs: dict[str, Any] = dict(own_inputs)
        outputs: dict[str, Any] = dict(own_outputs)
        # ports the task does not have (an unknown type, a typo, a config that dropped them) still get
        # drawn where wires use them, so the wire shows; the problems line under the graph says why
        for side, port in wired.get(task.id, ()):
            ports = inputs if side == "in" else outputs
            if port not in ports:
                ports[port] = MISSING
        x, y = xy[task.id]
        nodes.append({
            "id": task.id,
            "kind": "task",
            "title": task.label or task.id,
            "subtitle": _subtitle(task, placed or {}),
            "x": x, "y": y,
            "state": (states or {}).get(task.id, "none"),
            "inputs": [_port(task.id, name, meta) for name, meta in inputs.items()],
            "outputs": [_port(task.id, name, meta) for name, meta in outputs.items()],
        })
    nodes += [_topic_node(topic, xy[f"{TOPIC}{topic}"]) for topic in topic_nodes(spec, topics)]
    edges = [{"key": f"{e.source}->{e.target}", "from": str(e.source), "to": str(e.target)} for e in spec.edges]
    return nodes, edges


def mark_props(notes: Iterable[NoteSpec], groups: Iterable[GroupSpec]) -> tuple[list[dict[str, Any]],
                                                                              list[dict[str, Any]]]:
    """The comments and groups the component draws (:meth:`GraphView.set_marks`), from a spec's or a draft's."""
    return [n.model_dump() for n in notes], [g.model_dump(exclude_none=True) for g in groups]


def _wired_ports(spec: DeploymentSpec) -> dict[str, list[tuple[str, str]]]:
    """Task -> the (side, port) its wires use, in the spec's order: one pass over the edges (looking
    them all up for each task took 0.84 s of the 1.5 s building a 1,000-task running view)."""
    wired: dict[str, list[tuple[str, str]]] = {}
    for e in spec.edges:
        if e.target.task is not None:
            wired.setdefault(e.target.task, []).append(("in", str(e.target.port)))
        if e.source.task is not None:
            wired.setdefault(e.source.task, []).append(("out", str(e.source.port)))
    return wired


def _port(task_id: str, name: str, meta: Any) -> dict[str, Any]:
    if meta is MISSING:
        return {"name": name, "title": f"{task_id}.{name} · not a port of this task (with its config): "
                                       "delete the wire or change the config", "missing": True}
    return {"name": name, "title": " · ".join(filter(None, [f"{task_id}.{name}", meta_text(meta)]))}


def _point(args: Any) -> tuple[int, int] | None:
    """``x`` and ``y`` of an event's arguments, bounded; None when they are not numbers."""
    if not isinstance(args, dict):
        return None
    x, y = args.get("x"), args.get("y")
    if not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in (x, y)):
        return None
    return max(-FAR, min(FAR, int(x))), max(-FAR, min(FAR, int(y)))  # type: ignore[arg-type]


def node_box(node: Mapping[str, Any]) -> tuple[int, int, int, int]:
    """Where a node of :func:`graph_props` is drawn: x, y, width, height."""
    if node.get("kind") == "topic":
        height = TOPIC_HEIGHT
    else:
        height = node_height(len(node.get("inputs") or []), len(node.get("outputs") or []))
    return int(node["x"]), int(node["y"]), NODE_WIDTH, height


class GraphView(ui.element, component="static/graph_view.js"):
    """``GraphView(editable=True)``; feed it with :meth:`set_graph`, listen with the ``on_*`` methods."""

    def __init__(self, *, editable: bool) -> None:
        super().__init__()
        self._props["nodes"] = []
        self._props["edges"] = []
        self._props["editable"] = editable
        self._props["selected"] = None
        self._props["debug"] = []
        self._props["statuses"] = {}
        self._props["notes"] = []
        self._props["groups"] = []
        self._props["multi"] = []
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
        self._states = {n["id"]: n.get("state", "none") for n in nodes if n.get("kind") != "topic"}
        self.update()
        return True

    @property
    def notes(self) -> list[dict[str, Any]]:
        notes: list[dict[str, Any]] = self._props["notes"]
        return notes

    @property
    def groups(self) -> list[dict[str, Any]]:
        groups: list[dict[str, Any]] = self._props["groups"]
        return groups

    @property
    def multi(self) -> list[str]:
        """The nodes selected together (shift-click, rubber band)."""
        multi: list[str] = self._props["multi"]
        return multi

    def set_marks(self, notes: list[dict[str, Any]], groups: list[dict[str, Any]], multi: list[str]) -> bool:
        """Send the comments, the groups and the several selected nodes when they differ; True when sent."""
        if (notes, groups, multi) == (self._props["notes"], self._props["groups"], self._props["multi"]):
            return False
        self._props["notes"], self._props["groups"], self._props["multi"] = notes, groups, list(multi)
        self.update()
        return True

    def on_select_many(self, handler: Callable[[list[str]], Any]) -> GraphView:
        """Several nodes were selected (shift-click, a rubber band): their ids (only those drawn)."""
        def forward(e: events.GenericEventArguments) -> Any:
            ids = e.args.get("ids") if isinstance(e.args, dict) else None
            if not isinstance(ids, list):
                return None
            drawn = {n["id"] for n in self.nodes}
            chosen = [i for i in dict.fromkeys(x for x in ids if isinstance(x, str)) if i in drawn]
            self._props["multi"] = chosen  # the browser knows already
            return handler(chosen)

        self.on("selectmany", forward)
        return self

    def on_move_many(self, handler: Callable[[list[tuple[str, int, int]]], Any]) -> GraphView:
        """Several selected nodes were dragged together: ``(id, x, y)`` of each."""
        def forward(e: events.GenericEventArguments) -> Any:
            moves = e.args.get("moves") if isinstance(e.args, dict) else None
            if not isinstance(moves, list):
                return None
            drawn = {n["id"] for n in self.nodes}
            result = []
            for move in moves[:len(drawn)]:
                xy = _point(move)
                if xy is not None and move.get("id") in drawn:
                    result.append((str(move["id"]), *xy))
            return handler(result) if result else None

        self.on("movemany", forward)
        return self

    def on_key(self, handler: Callable[[str, str], Any]) -> GraphView:
        """An editing key was pressed (editable views): ``undo``, ``redo``, ``copy``, ``cut``, ``paste`` or
        ``delete``, and for a paste the system clipboard's text ("" when there is none); anything else
        the browser sends is ignored."""
        def forward(e: events.GenericEventArguments) -> Any:
            args = e.args if isinstance(e.args, dict) else {}
            action, text = args.get("action"), args.get("text")
            if not isinstance(action, str) or action not in KEY_ACTIONS:
                return None
            return handler(action, text if isinstance(text, str) and len(text) <= MAX_PASTE else "")

        self.on("key", forward)
        return self

    def on_note_move(self, handler: Callable[[str, int, int], Any]) -> GraphView:
        """A comment was dragged: its id and where it is now."""
        def forward(e: events.GenericEventArguments) -> Any:
            xy = _point(e.args)
            note = e.args.get("id") if isinstance(e.args, dict) else None
            if xy is None or not isinstance(note, str):
                return None
            return handler(note, *xy)

        self.on("notemove", forward)
        return self

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

    @property
    def statuses(self) -> dict[str, dict[str, str]]:
        """Task id -> the status line under its node (``{"text", "tone"}``), as the browser has it."""
        statuses: dict[str, dict[str, str]] = self._props["statuses"]
        return statuses

    def set_statuses(self, statuses: Mapping[str, Mapping[str, str]]) -> int:
        """Change the status lines under the nodes that changed (:mod:`ui.node_status`); returns how many."""
        changed = {k: dict(v) for k, v in statuses.items() if self.statuses.get(k) != v}
        gone = {k: {"text": "", "tone": "idle"} for k in self.statuses if k not in statuses}
        changed.update(gone)
        if changed:
            self._props["statuses"] = {k: dict(v) for k, v in statuses.items()}
            self.run_method("setStatus", changed)
        return len(changed)

    def set_debug(self, refs: list[str]) -> None:
        """Mark the debug toggles of these outputs (``task.port``) as on."""
        if refs != self._props["debug"]:
            self._props["debug"] = list(refs)
            self.run_method("setDebug", list(refs))

    def on_debug(self, handler: Callable[[str], Any]) -> GraphView:
        """An output's debug toggle was clicked (views that are not editable): its ``task.port``."""
        def forward(e: events.GenericEventArguments) -> Any:
            args = e.args if isinstance(e.args, dict) else {}
            task, port = args.get("task"), args.get("port")
            if isinstance(task, str) and isinstance(port, str) and task and port:
                return handler(f"{task}.{port}")
            return None

        self.on("debug", forward)
        return self

    def on_select(self, handler: Callable[[str | None, str | None], Any]) -> GraphView:
        def forward(e: events.GenericEventArguments) -> Any:
            args = e.args if isinstance(e.args, dict) else {}
            kind, ident = args.get("kind"), args.get("id")
            if kind is None:
                return handler(None, None)
            if kind not in SELECTABLE or not isinstance(ident, str):
                return None  # not what the component sends
            return handler(kind, ident)

        self.on("select", forward)
        return self

    def on_connect(self, handler: Callable[[str, str], Any]) -> GraphView:
        self.on("connect", lambda e: handler(str(e.args["from"]), str(e.args["to"])))
        return self

    def on_move(self, handler: Callable[[str, int, int], Any]) -> GraphView:
        def forward(e: events.GenericEventArguments) -> Any:
            return handler(str(e.args["id"]), int(e.args["x"]), int(e.args["y"]))

        self.on("move", forward)
        return self

    def on_view(self, handler: Callable[[float, float, float, float], Any]) -> GraphView:
        """The visible centre and size of the canvas, in graph coordinates (editable views only)."""
        def forward(e: events.GenericEventArguments) -> Any:
            args = e.args if isinstance(e.args, dict) else {}
            try:
                x, y = float(args["x"]), float(args["y"])
                width, height = float(args.get("width", 0)), float(args.get("height", 0))
            except (KeyError, TypeError, ValueError):
                return None  # not what the component sends: ignore it
            if not all(map(math.isfinite, (x, y, width, height))):
                return None
            return handler(x, y, width, height)

        self.on("view", forward)
        return self

    def on_drop(self, handler: Callable[[str, int, int], Any]) -> GraphView:
        """A task type dropped from the palette (editable views): its name and the point under the mouse,
        in graph coordinates; anything else the browser sends is ignored."""
        def forward(e: events.GenericEventArguments) -> Any:
            args = e.args if isinstance(e.args, dict) else {}
            name, x, y = args.get("type"), args.get("x"), args.get("y")
            if not isinstance(name, str) or not is_valid_id(name):
                return None
            if not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in (x, y)):
                return None
            return handler(name, *(max(-FAR, min(FAR, int(v))) for v in (x, y)))  # type: ignore[arg-type]

        self.on("typedrop", forward)
        return self

    def on_port(self, handler: Callable[[str, str, str], Any]) -> GraphView:
        def forward(e: events.GenericEventArguments) -> Any:
            return handler(str(e.args["task"]), str(e.args["port"]), str(e.args["side"]))

        self.on("port", forward)
        return self

    def on_topic(self, handler: Callable[[str], Any]) -> GraphView:
        """A topic node's dot was clicked (views that are not editable): its topic."""
        def forward(e: events.GenericEventArguments) -> Any:
            topic = e.args.get("topic") if isinstance(e.args, dict) else None
            return handler(topic) if isinstance(topic, str) and topic else None

        self.on("topic", forward)
        return self

    def _displayed_contents(self, *, only_visible: bool) -> list[Any]:
        texts = [f"{n['title']} {n['subtitle']}" for n in self._props["nodes"]]
        texts += [s["text"] for s in self.statuses.values() if s.get("text")]
        texts += [str(n.get("text", "")) for n in self.notes] + [str(g.get("label") or g["id"]) for g in self.groups]
        return [*super()._displayed_contents(only_visible=only_visible), *texts]
