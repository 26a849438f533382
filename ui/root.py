"""The panel's composition root: :func:`setup` builds the :class:`~ui.app.Panel` for the settings and
registers its pages, static files, login and lifecycle with NiceGUI's app.

It lives apart from ``ui.app``, which the pages import for :func:`~ui.app.current`: the root
imports the pages, the pages do not import it, so no module imports one that imports it back.
"""

from __future__ import annotations

from nicegui import app, ui

from edge.settings import Settings
from ui.app import STATIC, Panel, install
from ui.auth import install as install_login
from ui.pages import create as create_pages
from ui.video_feed import install as install_video_feed

__all__ = ["setup"]


def setup(settings: Settings) -> Panel:
    """Create the panel for these settings and register its pages, login and lifecycle with NiceGUI."""
    panel = install(Panel(settings))
    ui.add_css((STATIC / "panel.css").read_text(), shared=True)
    if panel.login_required:
        install_login(panel)
    create_pages()
    install_video_feed()
    app.on_startup(panel.start)
    app.on_shutdown(panel.stop)
    app.on_connect(panel.client_connected)  # live metrics while a browser shows the panel (Fleet.watch)
    app.on_disconnect(panel.client_disconnected)
    return panel
