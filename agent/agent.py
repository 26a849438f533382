"""The agent daemon: one per device, announced on the broker by a retained birth and a will.

On every (re)connect the agent increases its ``epoch`` (kept under the data dir, so it keeps
increasing across restarts), sets a will that marks it offline with that epoch, publishes its
retained birth and its catalog. A clean shutdown publishes the offline state itself, since a
DISCONNECT discards the will.
"""

from __future__ import annotations

import asyncio
import logging
import os
import platform
import socket
from pathlib import Path
from types import TracebackType
from typing import Any

from edge import __version__
from edge.bus import Bus, Will
from edge.frames import encode_value, now_ms
from edge.settings import Settings
from edge.topics import Topics

__all__ = ["Agent"]

log = logging.getLogger("agent")


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class Agent:
    """An edge agent; ``async with Agent(settings) as agent: await agent.run()``."""

    def __init__(self, settings: Settings, *, bus: Bus | None = None) -> None:
        self.settings = settings
        self.id = settings.agent_id
        self.topics = Topics(settings.namespace)
        self.state_dir = settings.data_dir / "agents" / self.id
        self.epoch = self._load_epoch()
        self.started = asyncio.Event()
        self._bus = bus or Bus.from_settings(
            settings, client_id=f"agent-{self.id}", will=self._will, wait_connected=False
        )
        self._bus.on_connect(self._announce)

    @property
    def bus(self) -> Bus:
        return self._bus

    def _load_epoch(self) -> int:
        try:
            return int((self.state_dir / "epoch").read_text().strip())
        except (FileNotFoundError, ValueError):
            return 0

    def _next_epoch(self) -> int:
        self.epoch += 1
        _write_atomic(self.state_dir / "epoch", str(self.epoch).encode())
        return self.epoch

    def host_info(self) -> dict[str, Any]:
        return {
            "name": socket.gethostname(),
            "platform": platform.platform(terse=True),
            "machine": platform.machine(),
            "python": platform.python_version(),
            "pid": os.getpid(),
            "cpus": os.cpu_count(),
        }

    def state(self, *, online: bool) -> dict[str, Any]:
        return {"online": online, "epoch": self.epoch, "ts": now_ms(), "version": __version__,
                "host": self.host_info()}

    def catalog(self) -> dict[str, Any]:
        """The task types this agent can run (the registry lands with the agent issue)."""
        return {"agent": self.id, "epoch": self.epoch, "types": []}

    def _will(self) -> Will:
        self._next_epoch()
        return Will(topic=self.topics.agent_state(self.id), payload=encode_value(self.state(online=False)))

    async def _announce(self, bus: Bus) -> None:
        await bus.publish(self.topics.agent_state(self.id), encode_value(self.state(online=True)), qos=1,
                          retain=True)
        await bus.publish(self.topics.agent_catalog(self.id), encode_value(self.catalog()), qos=1, retain=True)
        log.info("agent %s online (epoch %d) at %s", self.id, self.epoch, bus.url)
        self.started.set()

    async def __aenter__(self) -> Agent:
        await self._bus.__aenter__()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._bus.is_connected:
            await self._bus.publish(self.topics.agent_state(self.id), encode_value(self.state(online=False)),
                                    qos=1, retain=True)
        await self._bus.__aexit__(exc_type, exc, tb)
        log.info("agent %s stopped", self.id)

    async def run(self) -> None:
        """Serve until cancelled."""
        await asyncio.Event().wait()


