"""Deployments: the list (deployed, stopped, drafts) with version and tasks running/total; create,
edit, deploy, stop and delete (both confirmed), and the version history: when and from where each
version was deployed, its changes since the one before, rollback.

A deployment whose editor draft differs from what runs (or, stopped, from its last version) says
so under its line, with what Deploy would change: the count line of :mod:`ui.deploy_summary`
(``Changes: 1 added, 2 restarted``) and, on click, its summary task by task and line by line."""

from __future__ import annotations

from dataclasses import dataclass

from nicegui import ui

from edge.errors import EdgeError, SpecError
from edge.graph import DeploymentSpec
from edge.validation import Report
from ui.app import Panel, current
from ui.deploy_plan import plan_deploy
from ui.deploy_summary import DeploySummary
from ui.draft import Draft, Snapshot, valid_deployment_id
from ui.frame import frame, transient_dialog
from ui.refusal import notify_refused
from ui.status import summarize
from ui.versions import diff_specs, origin_text

__all__ = ["DeploymentInfo", "confirm_stop", "create", "deployment_info"]

MAX_DIFF_LINES = 30  # of one version's changes in the history


@dataclass(frozen=True, slots=True)
class DeploymentInfo:
    id: str
    label: str
    state: str  # deployed, stopped or draft
    version: str
    tasks: str


def deployment_info(panel: Panel, dep: str) -> DeploymentInfo:
    spec = panel.fleet.deployments.get(dep)
    if spec is not None:
        summary = summarize(panel.fleet, dep)
        return DeploymentInfo(dep, spec.label or "", "deployed", f"v{spec.version}", summary.text)
    rejected = panel.fleet.rejected.get(dep)
    if rejected is not None:  # its retained spec is refused: agents keep what they had of it, if anything
        return DeploymentInfo(dep, "", "refused", "-", f"spec refused: {rejected}")
    draft = panel.drafts.get(dep)
    versions = panel.controller.history.versions(dep)
    if versions:
        label = draft.label if draft is not None else panel.controller.history.get(dep, versions[-1]).label
        return DeploymentInfo(dep, label or "", "stopped", f"v{versions[-1]}", "not running")
    n = len(draft.tasks) if draft is not None else 0
    return DeploymentInfo(dep, (draft.label if draft else None) or "", "draft", "never deployed", f"{n} tasks")


STATE_COLOR = {"deployed": "green", "stopped": "grey", "draft": "blue", "refused": "red"}


async def deploy_draft(panel: Panel, draft: Draft, *, report: Report | None = None,
                       replaces: int | None = None, listed: bool = False) -> list[str]:
    """Deploy a draft, telling the user how it went; the problems that refused it (none: published).

    A draft not based on what is deployed (deployed elsewhere meanwhile) is deployed only over the
    version the user confirmed replacing (``replaces``): never silently over another change.
    ``report``: the controller's validation of this very draft, if it was just run (saves asking again).
    ``listed``: the caller lists the problems on the page, so the toast only points there.
    """
    deployed = panel.fleet.deployments.get(draft.id)
    if deployed is not None and draft.stale(deployed) and replaces != deployed.version:
        based = f"version {draft.base.version}" if draft.base is not None else "no deployed version"
        problem = (f"version {deployed.version} of {draft.id} was {origin_text(deployed)}; the draft is based on "
                   f"{based}: open the editor to see what differs, then reload it or deploy over it")
        ui.notify(f"{draft.id} was not deployed: {problem}", type="warning", multi_line=True, timeout=10000)
        return [problem]
    try:
        result = await panel.controller.deploy(draft.to_spec(), report=report)
    except SpecError as exc:
        errors = exc.errors or [str(exc)]
        if listed:
            notify_refused(f"{draft.id} was not deployed", errors)
        else:
            ui.notify(f"{draft.id} was not deployed: " + "; ".join(errors), type="negative", multi_line=True,
                      timeout=10000)
        return errors
    except EdgeError as exc:
        if listed:
            notify_refused(f"{draft.id} was not deployed", [str(exc)])
        else:
            ui.notify(f"{draft.id} was not deployed: {exc}", type="negative", multi_line=True)
        return [str(exc)]
    draft.version = result.spec.version
    draft.base = result.spec
    panel.changes.note("local", draft.id)
    ui.notify(f"deployed {draft.id} version {result.spec.version}", type="positive")
    return []


