"""The graph editor: a deployment as nodes and wires; add tasks from the catalog, configure them in
forms generated from their config schema, wire outputs to inputs (incompatible wires are refused
with the metadata that disagree), pin tasks to agents, import/export YAML, deploy."""

from __future__ import annotations

import json
from typing import Any

from nicegui import events, ui

from edge.errors import SpecError
from edge.ports import catalog_ports
from edge.topics import MAX_REPLICAS
from ui.app import Panel, current
from ui.catalog_notes import catalog_notes
from ui.config_form import ConfigForm
from ui.conflict import ConflictBanner, confirm_overwrite
from ui.deploy_summary import DeploySummary, mark_modified
from ui.draft import Draft, valid_deployment_id
from ui.edit_tools import EditTools
from ui.frame import deployment_nav, frame, transient_dialog
from ui.graph_view import HEAD, NODE_WIDTH, TOPIC_HEIGHT, GraphView, graph_props, node_box, node_height, placed_agents
from ui.help_panel import HelpPanel
from ui.inject import inject_buttons
from ui.pages.deployments import deploy_draft
from ui.palette import Palette
from ui.refusal import notify_refused
from ui.topic_nodes import is_topic_node, topic_adder, topic_of, topic_panel
from ui.viewport import Viewport

__all__ = ["Editor", "create"]

PLACEMENT = "(placement)"


