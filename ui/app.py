"""The panel's application object: one :class:`~edge.controller.Controller` shared by every page.

Pages read the :class:`Panel` through :func:`current`; the composition root (``ui.root.setup``)
builds it for the settings and registers the pages, the static files, the login and the
start/stop of the controller with NiceGUI's app, so this module imports no page. The server
(``ui.server.serve``) or a test's ``ui.run`` then runs it. Pages never react to fleet
messages one by one: the fleet's change callback only bumps a revision counter
(:class:`Changes`), and each page redraws on its own timer when the revision moved, sending
only what differs.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from edge.bus import Bus
from edge.controller import Controller, Fleet
from edge.settings import Settings
from ui.draft import Draft

__all__ = ["STATIC", "Changes", "Panel", "current", "install"]

log = logging.getLogger("ui")
STATIC = Path(__file__).parent / "static"
_current: Panel | None = None


class Changes:
    """A revision per kind of fleet change (agent, deployment, status), bumped by the fleet's callback."""

    def __init__(self) -> None:
        self.revision = 0
        self.by_kind: dict[str, int] = {}
        self.by_agent: dict[str, int] = {}  # the revision of each agent's last change

    def note(self, kind: str, key: str) -> None:
        self.revision += 1
        self.by_kind[kind] = self.revision
        if kind == "agent":
            self.by_agent[key] = self.revision

    def agents_since(self, revision: int, agents: Iterable[str]) -> bool:
        """Whether any of ``agents`` changed after ``revision`` (a view of some agents' tasks, in a fleet whose
        heartbeats change some agent every millisecond)."""
        by_agent = self.by_agent
        return any(by_agent.get(agent, 0) > revision for agent in agents)

    def since(self, revision: int, *kinds: str) -> bool:
        """Whether anything of ``kinds`` (any kind when none is given) changed after ``revision``."""
        if not kinds:
            return self.revision > revision
        return any(self.by_kind.get(kind, 0) > revision for kind in kinds)


class Panel:
    """What every page reads and acts through: the settings, the controller, and the editor drafts."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.bus = Bus.from_settings(settings, client_id=f"panel-{settings.agent_id}-{uuid.uuid4().hex[:6]}",
                                     wait_connected=False)
        self.controller = Controller(settings, bus=self.bus, via="panel")
        self.changes = Changes()
        #: the editor's working copies by deployment id: kept while the panel runs, across page loads
        self.drafts: dict[str, Draft] = {}
        self._stack = contextlib.AsyncExitStack()

    @property
    def fleet(self) -> Fleet:
        return self.controller.fleet

    @property
    def login_required(self) -> bool:
        return self.settings.controller_password is not None

    async def start(self) -> None:
        async with contextlib.AsyncExitStack() as stack:  # a controller that fails to enter closes the bus
            await stack.enter_async_context(self.bus)
            await stack.enter_async_context(self.controller)
            self._stack = stack.pop_all()
        self.fleet.on_change(self.changes.note)
        self.fleet.on_change(self._record)
        for dep in list(self.fleet.deployments):
            self._record("deployment", dep)
        log.info("control panel watching namespace %r on %s", self.settings.namespace, self.bus.url)

    async def stop(self) -> None:
        await self._stack.aclose()

    def client_connected(self, client: Any) -> None:
        """A browser shows the panel: the agents send their tasks' live metrics (``Fleet.watch``)."""
        self.fleet.watch(("client", client.id))

    def client_disconnected(self, client: Any) -> None:
        """That browser is gone: with no other, the agents stop sending metrics when their lease ends."""
        self.fleet.unwatch(("client", client.id))

    def _record(self, kind: str, key: str) -> None:
        """Save every version seen on the broker (deployed from the CLI, another panel) in the history,
        so that it lists it, with where it came from, and can diff and roll back to it."""
        spec = self.fleet.deployments.get(key) if kind == "deployment" else None
        if spec is not None and spec.version not in self.controller.history.versions(key):
            self.controller.history.save(spec)

    def draft(self, deployment: str) -> Draft | None:
        """The editor's copy of a deployment: the draft in progress, else the deployed spec, else the last
        version in the history, else None."""
        if deployment in self.drafts:
            return self.drafts[deployment]
        spec = self.fleet.deployments.get(deployment)
        if spec is None:
            versions = self.controller.history.versions(deployment)
            if not versions:
                return None
            spec = self.controller.history.get(deployment, versions[-1])
        draft = Draft.from_spec(spec)
        self.drafts[deployment] = draft
        return draft

    def known_deployments(self) -> list[str]:
        """Deployed, drafted or with a history here: every deployment the deployments page lists."""
        names = set(self.fleet.deployments) | set(self.drafts) | set(self.fleet.rejected)
        names |= set(self.controller.history.deployments())
        return sorted(names)


def current() -> Panel:
    if _current is None:
        raise RuntimeError("ui.setup(settings) was not called")
    return _current


def install(panel: Panel) -> Panel:
    """Make ``panel`` the one :func:`current` returns (the composition root calls this once)."""
    global _current
    _current = panel
    return panel
