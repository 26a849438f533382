"""The NiceGUI control panel. It talks to the fleet only through ``edge.controller``."""

from ui.app import Panel
from ui.auth import check_exposure
from ui.root import setup
from ui.server import bind_panel, serve

__all__ = ["Panel", "bind_panel", "check_exposure", "serve", "setup"]
