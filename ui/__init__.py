"""The NiceGUI control panel. It talks to the fleet only through ``edge.controller``."""

from ui.app import Panel, setup
from ui.auth import check_exposure
from ui.server import serve

__all__ = ["Panel", "check_exposure", "serve", "setup"]
