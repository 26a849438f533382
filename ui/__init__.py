"""The NiceGUI control panel. It talks to the fleet only through ``edge.controller``."""

from ui.app import Panel, setup
from ui.server import serve

__all__ = ["Panel", "serve", "setup"]
