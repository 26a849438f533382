"""The running view of a deployment: its graph coloured by task state, and a table of its tasks
with their agent, state, restarts, error text, frames and rates per port. Clicking an output
opens the live inspector of its frames; clicking an input on the graph opens its inject dialog
(:mod:`ui.inject`: type a value, send it into that input).

States are those of :mod:`edge.controller.views`: a task whose agent is offline shows ``agent
offline`` with how long, its frame counts as last known and no rates. A crash notice (restarted
N times, the last error and when) stays in the table and in a list with a dismiss button until
dismissed or ten minutes without a crash.

The spec's comments and groups are drawn as the editor draws them (:func:`ui.graph_view.mark_props`),
read-only. Beside the graph, the debug sidebar (:mod:`ui.debug_sidebar`) lists the frames of the outputs whose
square is toggled on; under each node a status line (:mod:`ui.node_status`) says how it is doing."""

from __future__ import annotations

from typing import Any

from nicegui import ui

from edge.controller import Fleet, TaskView, deployment_views
from edge.controller.views import AGENT_OFFLINE
from edge.errors import ConfigError
from edge.graph import DeploymentSpec
from edge.ports import catalog_ports
from ui.app import Panel, current
from ui.debug_sidebar import DebugSidebar
from ui.frame import deployment_nav, frame
from ui.graph_view import GraphView, graph_props, mark_props, placed_agents
from ui.inject import port_dialog
from ui.inspector import open_inspector
from ui.live_table import Column, LiveTable
from ui.node_status import NodeStatuses
from ui.pages.deployments import confirm_stop
from ui.status import graph_states, summarize, view_color
from ui.topic_nodes import open_topic_inspector

__all__ = ["COLUMNS", "create", "task_rows"]

COLUMNS = (
    Column(name="id", label="Task"),
    Column(name="type", label="Type"),
    Column(name="agent", label="Agent"),
    Column(name="state", label="State", kind="badge"),
    Column(name="restarts", label="Restarts"),
    Column(name="inputs", label="Inputs (frames · rate)", kind="chips"),
    Column(name="outputs", label="Outputs (frames · rate)", kind="chips"),
    Column(name="error", label="Error · last crash", wrap=True),
)


def _port_chip(task: str, port: str, side: str, metrics: Any, *, current: bool = True) -> dict[str, Any]:
    m = metrics if isinstance(metrics, dict) else {}
    text = f"{port}: {m.get('frames', 0)}"
    rate = m.get("rate")
    if not current:  # the agent no longer refreshes them: no rate, and say the count is the last known
        text += " (last known)" if m else ""
    elif isinstance(rate, int | float):
        text += f" · {rate:.1f}/s"
    if m.get("errors"):
        text += f" · {m['errors']} errors"
    if m.get("gaps"):
        text += f" · {m['gaps']} lost"
    return {"text": text, "value": f"{task}.{port}:{side}", "title": f"inspect {task}.{port}"}


def task_rows(fleet: Fleet, spec: DeploymentSpec, types: dict[str, dict[str, Any]],
              views: list[TaskView] | None = None) -> list[dict[str, Any]]:
    rows = []
    shown: dict[str, list[TaskView]] = {}
    for v in (views if views is not None else deployment_views(fleet, spec.id)):
        shown.setdefault(v.of or v.task, []).append(v)
    pairs = [(task, view) for task in spec.tasks for view in shown.get(task.id, [])]
    for task, view in pairs:
        metrics = view.metrics
        entry = types.get(task.type, {})
        chips: dict[str, list[dict[str, Any]]] = {}
        for side, kind in (("in", "inputs"), ("out", "outputs")):
            found = metrics.get(kind)
            measured: dict[str, Any] = found if isinstance(found, dict) else {}
            declared: dict[str, Any] = entry.get(kind) or {}
            ports = list(declared) + [p for p in measured if p not in declared]
            chips[kind] = [_port_chip(task.id, port, side, measured.get(port), current=view.current)
                           for port in ports]
        # the error now, and the crash notice (only its count and time when its error is the one shown)
        last_error = view.status.last_error if view.status is not None else None
        notice = (view.crash if last_error == view.error else view.notice) or ""
        rows.append({  # a task with replicas: a row per replica, its key (worker.1) as its id
            "id": view.task,
            "type": task.type,
            "agent": view.agent or "-",
            "state": {"text": view.label, "color": view_color(view)},
            "restarts": str(view.restarts),
            "inputs": chips["inputs"],
            "outputs": chips["outputs"],
            "error": " · ".join(filter(None, [view.error, view.detail, notice])),
        })
    return rows


