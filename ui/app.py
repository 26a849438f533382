"""The panel's application object: its bus and fleet model, started with NiceGUI's app."""

from __future__ import annotations

import contextlib
import logging

from nicegui import app

from edge.bus import Bus
from edge.controller import Fleet
from edge.settings import Settings
from edge.topics import Topics

__all__ = ["Panel", "current", "setup"]

log = logging.getLogger("ui")
_current: Panel | None = None


class Panel:
    """What every page reads: the settings and the live fleet."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.topics = Topics(settings.namespace)
        self.bus = Bus.from_settings(settings, client_id=f"panel-{settings.agent_id}", wait_connected=False)
        self.fleet = Fleet(self.bus, self.topics)
        self._stack = contextlib.AsyncExitStack()

    async def start(self) -> None:
        await self._stack.enter_async_context(self.bus)
        await self._stack.enter_async_context(self.fleet)
        log.info("control panel watching namespace %r on %s", self.settings.namespace, self.bus.url)

    async def stop(self) -> None:
        await self._stack.aclose()


def current() -> Panel:
    if _current is None:
        raise RuntimeError("ui.setup(settings) was not called")
    return _current


def setup(settings: Settings) -> Panel:
    """Create the panel for these settings and register its pages and lifecycle with NiceGUI."""
    global _current
    from ui import pages  # registers the @ui.page routes

    del pages
    _current = Panel(settings)
    app.on_startup(_current.start)
    app.on_shutdown(_current.stop)
    return _current
