"""The layout every page shares: a header with the navigation and the broker connection state."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from nicegui import events, ui

from ui.app import current
from ui.auth import logout

__all__ = ["NAV", "deployment_nav", "frame", "transient_dialog"]

NAV = (("Agents", "/"), ("Task types", "/types"), ("Deployments", "/deployments"))


@contextmanager
def frame(title: str, *, active: str | None = None) -> Iterator[ui.column]:
    """``with frame("Agents", active="/"):`` then the page's content."""
    panel = current()
    ui.page_title(f"{title} · edgetasks")
    ui.colors(primary="#37474f")
    with ui.header().classes("items-center gap-2 py-2"):
        ui.label("edgetasks").classes("text-h6 mr-4")
        with ui.row().classes("edge-nav gap-1"):
            for name, path in NAV:
                link = ui.link(name, path)
                if path == active:
                    link.classes("edge-active")
        ui.space()
        ui.label(f"{panel.settings.namespace} @ {panel.bus.url}").classes("text-caption opacity-80")
        state = ui.badge("connecting…", color="orange").mark("connection")
        if panel.login_required:
            ui.button(icon="logout", on_click=logout).props("flat round dense color=white").tooltip("log out")

    def show_connection() -> None:
        connected = panel.bus.is_connected
        if connected:
            text = "connected"
        else:
            stats = panel.bus.stats
            tried = stats.connects or stats.connect_failures
            text = "broker unreachable, retrying…" if tried else "connecting…"
        if state.text != text:
            state.text = text
            state.props(f"color={'green' if connected else 'orange'}")

    show_connection()
    ui.timer(1.0, show_connection)
    with ui.column().classes("w-full p-4 gap-3") as content:
        yield content


def deployment_nav(deployment: str, active: str) -> None:
    """The links between one deployment's pages: running view, editor, dashboard."""
    with ui.row().classes("items-center gap-3"):
        ui.label(deployment).classes("text-h5")
        for name, path in (("Running", f"/deployments/{deployment}"), ("Editor", f"/deployments/{deployment}/edit"),
                           ("Dashboard", f"/deployments/{deployment}/dashboard")):
            link = ui.link(name, path)
            if name == active:
                link.classes("font-bold")


def transient_dialog() -> ui.dialog:
    """A dialog that deletes itself once closed, so that closed dialogs do not pile up on a page.

    The deletion waits a moment: the handler that closed it may still act in its context (navigate, notify).
    Meanwhile its container may have gone (a deleted deployment's row, with the dialog that confirmed
    it): a deleted dialog is not deleted twice (NiceGUI would log ``list.remove(x): x not in list``).
    """
    created = ui.dialog()

    def delete() -> None:
        if not created.is_deleted:
            created.delete()

    def closed(e: events.ValueChangeEventArguments[bool]) -> None:
        if not e.value:
            ui.timer(0.2, delete, once=True)

    created.on_value_change(closed)
    return created
