"""The controller: validates, places, publishes, removes and rolls back deployments.

::

    async with Controller(settings) as controller:
        result = await controller.deploy(load_spec(Path("graph.yaml")))
        print(result.spec.version, [(t.id, t.agent) for t in result.spec.tasks])

Entering connects a bus, builds the :class:`~edge.controller.fleet.Fleet` and waits until the
retained state has arrived, so validation sees the live catalog.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import time
from dataclasses import dataclass
from types import TracebackType

from edge.bus import Bus
from edge.controller.fleet import Fleet
from edge.controller.history import SpecHistory
from edge.controller.placement import place
from edge.errors import ConfigError, SpecError
from edge.graph import DeploymentSpec, Origin, check_against_catalog, encode_spec
from edge.settings import Settings
from edge.topics import Topics, validate_id

__all__ = ["Controller", "DeployResult"]

log = logging.getLogger("edge.controller")


@dataclass(frozen=True)
class DeployResult:
    spec: DeploymentSpec
    previous_version: int | None
    published: bool


class Controller:
    """``async with Controller(settings) as controller`` — one bus, one fleet, one history."""

    def __init__(self, settings: Settings, *, bus: Bus | None = None, client_id: str | None = None,
                 sync_timeout: float = 5.0, via: str = "api") -> None:
        self.settings = settings
        #: what deploys through this controller: cli, panel, api; stamped on each version it publishes
        self.via = via
        self.topics = Topics(settings.namespace)
        self._own_bus = bus is None
        self.bus = bus or Bus.from_settings(settings, client_id=client_id)
        self.fleet = Fleet(self.bus, self.topics)
        self.history = SpecHistory(settings.data_dir / "controller" / "history")
        self._sync_timeout = sync_timeout

    async def __aenter__(self) -> Controller:
        if self._own_bus:
            await self.bus.__aenter__()
        await self.fleet.__aenter__()
        if self.bus.is_connected:
            await self.fleet.synced(self._sync_timeout)
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.fleet.__aexit__(exc_type, exc, tb)
        if self._own_bus:
            await self.bus.__aexit__(exc_type, exc, tb)

    # -- checking and placing -------------------------------------------------------------------------
    def plan(self, spec: DeploymentSpec) -> tuple[DeploymentSpec, list[str]]:
        """The spec as it would be published (placed, versioned) and every problem with it."""
        problems = check_against_catalog(spec, self.fleet.types(online_only=False))
        placed, placement_problems = place(spec, self.fleet)
        problems += placement_problems
        current = self.fleet.deployments.get(spec.id)
        latest = max([current.version if current else 0, *self.history.versions(spec.id)])
        if latest and spec.version <= latest:  # an update is the next version, also after a removal
            placed = placed.model_copy(update={"version": latest + 1})
        return placed, problems

    async def deploy(self, spec: DeploymentSpec, *, dry_run: bool = False,
                     rollback_of: int | None = None) -> DeployResult:
        """Check against the live catalog, place, publish and record; :class:`SpecError` lists problems."""
        placed, problems = self.plan(spec)
        if problems:
            raise SpecError(f"cannot deploy {spec.id!r}", errors=problems)
        current = self.fleet.deployments.get(spec.id)
        previous = current.version if current is not None else None
        if dry_run:
            return DeployResult(placed, previous, published=False)
        if current is not None and current.version not in self.history.versions(spec.id):
            self.history.save(current)  # deployed by someone else before: keep it for a rollback
        placed = placed.model_copy(update={"deployed": Origin(
            via=self.via, host=socket.gethostname(), at=time.time_ns() // 1_000_000, replaced=previous,
            rollback_of=rollback_of)})
        await self.bus.publish(self.topics.deployment(spec.id), encode_spec(placed), qos=1, retain=True)
        self.history.save(placed)
        self.fleet.deployments[spec.id] = placed  # our own copy arrives too; later readers see it now
        log.info("deployed %s version %d", placed.id, placed.version)
        return DeployResult(placed, previous, published=True)

    async def remove(self, deployment: str) -> bool:
        """Remove a deployment; False when there was none. Its history stays for a rollback."""
        validate_id(deployment, "deployment id")
        existed = self.fleet.deployments.pop(deployment, None) is not None
        await self.bus.publish(self.topics.deployment(deployment), b"", qos=1, retain=True)
        return existed

    async def rollback(self, deployment: str, version: int | None = None) -> DeployResult:
        """Publish an earlier version again, as the next version (default: the one before the current)."""
        versions = self.history.versions(deployment)
        current = self.fleet.deployments.get(deployment)
        if version is None:
            older = [v for v in versions if current is None or v < current.version]
            if not older:
                raise ConfigError(f"no earlier version of {deployment!r} to roll back to "
                                  f"(history: {versions or 'none'})", field="version")
            version = older[-1]
        try:
            spec = self.history.get(deployment, version)
        except KeyError as exc:
            raise ConfigError(str(exc.args[0]), field="version") from None
        return await self.deploy(spec.model_copy(update={"version": 1}), rollback_of=version)

    def port_topic(self, reference: str) -> str:
        """``demo/add.out`` -> the stream topic of that output (checked against the live spec)."""
        dep, slash, rest = reference.partition("/")
        task, dot, port = rest.partition(".")
        if not (slash and dot):
            raise ConfigError(f"{reference!r} is not DEPLOYMENT/TASK.PORT", field="port")
        spec = self.fleet.deployments.get(dep)
        if spec is not None:
            with contextlib.suppress(KeyError):
                spec.task(task)
                return self.topics.stream(dep, task, port)
            raise ConfigError(f"deployment {dep!r} has no task {task!r}", field="port")
        return self.topics.stream(dep, task, port)