def history_dialog(panel: Panel, dep: str) -> None:
    """A dialog with every saved version of ``dep``, newest first: when and from where it was deployed,
    what it changed since the version before; show one, or roll back to it (not to the one deployed)."""
    history = panel.controller.history
    current_spec = panel.fleet.deployments.get(dep)
    with transient_dialog() as dialog, ui.card().classes("w-[46rem] max-w-full"):
        ui.label(f"Versions of {dep}").classes("text-h6")
        rows = ui.column().classes("gap-2 w-full max-h-[60vh] overflow-auto")
        shown = ui.label().classes("edge-mono w-full max-h-80 overflow-auto whitespace-pre").mark("history-yaml")
        shown.visible = False
        versions = history.versions(dep)
        if not versions:
            with rows:
                ui.label("no saved version yet")
        for version in reversed(versions):
            try:
                spec = history.get(dep, version)
            except (SpecError, KeyError, OSError) as exc:  # a damaged file: say so, list the others
                with rows:
                    ui.label(f"v{version}: unreadable ({exc})").classes("text-negative")
                continue
            current = current_spec is not None and current_spec.version == version
            with rows, ui.column().classes("gap-0 w-full").mark(f"version-v{version}"):
                with ui.row().classes("items-center gap-3"):
                    ui.label(f"v{version}").classes("font-bold w-12")
                    if current:
                        ui.badge("deployed", color="green").mark("current-version")
                    ui.label(origin_text(spec)).classes("text-caption").mark(f"origin-v{version}")

                    def show(s: DeploymentSpec = spec) -> None:
                        shown.text = f"# v{s.version}, {origin_text(s)}\n{Draft.from_spec(s).to_yaml()}"
                        shown.visible = True

                    async def roll(v: int = version) -> None:
                        try:
                            result = await panel.controller.rollback(dep, v)
                        except (SpecError, EdgeError) as exc:
                            errors = exc.errors if isinstance(exc, SpecError) else []
                            ui.notify(f"cannot roll back: {'; '.join(errors or [str(exc)])}", type="negative",
                                      multi_line=True)
                            return
                        panel.drafts.pop(dep, None)  # the editor shows what runs now
                        panel.changes.note("local", dep)
                        ui.notify(f"rolled back {dep}: version {result.spec.version} is the content of v{v}",
                                  type="positive")
                        dialog.close()

                    ui.button("show", on_click=show).props("flat dense").mark(f"show-v{version}")
                    if not current:  # rolling back to what runs would only publish a copy of it
                        ui.button("roll back", on_click=roll).props("flat dense color=primary").mark(
                            f"rollback-v{version}")
                version_changes(panel, spec)
        ui.button("close", on_click=dialog.close).props("flat")
    dialog.open()


def version_changes(panel: Panel, spec: DeploymentSpec) -> None:
    """What ``spec`` changed since the saved version before it, a line each."""
    history = panel.controller.history
    before = history.previous(spec.id, spec.version)
    if before is None:
        ui.label("the first saved version").classes("text-caption text-grey-7 pl-14")
        return
    try:
        changes = diff_specs(history.get(spec.id, before), spec)
    except (SpecError, KeyError, OSError):
        changes = [f"(v{before} is unreadable)"]
    with ui.column().classes("gap-0 pl-14 edge-mono text-caption").mark(f"changes-v{spec.version}"):
        ui.label(f"changes since v{before}:" if changes else f"same tasks and wires as v{before}")
        for line in changes[:MAX_DIFF_LINES]:
            ui.label(line)
        if len(changes) > MAX_DIFF_LINES:
            ui.label(f"… and {len(changes) - MAX_DIFF_LINES} more")


def confirm_stop(panel: Panel, dep: str) -> None:
    """Ask, as Delete does, before stopping a deployment's tasks."""
    with transient_dialog() as dialog, ui.card():
        ui.label(f"Stop {dep}? Its agents stop its tasks; its versions are kept, to deploy it again.")

        async def stop() -> None:
            dialog.close()
            await panel.controller.remove(dep)
            panel.changes.note("local", dep)
            ui.notify(f"stopped {dep}: its agents stop its tasks (its versions are kept)")

        with ui.row():
            ui.button("stop", on_click=stop).props("color=warning").mark("confirm-stop")
            ui.button("cancel", on_click=dialog.close).props("flat").mark("cancel-stop")
    dialog.open()