class RunningView:
    def __init__(self, panel: Panel, dep: str) -> None:
        self.panel = panel
        self.dep = dep
        self._spec: DeploymentSpec | None = None
        self._seen = -1
        self._ageing = False
        self._agents: set[str] = set()  # the agents of the tasks shown: their changes redraw the view
        deployment_nav(dep, "Running")
        with ui.row().classes("items-center gap-4 w-full"):
            self.summary = ui.label().classes("text-subtitle1").mark("summary")
            ui.space()
            self.stop = ui.button("stop", icon="stop", on_click=self._stop).props("color=warning").mark("stop")
        self.missing = ui.label(f"{dep} is not deployed. Open the editor to build and deploy it.").classes(
            "text-grey-7")
        self.hint = ui.label("Click an input to inject a value into it, an output to inspect its frames.").classes(
            "text-caption text-grey-7")
        self.graph = GraphView(editable=False).classes("w-full").style("height: 42vh").mark("graph")
        self.graph.on_port(self._port)
        self.notices = ui.column().classes("w-full gap-1").mark("notices")
        self._notice_shape: list[tuple[str, bool]] = []
        self._notice_labels: dict[str, ui.label] = {}
        self.graph.on_topic(lambda topic: open_topic_inspector(panel, topic))
        self._beside_the_graph()
        self.table = LiveTable(columns=COLUMNS, empty="no tasks").mark("tasks")
        self.table.on_cell(self._cell)
        self.refresh()
        ui.timer(1.0, self.refresh)

    def _port(self, task: str, port: str, side: str) -> None:
        """An input clicked on the graph: inject into it (its dialog also inspects a wired one's source)."""
        if side == "in":
            port_dialog(self.panel, self.dep, task, port)
        else:
            open_inspector(self.panel, self.dep, task, port, side)

    def _cell(self, _key: str, _column: str, value: Any) -> None:
        ref, _, side = str(value).rpartition(":")
        task, _, port = ref.partition(".")
        open_inspector(self.panel, self.dep, task, port, side)

    def _stop(self) -> None:
        confirm_stop(self.panel, self.dep)

    async def _dismiss(self, task: str) -> None:
        try:
            asked = await self.panel.controller.dismiss(self.dep, task)
        except ConfigError as exc:
            ui.notify(str(exc), type="warning")
            return
        if asked:
            ui.notify(f"asked the agent to clear the crash notice of {task}")

    def _show_notices(self, views: list[TaskView]) -> None:
        """One line per task with a crash notice, and its dismiss button: rebuilt when which tasks have one
        (or whether their agent can be asked) changes, otherwise only their text moves on (the ages)."""
        notices = {v.task: (v.notice or "", v.state != AGENT_OFFLINE) for v in views if v.notice is not None}
        shape = [(task, can_dismiss) for task, (_, can_dismiss) in notices.items()]
        if shape != self._notice_shape:
            self._notice_shape = shape
            self._notice_labels.clear()
            self.notices.clear()
            with self.notices:
                for task, can_dismiss in shape:
                    with ui.row().classes("items-center gap-2 w-full"):
                        ui.icon("warning", color="amber-8")
                        self._notice_labels[task] = ui.label().classes("text-body2").mark(f"notice-{task}")
                        button = ui.button("dismiss", on_click=lambda t=task: self._dismiss(t)).props("flat dense")
                        button.mark(f"dismiss-{task}")
                        if not can_dismiss:
                            button.disable()
                            button.tooltip("its agent is offline")
        for task, (text, _) in notices.items():
            label = self._notice_labels[task]
            if label.text != f"{task}: {text}":
                label.text = f"{task}: {text}"

    def refresh(self) -> None:
        changes = self.panel.changes
        # of the agents, only those of this deployment's tasks: in a fleet of thousands some agent's heartbeat
        # changes something every second, and redrawing 1,000 tasks' rows for it cost the panel its CPU
        moved = self._seen < 0 or changes.since(self._seen, "deployment", "status") \
            or changes.agents_since(self._seen, self._agents)
        if not moved and not self._ageing:
            return
        self._seen = changes.revision
        fleet = self.panel.fleet
        spec = fleet.deployments.get(self.dep)
        summary = summarize(fleet, self.dep)
        views = list(summary.views)
        self._agents = {view.agent for view in views if view.agent is not None}
        self.debug.set_deployed(spec is not None)
        # ages ("agent offline 25 s", "3 min ago") move on by themselves: redraw each second while shown
        self._ageing = any(v.offline_for is not None or v.notice is not None for v in views)
        self.missing.visible = spec is None
        self.stop.visible = spec is not None
        self.graph.visible = self.hint.visible = spec is not None
        if spec is None:
            self.summary.text = "not deployed"
            self.table.set_rows([])
            self._show_notices([])
            self._spec = None
            return
        self.summary.text = f"version {spec.version} · {summary.text}"
        types = fleet.types(online_only=False)
        states = graph_states(summary)
        if spec is not self._spec:  # a new version: redraw the graph; otherwise only recolour it
            self._spec = spec
            draft = self.panel.drafts.get(self.dep)
            nodes, edges = graph_props(spec, types, positions=self._positions(), states=states,
                                       placed=placed_agents(draft.tasks, spec) if draft is not None else None)
            self.graph.set_graph(nodes, edges)
            self.graph.set_marks(*mark_props(spec.notes, spec.groups), [])  # comments and groups, read-only
        else:
            self.graph.set_states(states)
        self.table.set_rows(task_rows(fleet, spec, types, views))
        self._show_notices(views)
        self.debug.refresh_ports()

    def _beside_the_graph(self) -> None:
        """The debug sidebar beside the graph (in a row where the graph was), its toggles on the graph's
        outputs, and the status lines under the graph's nodes."""
        slot = self.graph.parent_slot
        assert slot is not None
        index = slot.children.index(self.graph)
        with ui.row().classes("w-full no-wrap items-start gap-3") as row:
            self.graph.move(row)
            self.graph.style("height: 60vh")
            with ui.column().classes("w-96 shrink-0"):
                self.debug = DebugSidebar(self.panel, self.dep, outputs=self._outputs, on_watch=self.graph.set_debug)
        row.move(target_index=index)
        self.graph.on_debug(self.debug.toggle)
        self.statuses = NodeStatuses(self.panel, self.dep, self.graph)

    def _outputs(self) -> list[str]:
        """Every output of the deployed spec, as ``task.port`` (what the debug sidebar can show)."""
        spec = self.panel.fleet.deployments.get(self.dep)
        if spec is None:
            return []
        types = self.panel.fleet.types(online_only=False)
        return [f"{task.id}.{port}" for task in spec.tasks
                for port in catalog_ports(types.get(task.type, {}), task.config)[1]]

    def _positions(self) -> dict[str, tuple[int, int]]:
        draft = self.panel.drafts.get(self.dep)
        return dict(draft.positions) if draft is not None else {}


def create() -> None:
    @ui.page("/deployments/{dep}")
    def running_page(dep: str) -> None:
        panel = current()
        with frame(f"{dep} running", active="/deployments"):
            RunningView(panel, dep)
