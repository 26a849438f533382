"""Deployments: the list (deployed, stopped, drafts) with version and tasks running/total; create,
edit, deploy, stop, delete, and the version history with rollback."""

from __future__ import annotations

from dataclasses import dataclass

from nicegui import ui

from edge.errors import EdgeError, SpecError
from ui.app import Panel, current
from ui.draft import Draft, valid_deployment_id
from ui.frame import frame, transient_dialog
from ui.refusal import notify_refused
from ui.status import summarize

__all__ = ["DeploymentInfo", "create", "deployment_info"]


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
    draft = panel.drafts.get(dep)
    versions = panel.controller.history.versions(dep)
    if versions:
        label = draft.label if draft is not None else panel.controller.history.get(dep, versions[-1]).label
        return DeploymentInfo(dep, label or "", "stopped", f"v{versions[-1]}", "not running")
    n = len(draft.tasks) if draft is not None else 0
    return DeploymentInfo(dep, (draft.label if draft else None) or "", "draft", "never deployed", f"{n} tasks")


STATE_COLOR = {"deployed": "green", "stopped": "grey", "draft": "blue"}


async def deploy_draft(panel: Panel, draft: Draft, *, listed: bool = False) -> list[str]:
    """Deploy a draft, telling the user how it went; the problems that refused it (none: published).
    ``listed``: the caller lists the problems on the page, so the toast only points there."""
    try:
        result = await panel.controller.deploy(draft.to_spec())
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
    panel.changes.note("local", draft.id)
    ui.notify(f"deployed {draft.id} version {result.spec.version}", type="positive")
    return []


def history_dialog(panel: Panel, dep: str) -> None:
    """A dialog with every saved version of ``dep``: show one, or roll back to it."""
    history = panel.controller.history
    current_spec = panel.fleet.deployments.get(dep)
    with transient_dialog() as dialog, ui.card().classes("w-[42rem] max-w-full"):
        ui.label(f"Versions of {dep}").classes("text-h6")
        rows = ui.column().classes("gap-0")
        shown = ui.label().classes("edge-mono w-full max-h-80 overflow-auto")
        shown.visible = False
        versions = history.versions(dep)
        if not versions:
            with rows:
                ui.label("no saved version yet")
        for version in reversed(versions):
            with rows, ui.row().classes("items-center gap-3"):
                ui.label(f"v{version}").classes("font-bold w-12")
                if current_spec is not None and current_spec.version == version:
                    ui.badge("deployed", color="green")

                def show(v: int = version) -> None:
                    shown.text = Draft.from_spec(history.get(dep, v)).to_yaml()
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
                ui.button("roll back", on_click=roll).props("flat dense color=primary").mark(f"rollback-v{version}")
        ui.button("close", on_click=dialog.close).props("flat")
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
            self.stop = ui.button("stop", on_click=self._stop).props("flat dense color=warning").mark(f"stop-{dep}")
            ui.button("history", on_click=lambda: history_dialog(panel, dep)).props("flat dense").mark(
                f"history-{dep}")
            ui.button("delete", on_click=self._confirm_delete).props("flat dense color=negative").mark(
                f"delete-{dep}")

    def show(self, info: DeploymentInfo) -> None:
        self.label.text = info.label
        self.state.text = info.state
        self.state.props(f"color={STATE_COLOR[info.state]}")
        self.version.text = info.version
        self.tasks.text = info.tasks
        self.deploy.visible = info.state != "deployed"
        self.stop.visible = info.state == "deployed"
        self.link.props(f"href=/deployments/{self.dep}" if info.state == "deployed"
                        else f"href=/deployments/{self.dep}/edit")

    async def _deploy(self) -> None:
        draft = self.panel.draft(self.dep)
        if draft is None:
            ui.notify(f"nothing to deploy for {self.dep}", type="warning")
            return
        await deploy_draft(self.panel, draft)

    async def _stop(self) -> None:
        await self.panel.controller.remove(self.dep)
        self.panel.changes.note("local", self.dep)
        ui.notify(f"stopped {self.dep}: its agents stop its tasks (its versions are kept)")

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
        if self.dep in self.panel.fleet.deployments:
            await self.panel.controller.remove(self.dep)
        self.panel.controller.history.forget(self.dep)
        self.panel.drafts.pop(self.dep, None)
        self.panel.changes.note("local", self.dep)
        ui.notify(f"deleted {self.dep}")


def new_deployment_dialog(panel: Panel) -> None:
    with transient_dialog() as dialog, ui.card().classes("w-96"):
        ui.label("New deployment").classes("text-h6")
        name = ui.input("id", validation=lambda v: valid_deployment_id(v or "")).classes("w-full").mark("new-id")
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
    def deployments_page() -> None:
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
                empty.visible = not rows

            refresh()
            ui.timer(1.0, refresh)