class DeploymentRow:
    """One deployment's line; :meth:`show` changes only the texts that differ."""

    def __init__(self, panel: Panel, dep: str) -> None:
        self.panel = panel
        self.dep = dep
        with ui.card().classes("w-full py-2").mark(f"deployment-{dep}") as self.card, \
                ui.row().classes("items-center gap-3 w-full"):
            self.link = ui.link(dep, f"/deployments/{dep}").classes("text-subtitle1 font-bold w-40")
            self.label = ui.label().classes("w-48 text-grey-8")
            self.state = ui.badge()
            self.version = ui.label().classes("w-28")
            self.tasks = ui.label().classes("w-48").mark(f"tasks-{dep}")
            ui.space()
            ui.button("edit", on_click=lambda: ui.navigate.to(f"/deployments/{dep}/edit")).props(
                "flat dense").mark(f"edit-{dep}")
            self.dashboard = ui.button("dashboard", on_click=lambda: ui.navigate.to(
                f"/deployments/{dep}/dashboard")).props("flat dense").mark(f"dashboard-{dep}")
            self.deploy = ui.button("deploy", on_click=self._deploy).props("flat dense color=positive").mark(
                f"deploy-{dep}")
            self.stop = ui.button("stop", on_click=lambda: confirm_stop(panel, dep)).props(
                "flat dense color=warning").mark(f"stop-{dep}")
            ui.button("history", on_click=lambda: history_dialog(panel, dep)).props("flat dense").mark(
                f"history-{dep}")
            ui.button("delete", on_click=self._confirm_delete).props("flat dense color=negative").mark(
                f"delete-{dep}")
        with self.card, ui.row().classes("items-center gap-3 w-full pl-2") as self.pending:
            self.pending_note = ui.badge(color="orange").props("outline").mark(f"undeployed-{dep}")
            self.summary = DeploySummary()
            self.summary.button.mark(f"changes-{dep}")
            self.summary.body.mark(f"changes-list-{dep}")
        self.pending.visible = False
        self._state = ""
        self._seen: tuple[DeploymentSpec | None, Draft | None, Snapshot | None] | None = None

    def show_changes(self, deployed: DeploymentSpec | None, draft: Draft | None) -> None:
        """Under the line, when the draft is not what runs: that it has undeployed changes and what Deploy
        would change. Redrawn only when the deployed spec or the draft changed (it is called every tick)."""
        snapshot = draft.snapshot() if draft is not None else None
        seen = self._seen
        if seen is not None and seen[0] is deployed and seen[1] is draft and seen[2] == snapshot:
            return
        self._seen = (deployed, draft, snapshot)
        note = self._pending(deployed, draft)
        self.pending.visible = note is not None
        self.pending_note.text = note or ""
        self._buttons()

    def _pending(self, deployed: DeploymentSpec | None, draft: Draft | None) -> str | None:
        """The note of a draft Deploy would change something with (its summary drawn); None: nothing to say."""
        if draft is None:
            return None
        try:
            spec = draft.to_spec()
        except SpecError:
            self.summary.not_valid()
            return "undeployed changes: the draft is not a valid spec (open the editor)"
        if deployed is not None:
            if not self.summary.update(deployed, spec).changes_anything:
                return None
            if draft.stale(deployed):
                if draft.base is not None and not plan_deploy(draft.base, spec).changes_anything:
                    return None  # an unedited copy of an older version: no change of the user's to deploy
                based = f"v{draft.base.version}" if draft.base is not None else "no deployed version"
                return f"undeployed changes, based on {based}: v{deployed.version} runs now"
            return "undeployed changes"
        if draft.base is None:  # never deployed: Deploy starts it
            self.summary.update(None, spec)
            return "not deployed yet" if spec.tasks else None
        # stopped, its draft the last version (tasks left to placement compared where they were placed):
        # the line says so already
        if not plan_deploy(draft.base, spec).changes_anything:
            return None
        self.summary.update(None, spec)
        return f"changed since v{draft.base.version}"

    def _buttons(self) -> None:
        """Deploy where it would change something (a deployed one with undeployed changes too), Stop where it runs."""
        self.deploy.visible = self._state != "deployed" or self.pending.visible
        self.stop.visible = self._state == "deployed"

    def show(self, info: DeploymentInfo) -> None:
        self.label.text = info.label
        self.state.text = info.state
        self.state.props(f"color={STATE_COLOR[info.state]}")
        self.version.text = info.version
        self.tasks.text = info.tasks
        self._state = info.state
        self._buttons()
        self.link.props(f"href=/deployments/{self.dep}" if info.state == "deployed"
                        else f"href=/deployments/{self.dep}/edit")

    async def _deploy(self) -> None:
        draft = self.panel.draft(self.dep)
        if draft is None:
            ui.notify(f"nothing to deploy for {self.dep}", type="warning")
            return
        await deploy_draft(self.panel, draft)

    def _confirm_delete(self) -> None:
        with transient_dialog() as dialog, ui.card():
            ui.label(f"Delete {self.dep}? It is stopped if it runs, and its draft and saved versions are deleted.")
            with ui.row():
                ui.button("delete", on_click=lambda: self._delete(dialog)).props("color=negative").mark(
                    "confirm-delete")
                ui.button("cancel", on_click=dialog.close).props("flat")
        dialog.open()

    async def _delete(self, dialog: ui.dialog) -> None:
        dialog.close()
        if self.dep in self.panel.fleet.deployments or self.dep in self.panel.fleet.rejected:
            await self.panel.controller.remove(self.dep)
        self.panel.controller.history.forget(self.dep)
        self.panel.drafts.pop(self.dep, None)
        self.panel.changes.note("local", self.dep)
        ui.notify(f"deleted {self.dep}")


