"""The editor's answer to a version deployed elsewhere while a draft is edited.

When what is deployed is not the spec the draft is based on (:meth:`ui.draft.Draft.stale`: the
CLI, another panel or a rollback published a newer version), :class:`ConflictBanner` says so at
once and while the editor is open: which version, when and from where, what it changed since the
draft's base, and what deploying the draft would change in it. The user reloads the deployed
version, or deploys over it after :func:`confirm_overwrite` named the version it replaces.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from nicegui import ui

from edge.errors import SpecError
from edge.graph import DeploymentSpec, Origin
from ui.app import Panel
from ui.draft import Draft
from ui.frame import transient_dialog
from ui.versions import diff_specs, origin_text

__all__ = ["ConflictBanner", "confirm_overwrite"]

MAX_LINES = 30  # lines of one diff shown; the rest is counted


def diff_lines(lines: list[str], *, marker: str) -> None:
    with ui.column().classes("gap-0 edge-mono text-caption").mark(marker):
        for line in lines[:MAX_LINES]:
            ui.label(line)
        if len(lines) > MAX_LINES:
            ui.label(f"… and {len(lines) - MAX_LINES} more")


def _draft_changes(draft: Draft, deployed: DeploymentSpec) -> list[str] | None:
    """What deploying the draft would change in ``deployed``; None when the draft is not a valid spec."""
    try:
        return diff_specs(deployed, draft.to_spec())
    except SpecError:
        return None


def _or_why(lines: list[str] | None) -> list[str]:
    if lines is None:
        return ["(the draft is not a valid spec yet)"]
    return lines or ["nothing: your draft runs the same"]


class ConflictBanner:
    """Shown above the graph while the draft is stale; :meth:`update` after every fleet change."""

    def __init__(self, panel: Panel, draft: Draft, *, reload: Callable[[], None],
                 deploy_over: Callable[[], Awaitable[None]]) -> None:
        self.panel = panel
        self.draft = draft
        self._reload = reload
        self._deploy_over = deploy_over
        self._shown: tuple[int, Origin | None, int | None] | None = None
        self.card = ui.card().classes("w-full bg-orange-1 gap-1").mark("stale-draft")
        self.card.visible = False
        self.update()

    def update(self) -> None:
        deployed = self.panel.fleet.deployments.get(self.draft.id)
        if deployed is None or not self.draft.stale(deployed):
            self._shown = None
            self.card.visible = False
            return
        base = self.draft.base
        key = (deployed.version, deployed.deployed, base.version if base else None)
        if key == self._shown:
            return
        self._shown = key
        self.card.clear()
        self.card.visible = True
        with self.card:
            based = f"version {base.version}" if base is not None else "nothing deployed (a new draft)"
            ui.label(f"Version {deployed.version} of {deployed.id} was {origin_text(deployed)}, while your draft "
                     f"is based on {based}.").classes("font-bold text-orange-10").mark("stale-title")
            ui.label(f"Deploy would replace version {deployed.version} and undo its changes: reload it to edit "
                     "what runs now, or deploy over it knowingly (Deploy asks first).").classes("text-caption")
            if base is not None:
                ui.label(f"What version {deployed.version} changed since version {base.version}:").classes(
                    "text-subtitle2")
                diff_lines(diff_specs(base, deployed) or ["nothing the tasks run: only the version"],
                           marker="stale-theirs")
            mine = _draft_changes(self.draft, deployed)
            ui.label(f"What deploying your draft would change in version {deployed.version}:").classes(
                "text-subtitle2")
            diff_lines(_or_why(mine), marker="stale-mine")
            with ui.row().classes("gap-2"):
                ui.button(f"reload version {deployed.version}", icon="refresh", on_click=self._reload).props(
                    "color=warning").mark("reload-deployed")
                ui.button(f"deploy over version {deployed.version}…", on_click=self._deploy_over).props(
                    "flat color=negative").mark("deploy-over")


def confirm_overwrite(draft: Draft, deployed: DeploymentSpec, deploy: Callable[[int], Awaitable[None]]) -> None:
    """Ask before deploying ``draft`` over ``deployed``; ``deploy(version)`` when the user confirms."""
    with transient_dialog() as dialog, ui.card().classes("w-[40rem] max-w-full"):
        ui.label(f"Deploy over version {deployed.version}?").classes("text-h6")
        ui.label(f"Version {deployed.version} was {origin_text(deployed)}; your draft is not based on it. "
                 f"Deploying replaces version {deployed.version} with your draft, which changes:")
        mine = _draft_changes(draft, deployed)
        diff_lines(_or_why(mine), marker="overwrite-diff")

        async def confirmed() -> None:
            dialog.close()
            await deploy(deployed.version)

        with ui.row():
            ui.button(f"deploy over version {deployed.version}", on_click=confirmed).props("color=negative").mark(
                "confirm-overwrite")
            ui.button("cancel", on_click=dialog.close).props("flat").mark("cancel-overwrite")
    dialog.open()
