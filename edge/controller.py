"""The controller's live model of the fleet, built only from what the broker says.

:class:`Fleet` subscribes to every agent's retained state and catalog in one namespace and
keeps :attr:`Fleet.agents` current: an agent is online from its birth until its will (or its
own offline message) arrives. The CLI (``edge ls``) and the control panel both read this one
model. Deployments, placement and statuses join it with the controller issue.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from edge.bus import Bus, Message, Subscription
from edge.errors import FrameError, TopicError
from edge.frames import decode_value
from edge.topics import TopicKind, Topics

__all__ = ["AgentInfo", "Fleet"]

log = logging.getLogger("edge.controller")


@dataclass(slots=True)
class AgentInfo:
    """What the fleet knows of one agent."""

    id: str
    online: bool = False
    epoch: int = 0
    ts: int = 0
    version: str = ""
    host: dict[str, Any] = field(default_factory=dict)
    types: list[dict[str, Any]] = field(default_factory=list)


class Fleet:
    """Live agents of a namespace; ``async with Fleet(bus, Topics(ns)) as fleet``."""

    def __init__(self, bus: Bus, topics: Topics) -> None:
        self.bus = bus
        self.topics = topics
        self.agents: dict[str, AgentInfo] = {}
        #: Messages on our topics that could not be understood (each logged).
        self.errors = 0
        self._listeners: list[Callable[[AgentInfo], None]] = []
        self._changed = asyncio.Event()
        self._subs: list[Subscription] = []

    async def __aenter__(self) -> Fleet:
        for pattern in (self.topics.all_agent_states, self.topics.all_agent_catalogs):
            self._subs.append(await self.bus.subscribe(pattern, qos=1, callback=self._on_message))
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        for sub in self._subs:
            await sub.aclose()
        self._subs.clear()

    def on_change(self, listener: Callable[[AgentInfo], None]) -> None:
        """Call ``listener(agent)`` whenever an agent's state or catalog changes."""
        self._listeners.append(listener)

    @property
    def online(self) -> list[AgentInfo]:
        return [a for a in self.agents.values() if a.online]

    async def wait_for(self, predicate: Callable[[Fleet], bool], timeout: float) -> None:
        """Wait until ``predicate(fleet)`` holds (:class:`TimeoutError` after ``timeout`` s)."""
        async with asyncio.timeout(timeout):
            while not predicate(self):
                self._changed.clear()
                await self._changed.wait()

    def _on_message(self, message: Message) -> None:
        try:
            parsed = self.topics.parse(message.topic)
            assert parsed.agent_id is not None
            if not message.payload:
                self._forget(parsed.agent_id)
                return
            data = decode_value(message.payload)
            if not isinstance(data, dict):
                raise FrameError(f"expected a map, got {type(data).__name__}")
            agent = self.agents.get(parsed.agent_id) or AgentInfo(id=parsed.agent_id)
            if parsed.kind is TopicKind.AGENT_STATE:
                self._apply_state(agent, data)
            elif parsed.kind is TopicKind.AGENT_CATALOG:
                types = data.get("types", [])
                agent.types = [t for t in types if isinstance(t, dict)] if isinstance(types, list) else []
        except (TopicError, FrameError, AssertionError) as exc:
            self.errors += 1
            log.warning("ignored message on %r: %s", message.topic, exc)
            return
        self.agents[agent.id] = agent
        self._notify(agent)

    @staticmethod
    def _apply_state(agent: AgentInfo, data: dict[str, Any]) -> None:
        epoch = data.get("epoch")
        if not isinstance(epoch, int) or isinstance(epoch, bool):
            raise FrameError("state without an integer epoch")
        if epoch < agent.epoch:
            return  # a stale message from an earlier session
        agent.epoch = epoch
        agent.online = data.get("online") is True
        ts = data.get("ts")
        agent.ts = ts if isinstance(ts, int) else agent.ts
        agent.version = str(data.get("version", ""))
        host = data.get("host")
        agent.host = host if isinstance(host, dict) else {}

    def _forget(self, agent_id: str) -> None:
        agent = self.agents.pop(agent_id, None)
        if agent is not None:
            agent.online = False
            self._notify(agent)

    def _notify(self, agent: AgentInfo) -> None:
        self._changed.set()
        for listener in self._listeners:
            try:
                listener(agent)
            except Exception:
                log.exception("fleet listener %r failed", listener)