def new_deployment_dialog(panel: Panel, dep: str = "") -> None:
    with transient_dialog() as dialog, ui.card().classes("w-96"):
        ui.label("New deployment").classes("text-h6")
        name = ui.input("id", value=dep, validation=lambda v: valid_deployment_id(v or "")).classes("w-full").props(
            "autofocus").mark("new-id")  # the dialog focuses it as it opens: type the id at once
        label = ui.input("label (optional)").classes("w-full").mark("new-label")

        def create_draft() -> None:
            dep = (name.value or "").strip()
            problem = valid_deployment_id(dep)
            if problem is None and dep in panel.known_deployments():
                problem = f"{dep} exists already: edit it instead"
            if problem is not None:
                ui.notify(problem, type="negative")
                return
            panel.drafts[dep] = Draft(id=dep, label=(label.value or "").strip() or None)
            panel.changes.note("local", dep)
            dialog.close()
            ui.navigate.to(f"/deployments/{dep}/edit")

        with ui.row():
            ui.button("create", on_click=create_draft).mark("create")
            ui.button("cancel", on_click=dialog.close).props("flat")
    dialog.open()


def create() -> None:
    @ui.page("/deployments")
    def deployments_page(new: str | None = None) -> None:
        panel = current()
        with frame("Deployments", active="/deployments"):
            with ui.row().classes("items-center w-full gap-4"):
                ui.label("Deployments").classes("text-h5")
                ui.space()
                ui.button("new deployment", icon="add", on_click=lambda: new_deployment_dialog(panel)).mark("new")
            container = ui.column().classes("w-full gap-2")
            with container:
                empty = ui.label("no deployment yet: create one").classes("text-grey-7")
            rows: dict[str, DeploymentRow] = {}
            shown: dict[str, DeploymentInfo] = {}
            seen = -1

            def refresh() -> None:
                nonlocal seen
                # a draft changes with no fleet change (edited in another tab): looked at every tick
                for dep, row in rows.items():
                    row.show_changes(panel.fleet.deployments.get(dep), panel.drafts.get(dep))
                if seen >= 0 and not panel.changes.since(seen):
                    return
                seen = panel.changes.revision
                names = panel.known_deployments()
                for dep in [d for d in rows if d not in names]:
                    rows.pop(dep).card.delete()
                    shown.pop(dep, None)
                for i, dep in enumerate(names):
                    if dep not in rows:
                        with container:
                            rows[dep] = DeploymentRow(panel, dep)
                        rows[dep].card.move(target_index=i + 1)
                    info = deployment_info(panel, dep)
                    if shown.get(dep) != info:
                        shown[dep] = info
                        rows[dep].show(info)
                    rows[dep].show_changes(panel.fleet.deployments.get(dep), panel.drafts.get(dep))
                empty.visible = not rows

            refresh()
            ui.timer(1.0, refresh)
            if new is not None:  # ?new=ID, from the editor's "no such deployment" page
                new_deployment_dialog(panel, new[:64])
