"""An agent's presence on the broker: its epoch, will, birth and catalog.

On every (re)connect the epoch increases (it is kept in the state dir, so it keeps increasing
across restarts), the will is set to the offline state of that epoch, and the retained birth
and catalog are published. The state is republished periodically with fresh metrics, and a
clean shutdown publishes the offline state itself, since a DISCONNECT discards the will.
"""

from __future__ import annotations

import logging
import os
import platform
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edge import __version__
from edge.bus import Bus, Will
from edge.frames import encode_value, now_ms
from edge.storage import write_atomic
from edge.topics import Topics

__all__ = ["Presence", "host_info"]

log = logging.getLogger("edge.presence")


def host_info() -> dict[str, Any]:
    return {
        "name": socket.gethostname(),
        "platform": platform.platform(terse=True),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "pid": os.getpid(),
        "cpus": os.cpu_count(),
    }


class Presence:
    """Announces one agent id; ``bus`` must be built with ``will=presence.will``."""

    def __init__(self, *, topics: Topics, agent_id: str, state_dir: Path | None,
                 catalog: Callable[[], list[dict[str, Any]]],
                 metrics: Callable[[], dict[str, Any]] | None = None) -> None:
        self.topics = topics
        self.agent_id = agent_id
        self.state_dir = state_dir
        self._catalog = catalog
        self._metrics = metrics
        self.epoch = self._load_epoch()
        self._host = host_info()

    def _load_epoch(self) -> int:
        if self.state_dir is None:
            return 0
        try:
            return int((self.state_dir / "epoch").read_text().strip())
        except (FileNotFoundError, ValueError):
            return 0

    def state(self, *, online: bool) -> dict[str, Any]:
        state: dict[str, Any] = {"online": online, "epoch": self.epoch, "ts": now_ms(), "version": __version__,
                                 "host": self._host}
        if online and self._metrics is not None:
            state["metrics"] = self._metrics()
        return state

    def catalog(self) -> dict[str, Any]:
        return {"agent": self.agent_id, "epoch": self.epoch, "types": self._catalog()}

    def will(self) -> Will:
        """The will of the next connection; called before each connect, so it starts a new epoch."""
        self.epoch += 1
        if self.state_dir is not None:
            write_atomic(self.state_dir / "epoch", str(self.epoch).encode())
        return Will(topic=self.topics.agent_state(self.agent_id), payload=encode_value(self.state(online=False)))

    async def announce(self, bus: Bus) -> None:
        """Birth and catalog, retained."""
        await self.publish_state(bus)
        await bus.publish(self.topics.agent_catalog(self.agent_id), encode_value(self.catalog()), qos=1,
                          retain=True)
        log.info("agent %s online (epoch %d) at %s", self.agent_id, self.epoch, bus.url)

    async def publish_state(self, bus: Bus, *, online: bool = True) -> None:
        await bus.publish(self.topics.agent_state(self.agent_id), encode_value(self.state(online=online)), qos=1,
                          retain=True)
