"""An agent's presence on the broker: its epoch, will, birth and catalog.

On every (re)connect the epoch increases (it is kept in the state dir, so it keeps increasing
across restarts), the will is set to the offline state of that epoch, and the retained birth
and catalog are published. The state is republished periodically with fresh metrics, and a
clean shutdown publishes the offline state itself, since a DISCONNECT discards the will.

Each process also draws a random **boot id**, published with the epoch: a state with another
boot id is a new life of the agent whatever its epoch (so a lost or corrupted epoch file, which
restarts the epoch at 1, does not make a running controller think the new birth is stale), and an
offline state counts only for the boot id it names (docs/protocol.md, "Liveness").

With ``shared_catalog`` the task types go once under ``{root}/catalogs/{hash}`` (a
:class:`~edge.protocol.CatalogDocument`, the same bytes from every agent with the same types, so the
broker keeps one retained copy for all of them) and the agent's own catalog names only the hash:
10,000 agents' retained catalogs took 810 MB at Mosquitto, one ~80 KB copy per distinct catalog
now (docs/protocol.md, "Shared catalogs"). The document goes at the first connect of the process
(and whenever its hash changes), not at every reconnect: a broker restart or a network blip made
10,000 agents send 10,000 copies of the same 80 KB. A broker that lost it (its retained state, a
prune, garbage under its hash) gets it again when a controller that lacks it asks
(:meth:`Presence.answer`, ``{root}/agents/{id}/catalog/request``): a controller never waits on an
agent that wrongly believes the broker holds it.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import platform
import socket
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from edge._lograte import LogLimiter
from edge._version import __version__
from edge.bus import Bus, Will
from edge.errors import EdgeError, FrameError
from edge.frames import decode_value, encode_value, now_ms
from edge.protocol import (
    PROTOCOL_REVISION,
    AgentState,
    Catalog,
    CatalogDocument,
    CatalogRequest,
    ValidationError,
    problem,
)
from edge.storage import write_atomic
from edge.topics import Topics

__all__ = ["REQUEST_INTERVAL", "Presence", "catalog_hash", "host_info"]

log = logging.getLogger("edge.presence")

MAX_EPOCH: Final = 2**63 - 1  # what the fleet accepts (edge.protocol)
REQUEST_INTERVAL: Final = 2.0  # s: an agent sends its document on request at most this often


def catalog_hash(payload: bytes) -> str:
    """The name of a shared catalog: the first 32 hex digits of the sha256 of its payload's bytes."""
    return hashlib.sha256(payload).hexdigest()[:32]


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
                 metrics: Callable[[], dict[str, Any]] | None = None,
                 errors: Callable[[], int] | None = None, report_interval: float | None = None,
                 shared_catalog: bool = False) -> None:
        self.topics = topics
        #: s between the agent's metrics batches (edge.reporting), said in its state so readers know to wait
        self.report_interval = report_interval
        self.agent_id = agent_id
        self.state_dir = state_dir
        #: publish the types once under ``{root}/catalogs/{hash}`` and only the hash in the agent's catalog
        self.shared_catalog = shared_catalog
        self._catalog = catalog
        self._metrics = metrics
        self._errors = errors
        #: this process's life: a new random token at each start (see the module docstring)
        self.boot = uuid.uuid4().hex[:16]
        self.epoch = self._load_epoch()
        self._host = host_info()
        self._bad_metrics = LogLimiter(log)
        #: the shared catalog published in this process's life (hash, payload): not sent again at a reconnect
        self._published: tuple[str, bytes] | None = None
        self._answered_at = -REQUEST_INTERVAL  # loop time of the last document sent on request
        #: shared catalog documents published (at connects and on request), for tests and measurements
        self.documents_sent = 0

    def _load_epoch(self) -> int:
        if self.state_dir is None:
            return 0
        path = self.state_dir / "epoch"
        try:
            epoch = int(path.read_text().strip())
        except FileNotFoundError:
            return 0
        except (OSError, ValueError) as exc:  # the boot id keeps liveness right; the epoch restarts
            log.warning("agent %s: unreadable epoch file %s (%s): starting again at epoch 1", self.agent_id, path, exc)
            return 0
        if not 0 <= epoch < MAX_EPOCH:
            log.warning("agent %s: epoch %d in %s is out of range: starting again at epoch 1", self.agent_id,
                        epoch, path)
            return 0
        return epoch

    def state(self, *, online: bool) -> dict[str, Any]:
        """The agent's state as published (:class:`edge.protocol.AgentState`); metrics out of the
        protocol's bounds (a NaN, a huge map) are left out and logged, the rest still goes."""
        state: dict[str, Any] = {"v": PROTOCOL_REVISION, "online": online, "epoch": self.epoch, "boot": self.boot,
                                 "ts": now_ms(), "version": __version__, "host": self._host}
        if self._errors is not None:
            state["errors"] = self._errors()
        if self.report_interval is not None:
            state["report_interval"] = float(self.report_interval)
        if online and self._metrics is not None:
            state["metrics"] = self._metrics()
        try:
            return AgentState.model_validate(state).dump()
        except ValidationError as exc:
            if "metrics" not in state:
                raise
            self._bad_metrics.warning("metrics", "agent %s: its metrics break the protocol's bounds (%s): its "
                                      "state is published without them", self.agent_id, problem(exc))
            del state["metrics"]
            return AgentState.model_validate(state).dump()

    def catalog(self) -> dict[str, Any]:
        """The agent's catalog as published inline (:class:`edge.protocol.Catalog`; entries are ``Task.describe``)."""
        return Catalog(v=PROTOCOL_REVISION, agent=self.agent_id, epoch=self.epoch, boot=self.boot,
                       types=self._catalog()).dump()

    def shared(self) -> tuple[str, bytes, dict[str, Any]]:
        """With a shared catalog: its hash, the document's payload, and the agent's catalog naming it."""
        document = encode_value(CatalogDocument(v=PROTOCOL_REVISION, types=self._catalog()).dump())
        digest = catalog_hash(document)
        return digest, document, Catalog(v=PROTOCOL_REVISION, agent=self.agent_id, epoch=self.epoch, boot=self.boot,
                                         catalog=digest).dump()

    def will(self) -> Will:
        """The will of the next connection; called before each connect, so it starts a new epoch."""
        self.epoch += 1
        if self.state_dir is not None:
            write_atomic(self.state_dir / "epoch", str(self.epoch).encode())
        return Will(topic=self.topics.agent_state(self.agent_id), payload=encode_value(self.state(online=False)))

    async def announce(self, bus: Bus) -> None:
        """Birth and catalog, retained (a shared catalog's document before the catalog naming it, unless this
        process published that document already: see the module docstring)."""
        await self.publish_state(bus)
        if self.shared_catalog:
            digest, document, catalog = self.shared()
            if self._published is None or self._published[0] != digest:
                await bus.publish(self.topics.catalog_document(digest), document, qos=1, retain=True)
                self._published = (digest, document)
                self.documents_sent += 1
        else:
            catalog = self.catalog()
        await bus.publish(self.topics.agent_catalog(self.agent_id), encode_value(catalog), qos=1, retain=True)
        log.info("agent %s online (epoch %d) at %s", self.agent_id, self.epoch, bus.url)

    def answer(self, bus: Bus, payload: bytes) -> bool:
        """A controller's :class:`~edge.protocol.CatalogRequest`: publish the document it names again if it is
        the one this agent's catalog names, at most once per :data:`REQUEST_INTERVAL`; True if sent."""
        try:
            digest = CatalogRequest.model_validate(decode_value(payload)).catalog
        except (FrameError, ValidationError) as exc:
            self._bad_metrics.warning("catalog-request", "agent %s: a catalog request it cannot read: %s",
                                      self.agent_id, problem(exc) if isinstance(exc, ValidationError) else exc)
            return False
        now = asyncio.get_running_loop().time()
        if self._published is None or self._published[0] != digest or now - self._answered_at < REQUEST_INTERVAL:
            return False
        self._answered_at = now
        try:
            bus.publish_nowait(self.topics.catalog_document(digest), self._published[1], qos=1, retain=True)
        except EdgeError as exc:  # over the broker's max payload: announce said so already
            log.warning("agent %s could not publish its shared catalog %s again: %s", self.agent_id, digest, exc)
            return False
        self.documents_sent += 1
        log.info("agent %s published its shared catalog %s again: a controller lacked it", self.agent_id, digest)
        return True

    async def publish_state(self, bus: Bus, *, online: bool = True) -> None:
        await bus.publish(self.topics.agent_state(self.agent_id), encode_value(self.state(online=online)), qos=1,
                          retain=True)
