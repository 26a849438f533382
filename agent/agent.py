"""The agent daemon: a :class:`edge.host.Host` with the task types it discovered and its own
CPU and memory in its state."""

from __future__ import annotations

from collections.abc import Iterable

from agent.metrics import ProcessMetrics
from agent.registry import Registry, discover
from edge.host import Host
from edge.settings import Settings

__all__ = ["Agent"]


class Agent(Host):
    """``async with Agent(settings) as agent: await agent.run()``."""

    def __init__(self, settings: Settings, *, task_sources: Iterable[str] = (), registry: Registry | None = None,
                 persist: bool = True) -> None:
        self.registry = registry or discover(task_sources)
        super().__init__(settings, types=list(self.registry.types.values()), unavailable=self.registry.unavailable,
                         metrics=ProcessMetrics(), persist=persist)