class Editor:
    """The editor of one draft; every change goes to the draft, then the graph is redrawn from it."""

    def __init__(self, panel: Panel, draft: Draft) -> None:
        self.panel = panel
        self.draft = draft
        self.types = panel.fleet.types(online_only=False)
        self.selected: dict[str, Any] | None = None
        self.form: ConfigForm | None = None
        self._seen = panel.changes.revision
        self.viewport = Viewport()
        deployment_nav(draft.id, "Editor")
        with ui.row().classes("items-center gap-2 w-full"):
            self.label = ui.input("deployment label", value=draft.label or "",
                                  on_change=lambda e: self.set_name(e.value))
            self.label.props("dense").classes("w-64").mark("deployment-label")
            self.deployed = ui.label().classes("text-caption")
            self.deploy_summary = DeploySummary()
            ui.space()
            ui.button("deploy", icon="rocket_launch", on_click=self.deploy).props("color=positive").mark("deploy")
            ui.button("check", on_click=self.check).props("flat").mark("check")
            ui.button("export YAML", on_click=self.export).props("flat").mark("export")
            ui.button("import YAML", on_click=self.import_dialog).props("flat").mark("open-import")
            ui.button("revert", on_click=self.revert).props("flat").mark("revert").tooltip(
                "drop the changes: back to what is deployed")
        with ui.row().classes("items-center gap-1"):
            self.tools = EditTools(self)  # undo, redo, copy, paste, comments (ui/edit_tools.py)
        with ui.row().classes("w-full no-wrap items-stretch gap-3"):
            with ui.column().classes("w-96 shrink-0 gap-2"):
                ui.label("Add a task").classes("text-subtitle2")
                ui.label("Drag a type onto the canvas, or select it and press Enter").classes(
                    "text-caption text-grey-7")
                self.picker = Palette(on_add=self.add_task, on_select=self.type_help)
                self.help = HelpPanel()
                ui.label("Add an MQTT topic").classes("text-subtitle2")
                topic_adder(self.draft, self.topic_added)
                ui.separator()
                self.side = ui.column().classes("w-full gap-1")
            with ui.column().classes("grow gap-1"):
                self.graph = GraphView(editable=True).classes("w-full").style("height: 68vh").mark("graph")
                self.graph.on_connect(self.connect).on_select(self.select).on_move(self.moved)
                self.graph.on_view(self.viewport.update)
                self.graph.on_select_many(self.tools.select_many).on_move_many(self.tools.move_many)
                self.graph.on_note_move(self.tools.move_note).on_key(self.tools.key)
                self.graph.on_drop(lambda name, x, y: self.add_task(name, at=(x, y)))
        self.conflict = ConflictBanner(panel, draft, reload=self.revert, deploy_over=self.deploy)
        self.conflict.card.move(target_index=2)  # under the header: seen before the graph
        self.problems = ui.column().classes("w-full gap-0").mark("problems")
        self.dangling = ui.column().classes("w-full gap-0").mark("dangling")
        self._dangling: list[str] = []
        self.refresh_types()
        self.redraw()
        self.show_selection()
        ui.timer(2.0, self.poll)

    # -- drawing --------------------------------------------------------------------------------
    def redraw(self) -> None:
        try:
            spec = self.draft.to_spec()
        except SpecError as exc:
            self.show_problems("the draft is not a valid spec", exc.errors or [str(exc)])
            self.deploy_summary.not_valid()
            return
        deployed = self.panel.fleet.deployments.get(self.draft.id)
        nodes, edges = graph_props(spec, self.types, positions=self.draft.positions, topics=self.draft.topics,
                                   placed=placed_agents(self.draft.tasks, deployed))
        mark_modified(nodes, self.deploy_summary.update(deployed, spec))  # changed since the last deploy
        self.graph.set_graph(nodes, edges, self.selected)
        self.tools.draw()
        self.show_dangling()
        self.deployed.text = f"deployed: version {deployed.version}" if deployed else "not deployed"
        self.conflict.update()

    def refresh_types(self) -> None:
        self.types = self.panel.fleet.types(online_only=False)
        self.picker.set_types(self.types)
        self.picker.set_notes(catalog_notes(self.panel.fleet))

    def poll(self) -> None:
        if self.panel.changes.since(self._seen, "agent", "deployment"):
            self._seen = self.panel.changes.revision
            self.refresh_types()
            self.redraw()

    def show_problems(self, title: str, problems: list[str]) -> None:
        self.problems.clear()
        with self.problems:
            if problems:
                ui.label(title).classes("text-negative font-bold")
                for problem in problems:
                    ui.label(problem).classes("text-negative edge-mono")

    def show_dangling(self) -> None:
        """The wires to ports their tasks no longer have (a config change dropped them), under the graph."""
        lines = self.draft.dangling(self.types)
        if lines == self._dangling:
            return
        self._dangling = lines
        self.dangling.clear()
        with self.dangling:
            for line in lines:
                ui.label(f"warning: {line}").classes("text-warning edge-mono")

    # -- selection and the side panel -------------------------------------------------------------------
    def select(self, kind: str | None, ident: str | None) -> None:
        self.selected = {"kind": kind, "id": ident} if kind else None
        self.graph.props["selected"] = self.selected  # the browser knows already: no need to send
        self.tools.multi = []
        self.graph.props["multi"] = []
        self.show_selection()

    def show_selection(self) -> None:
        self.side.clear()
        self.form = None
        with self.side:
            if self.selected is None and self.tools.multi:
                self.tools.multi_panel()
                return
            if self.selected is not None and self.selected["kind"] in ("note", "group"):
                kind, ident = self.selected["kind"], str(self.selected["id"])
                self.tools.note_panel(ident) if kind == "note" else self.tools.group_panel(ident)
                return
            if self.selected is None:
                ui.label("Click a node to configure it, a wire to delete it. Connect an output to an input by "
                         "clicking one then the other. Drag the background to pan, the wheel zooms; shift-click "
                         "or Shift and drag selects several. Ctrl+Z undoes, Ctrl+C / Ctrl+V copy and paste.").classes(
                    "text-caption text-grey-7")
                if self.picker.value:  # back to the palette's type
                    self.type_help(self.picker.value)
                else:
                    self.help.clear()
                return
            if self.selected["kind"] == "edge":
                key = str(self.selected["id"])
                ui.label(f"wire {key.replace('->', ' → ')}").classes("edge-mono")
                ui.button("delete wire", icon="delete", on_click=lambda: self.disconnect(key)).props(
                    "flat color=negative").mark("delete-wire")
                return
            if is_topic_node(self.selected["id"]):
                before = self.draft.snapshot()  # its remove button edits the draft: one undo step

                def removed() -> None:
                    self.draft.record(before)
                    self.tools.buttons()
                    self.deselect()

                topic_panel(self.draft, topic_of(str(self.selected["id"])), removed)
                return
            try:
                task = self.draft.task(str(self.selected["id"]))
            except KeyError:
                self.selected = None
                return
            entry = self.types.get(task.type)
            ui.label(f"task {task.id}").classes("text-subtitle2")
            unknown = " (not in any agent's catalog)"
            if not entry and any(a.catalog_note is not None for a in self.panel.fleet.agents.values()):
                unknown = " (not in any agent's catalog received: some are pending or refused)"
            ui.label(f"type {task.type}" + ("" if entry else unknown)).classes("text-caption")
            ui.input("task label", value=task.label or "",
                     on_change=lambda e: self.set_label(task.id, e.value)).props("dense").classes("w-full").mark(
                "task-label")
            agents = [a.id for a in sorted(self.panel.fleet.agents.values(), key=lambda a: (not a.online, a.id))
                      if a.offers(task.type)]
            if task.agent and task.agent not in agents:
                agents.append(task.agent)
            ui.select([PLACEMENT, *agents], label="run on", value=task.agent or PLACEMENT,
                      on_change=lambda e: self.pin(task.id, e.value)).classes("w-full").mark("run-on")
            if (entry or {}).get("stateless") or task.replicas > 1:  # docs/deployments.md#replicas
                ui.number("replicas", value=task.replicas, min=1, max=MAX_REPLICAS, precision=0,
                          on_change=lambda e: self.set_replicas(task.id, e.value)).props("dense").classes(
                    "w-full").mark("replicas")
            ui.label("config").classes("text-subtitle2")
            if entry is None:
                ui.input("config (JSON)", value=json.dumps(task.config),
                         on_change=lambda e: self.raw_config(task.id, e.value)).classes("w-full").mark("config-json")
            else:
                self.form = ConfigForm(entry.get("config_schema"), task.config,
                                       on_change=lambda config: self.set_config(task.id, config))
            self.help.show_task(task.id, task.type, entry, task.config)
            inject_buttons(self.panel, self.draft.id, task.id)
            ui.button("remove task", icon="delete", on_click=lambda: self.remove(task.id)).props(
                "flat color=negative").mark("remove-task")

    # -- edits ------------------------------------------------------------------------------------------
    def type_help(self, type_name: str) -> None:
        self.help.show_type(type_name, self.types.get(type_name))

    def add_task(self, type_name: str, *, at: tuple[int, int] | None = None) -> None:
        """Add a task of ``type_name``: ``at`` a point of the graph (dropped there), else where the user looks."""
        entry = self.types.get(type_name)
        if entry is None or not entry.get("available", True):  # a drop can name anything: only what is offered
            ui.notify(f"no agent offers the task type {type_name!r}", type="warning")
            return
        with self.tools.step():
            task = self.draft.add_task(type_name)
        inputs, outputs = catalog_ports(self.types.get(type_name, {}), task.config)
        height = node_height(len(inputs), len(outputs))
        if at is not None:  # the node's head centred under the mouse, as it was dropped
            spot: tuple[int, int] | None = (at[0] - NODE_WIDTH // 2, at[1] - HEAD // 2)
        else:
            spot = self.viewport.spot([node_box(n) for n in self.graph.nodes], height=height)
        if spot is not None:  # where the user is looking (else the layout's next free place)
            self.draft.positions[task.id] = spot  # (undo takes the task away: its place needs no step)
        self.selected = {"kind": "node", "id": task.id}
        self.redraw()
        self.show_selection()

    def remove(self, task_id: str) -> None:
        with self.tools.step():
            self.draft.remove_task(task_id)
        self.deselect()

    def deselect(self) -> None:
        self.selected = None
        self.redraw()
        self.show_selection()

    def topic_added(self, topic: str) -> None:
        node = f"topic:{topic}"
        spot = self.viewport.spot([node_box(n) for n in self.graph.nodes if n["id"] != node], height=TOPIC_HEIGHT)
        if spot is not None and node not in self.draft.positions:
            with self.tools.step():
                self.draft.positions[node] = spot
        self.selected = {"kind": "node", "id": node}
        self.redraw()
        self.show_selection()

    def connect(self, source: str, target: str) -> None:
        with self.tools.step():
            problems = self.draft.connect(source, target, self.types)
        if problems:
            notify_refused(f"cannot connect {source} → {target}", problems)
            self.show_problems(f"refused: {source} → {target}", problems)
            return
        self.show_problems("", [])
        self.redraw()

    def disconnect(self, key: str) -> None:
        with self.tools.step():
            self.draft.disconnect(key)
        self.selected = None
        self.redraw()
        self.show_selection()

    def moved(self, task_id: str, x: int, y: int) -> None:
        with self.tools.step():
            self.draft.positions[task_id] = (x, y)
        for node in self.graph.nodes:  # the browser moved it already: keep our copy in step, send nothing
            if node["id"] == task_id:
                node["x"], node["y"] = x, y

    def pin(self, task_id: str, agent: str | None) -> None:
        with self.tools.step():
            self.draft.pin(task_id, None if agent in (None, PLACEMENT) else agent)
        self.redraw()

    def set_replicas(self, task_id: str, value: object) -> None:
        """Instances of a stateless task; what is no whole number from 1 to MAX_REPLICAS is ignored."""
        if isinstance(value, int | float) and not isinstance(value, bool) and value == int(value) \
                and 1 <= value <= MAX_REPLICAS:
            with self.tools.step(f"replicas:{task_id}"):
                self.draft.set_replicas(task_id, int(value))
            self.redraw()

    def set_label(self, task_id: str, label: str | None) -> None:
        with self.tools.step(f"label:{task_id}"):
            self.draft.set_label(task_id, (label or "").strip() or None)
        self.redraw()

    def set_name(self, label: str | None) -> None:
        with self.tools.step("label"):
            self.draft.label = (label or "").strip() or None

    def set_config(self, task_id: str, config: dict[str, Any]) -> None:
        with self.tools.step(f"config:{task_id}"):  # typed key by key: one undo step
            self.draft.set_config(task_id, config)
        self.redraw()  # its ports may follow its config
        task = self.draft.task(task_id)  # and so does its help
        self.help.show_task(task_id, task.type, self.types.get(task.type), task.config)

    def raw_config(self, task_id: str, text: str) -> None:
        try:
            config = json.loads(text or "{}")
        except ValueError as exc:
            ui.notify(f"not valid JSON: {exc}", type="negative")
            return
        if not isinstance(config, dict):
            ui.notify("a config is a JSON object", type="negative")
            return
        with self.tools.step(f"config:{task_id}"):
            self.draft.set_config(task_id, config)
        self.redraw()

    # -- whole-draft actions ----------------------------------------------------------------------------
    async def check(self) -> list[str]:
        """Every problem at once: the open form's, then the controller's validation (edge.validation)."""
        problems = [f"{name}: {message}" for name, message in self.form.errors.items()] if self.form else []
        report = await self.panel.controller.validate(self.draft.to_data())
        blocking = bool(problems or report.errors)
        problems += report.lines()
        if problems:
            self.show_problems("problems" if blocking else "warnings", problems)
        else:
            self.show_problems("", [])
            ui.notify("no problems found", type="positive")
        return problems

    async def deploy(self) -> None:
        if self.form is not None and self.form.errors:
            self.show_problems("fix the config first", [f"{n}: {m}" for n, m in self.form.errors.items()])
            ui.notify("the config has errors: not deployed", type="negative")
            return
        deployed = self.panel.fleet.deployments.get(self.draft.id)
        if deployed is not None and self.draft.stale(deployed):  # deployed elsewhere: only over it knowingly
            confirm_overwrite(self.draft, deployed, self.deploy_over)
            return
        await self.deploy_over(None)

    async def deploy_over(self, replaces: int | None) -> None:
        """Validate and deploy the draft; ``replaces``: the version deployed elsewhere the user agreed to replace."""
        report = await self.panel.controller.validate(self.draft.to_data())
        if not report.ok:
            self.show_problems("not deployed", report.lines())
            notify_refused(f"{self.draft.id} was not deployed", list(report.errors))
            return
        problems = await deploy_draft(self.panel, self.draft, report=report, replaces=replaces, listed=True)
        self.show_problems("not deployed" if problems else "deployed, with warnings",
                           problems or report.lines())
        if not problems:
            spec = self.panel.fleet.deployments.get(self.draft.id)
            with self.problems:
                if spec is not None:
                    ui.label("placement: " + ", ".join(f"{t.id} on {t.agent}" for t in spec.tasks)).classes(
                        "text-caption").mark("placement")
                ui.link("see it run", f"/deployments/{self.draft.id}").mark("see-it-run")
            self.redraw()

    def export(self) -> None:
        try:
            text = self.draft.to_yaml()
        except SpecError as exc:
            self.show_problems("cannot export", exc.errors or [str(exc)])
            return
        ui.download.content(text.encode(), f"{self.draft.id}.yaml", "application/yaml")

    def import_text(self, text: str) -> bool:
        try:
            loaded = Draft.from_yaml(text)
        except SpecError as exc:
            self.show_problems("cannot import that spec", exc.errors or [str(exc)])
            ui.notify("not imported: the spec has problems", type="negative")
            return False
        renamed = loaded.id != self.draft.id
        with self.tools.step():  # one undo step brings the graph before the import back
            self.draft.label, self.draft.tasks, self.draft.edges = loaded.label, loaded.tasks, loaded.edges
            self.draft.notes, self.draft.groups = loaded.notes, loaded.groups
            self.draft.dashboards = loaded.dashboards
            self.draft.positions.clear()
            self.draft.topics.clear()
        self.label.value = self.draft.label or ""
        self.selected = None
        self.redraw()
        self.show_selection()
        self.show_problems("", [])
        note = f" (the file's id {loaded.id} is replaced by {self.draft.id})" if renamed else ""
        ui.notify(f"imported {len(loaded.tasks)} tasks and {len(loaded.edges)} wires{note}", type="positive")
        return True

    def import_dialog(self) -> None:
        with transient_dialog() as dialog, ui.card().classes("w-[40rem] max-w-full"):
            ui.label("Import a spec (YAML or JSON)").classes("text-h6")
            ui.label("It replaces the graph in the editor; nothing is deployed until you deploy.").classes(
                "text-caption")

            async def uploaded(e: events.UploadEventArguments) -> None:
                if self.import_text(await e.file.text()):
                    dialog.close()

            ui.upload(label="upload a file", auto_upload=True, max_files=1, on_upload=uploaded).props(
                "accept=.yaml,.yml,.json flat bordered").classes("w-full").mark("import")
            text = ui.textarea("or paste it here", value=self.draft.to_yaml()).classes("w-full edge-mono").props(
                "rows=14").mark("yaml")

            def apply() -> None:
                if self.import_text(text.value or ""):
                    dialog.close()

            with ui.row():
                ui.button("import", on_click=apply).mark("import-yaml")
                ui.button("cancel", on_click=dialog.close).props("flat")
        dialog.open()

    def revert(self) -> None:
        self.panel.drafts.pop(self.draft.id, None)
        ui.navigate.reload()


def create() -> None:
    @ui.page("/deployments/{dep}/edit")
    def editor_page(dep: str) -> None:
        panel = current()
        with frame(f"Edit {dep}", active="/deployments"):
            problem = valid_deployment_id(dep)
            if problem is not None:
                ui.label(f"{dep!r} is not a deployment id: {problem}").classes("text-negative")
                return
            draft = panel.draft(dep)
            if draft is None:  # neither deployed, nor drafted, nor saved: a typo, or a link to create it
                not_found(dep)
                return
            Editor(panel, draft)


def not_found(dep: str) -> None:
    ui.label(f"There is no deployment {dep}").classes("text-h5").mark("not-found")
    ui.label("Nothing of that id is deployed, drafted or saved here.").classes("text-grey-7")
    with ui.row().classes("gap-4"):
        ui.link(f"create a deployment named {dep}", f"/deployments?new={dep}").mark("create-it")
        ui.link("see all deployments", "/deployments")
