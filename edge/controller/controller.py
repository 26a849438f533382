"""The controller: validates, places, publishes, removes and rolls back deployments.

::

    async with Controller(settings) as controller:
        result = await controller.deploy(load_spec(Path("graph.yaml")))
        print(result.spec.version, [(t.id, t.agent) for t in result.spec.tasks])

Entering connects a bus, builds the :class:`~edge.controller.fleet.Fleet` and waits until the
retained state has arrived, so validation sees the live catalog.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
import uuid
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from edge.bus import Bus
from edge.controller.catalogs import unknown_types_note
from edge.controller.fleet import AgentInfo, Fleet
from edge.controller.history import SpecHistory
from edge.controller.placement import place
from edge.desired import encode_record, removal
from edge.errors import ConfigError, EdgeError, SpecError
from edge.frames import encode_frame, encode_value
from edge.graph import DeploymentSpec, Origin, TaskSpec, check_against_catalog, encode_spec
from edge.ports import catalog_ports
from edge.protocol import PROTOCOL_REVISION, DismissRequest
from edge.settings import Settings
from edge.topics import Topics, validate_id, validate_task_key
from edge.validation import (
    CHECK_TIMEOUT,
    CheckRequest,
    Report,
    check_offline,
    encode_request,
    parse_reply,
    reply_lines,
)

__all__ = ["Controller", "DeployResult"]

log = logging.getLogger("edge.controller")


@dataclass(frozen=True)
class DeployResult:
    spec: DeploymentSpec
    previous_version: int | None
    published: bool
    #: what did not block it: pins to unknown agents, checks that could not run (``edge.validation``)
    warnings: tuple[str, ...] = ()
    unchecked: tuple[str, ...] = ()


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
        self._stack: contextlib.AsyncExitStack | None = None

    async def __aenter__(self) -> Controller:
        # a first sync that times out (or any failure) closes what was entered: fleet, then own bus
        async with contextlib.AsyncExitStack() as stack:
            if self._own_bus:
                await stack.enter_async_context(self.bus)
            await stack.enter_async_context(self.fleet)
            if self.bus.is_connected:
                await self.fleet.synced(self._sync_timeout)
            self._stack = stack.pop_all()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.__aexit__(exc_type, exc, tb)

    # -- checking and placing -------------------------------------------------------------------------
    def plan(self, spec: DeploymentSpec) -> tuple[DeploymentSpec, list[str]]:
        """The spec as it would be published (placed, versioned) and its catalog and placement problems.

        Without the config checks: :meth:`validate` is the whole validation."""
        problems = check_against_catalog(spec, self.fleet.types(online_only=False))
        placed, placement_problems = self._place(spec)
        return placed, problems + placement_problems

    def _place(self, spec: DeploymentSpec) -> tuple[DeploymentSpec, list[str]]:
        placed, problems = place(spec, self.fleet)
        current = self.fleet.deployments.get(spec.id)
        removed = self.fleet.removed.get(spec.id)
        latest = max([current.version if current else 0, removed.version if removed else 0,
                      *self.history.versions(spec.id)])
        if latest and spec.version <= latest:  # an update is the next version, also after a removal
            placed = placed.model_copy(update={"version": latest + 1})
        return placed, problems

    async def validate(self, data: Any, *, timeout: float | None = None) -> Report:
        """Every problem of ``data`` (a spec, or a spec file's parsed YAML/JSON) at once: structure,
        catalog, config schemas, placement, pins, and the types' own checks run by agents offering
        them (waiting at most ``timeout`` s, default :data:`~edge.validation.CHECK_TIMEOUT`)."""
        types = self.fleet.types(online_only=False)
        found = check_offline(data, types=types, agents=self.fleet.agents)
        spec, errors, warnings = found.spec, found.errors, found.warnings
        placed = None
        if spec is not None:
            placed, placement = self._place(spec)
            errors += placement
        ported: dict[str, dict[str, dict[str, dict[str, Any]]]] = {}
        remote, not_run = await self._ask_agents(found.partial, types, found.schema_fields,
                                                 CHECK_TIMEOUT if timeout is None else timeout, ported)
        answered = {task: ports for task, ports in ported.items() if task in {t.id for t in found.partial.tasks}}
        if answered:  # the agents' own ports of each instance: the wires again, against them
            by_rules = check_against_catalog(found.partial, types)
            by_agents = check_against_catalog(found.partial, types, ports=answered)
            errors = [e for e in errors if e not in by_rules or e in by_agents] + [
                e for e in by_agents if e not in by_rules]
        for task in found.partial.tasks:  # in the spec's order, after the offline problems
            task_errors, task_warnings = remote.get(task.id, ([], []))
            errors += [f"task {task.id!r}: {line}" for line in task_errors]
            warnings += [f"task {task.id!r}: {line}" for line in task_warnings]
        note = unknown_types_note(self.fleet)
        if note is not None and any("unknown task type" in e for e in errors):  # it may be one of theirs
            warnings.append(note)
        return Report(placed, errors=tuple(dict.fromkeys(errors)), warnings=tuple(warnings),
                      unchecked=(*found.unchecked, *not_run), checked=spec)

    async def _ask_agents(self, spec: DeploymentSpec, types: dict[str, dict[str, Any]],
                          schema_fields: dict[str, set[str]], timeout: float,
                          ports: dict[str, dict[str, dict[str, dict[str, Any]]]]
                          ) -> tuple[dict[str, tuple[list[str], list[str]]], list[str]]:
        """The types' own checks: each task asked of its pinned agent if that one is online and offers
        the type, else of the first online agent offering it; one request per agent, in parallel.
        The instance ports the agents answered go into ``ports``."""
        by_agent: dict[str, list[TaskSpec]] = {}
        not_run: list[str] = []
        online: list[AgentInfo] | None = None  # sorted by id, made once, and only if a task is not pinned
        first: dict[str, str | None] = {}  # type -> the first online agent offering it
        for task in spec.tasks:
            if types.get(task.type, {}).get("available", True) is False or task.type not in types:
                continue  # already an error of the catalog check
            pinned = self.fleet.agents.get(task.agent or "")
            if pinned is not None and pinned.online and pinned.offers(task.type):
                by_agent.setdefault(pinned.id, []).append(task)
                continue
            if task.type not in first:  # per type, not per task: 1,000 tasks x 5,000 agents took 47 s
                if online is None:
                    online = sorted(self.fleet.online, key=lambda a: a.id)
                first[task.type] = next((a.id for a in online if a.offers(task.type)), None)
            if (offering := first[task.type]) is not None:
                by_agent.setdefault(offering, []).append(task)
            else:
                not_run.append(f"task {task.id!r}: the checks of type {task.type!r} that need its code: "
                               f"no online agent offers the type")
        if not by_agent:
            return {}, not_run
        if not self.bus.is_connected:
            return {}, [*not_run, *(f"task {t.id!r}: the checks of type {t.type!r} that need its code: "
                                    f"not connected to the broker" for ts in by_agent.values() for t in ts)]
        try:
            answers = await self._exchange(by_agent, timeout, ports)
        except EdgeError as exc:  # the connection dropped while asking
            answers, reason = {}, f"the broker connection failed ({exc})"
        else:
            reason = f"did not answer within {timeout:g} s"
        results: dict[str, tuple[list[str], list[str]]] = {}
        for agent, tasks in by_agent.items():
            answer = answers.get(agent)
            for task in tasks:
                if answer is None or task.id not in answer:
                    why = reason if answer is None else "did not report on it"
                    not_run.append(f"task {task.id!r}: the checks of type {task.type!r} that need its code: "
                                   f"agent {agent!r} {why}")
                    continue
                task_errors, task_warnings = answer[task.id]
                known = schema_fields.get(task.id, set())  # the schema said it already
                results[task.id] = ([e for e in task_errors if e.split(": ", 1)[0] not in known], task_warnings)
        return results, not_run

    async def _exchange(self, by_agent: dict[str, list[TaskSpec]], timeout: float,
                        ports: dict[str, dict[str, dict[str, dict[str, Any]]]]
                        ) -> dict[str, dict[str, tuple[list[str], list[str]]]]:
        """One request per agent on its validate topic; the answers that came within ``timeout``, by agent."""
        request_id = uuid.uuid4().hex
        reply_topic = self.topics.reply(request_id)
        answers: dict[str, dict[str, tuple[list[str], list[str]]]] = {}
        async with self.bus.subscribe(reply_topic, qos=1) as replies:
            for agent, tasks in by_agent.items():
                request = CheckRequest(id=request_id, reply_to=reply_topic,
                                       tasks=[(t.id, t.type, dict(t.config)) for t in tasks])
                await self.bus.publish(self.topics.agent_validate(agent), encode_request(request), qos=1)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    while len(answers) < len(by_agent):
                        reply = parse_reply((await replies.get()).payload, request_id)
                        if reply is not None and reply.agent in by_agent:
                            asked = {t.id for t in by_agent[reply.agent]}
                            answers[reply.agent] = reply_lines(reply)
                            ports.update((task, result.ports.model_dump()) for task, result in reply.tasks.items()
                                         if task in asked and result.ports is not None)
        return answers

    async def deploy(self, spec: DeploymentSpec, *, dry_run: bool = False, report: Report | None = None,
                     rollback_of: int | None = None) -> DeployResult:
        """Validate (:meth:`validate`, unless ``report`` is its result for this very spec), place, publish
        and record; :class:`SpecError` lists every error."""
        if report is None or report.checked != spec:
            report = await self.validate(spec)
        if report.errors or report.spec is None:
            raise SpecError(f"cannot deploy {spec.id!r}", errors=list(report.errors))
        placed = report.spec
        current = self.fleet.deployments.get(spec.id)
        previous = current.version if current is not None else None
        if dry_run:
            return DeployResult(placed, previous, published=False, warnings=report.warnings,
                                unchecked=report.unchecked)
        if current is not None and current.version not in self.history.versions(spec.id):
            self.history.save(current)  # deployed by someone else before: keep it for a rollback
        placed = placed.model_copy(update={"deployed": Origin(
            via=self.via, host=socket.gethostname(), at=time.time_ns() // 1_000_000, replaced=previous,
            rollback_of=rollback_of)})
        await self.bus.publish(self.topics.deployment(spec.id), encode_spec(placed), qos=1, retain=True)
        self.history.save(placed)
        self.fleet.deployments[spec.id] = placed  # our own copy arrives too; later readers see it now
        log.info("deployed %s version %d", placed.id, placed.version)
        return DeployResult(placed, previous, published=True, warnings=report.warnings, unchecked=report.unchecked)

    async def remove(self, deployment: str) -> bool:
        """Remove a deployment; False when there was none. Its history stays for a rollback.

        Publishes a removal record (``edge.desired``), retained in place of the spec, so that an
        agent away during the removal learns of it when it comes back; the empty topic would
        mean "the broker lost it" and have the agents publish their copy again."""
        validate_id(deployment, "deployment id")
        current = self.fleet.deployments.pop(deployment, None)
        earlier = self.fleet.removed.get(deployment)
        version = max([current.version if current else 0, earlier.version if earlier else 0,
                       *self.history.versions(deployment)])
        if version == 0:  # never deployed as far as anyone here knows: leave no record of a typo
            return False
        record = removal(deployment, version)
        await self.bus.publish(self.topics.deployment(deployment), encode_record(record), qos=1, retain=True)
        self.fleet.removed[deployment] = record
        return current is not None

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

    async def dismiss(self, deployment: str, task: str) -> bool:
        """Ask the task's agent to clear its crash notice; False when it has none.

        ``task`` may be a replica's key (``worker.1``). The agent clears it (unless it crashed again
        since the notice this controller saw) and
        republishes the status, so every panel and ``edge ls`` sees it go. An offline agent cannot
        be asked: :class:`ConfigError`."""
        status = self.fleet.statuses.get((validate_id(deployment, "deployment id"), validate_task_key(task)))
        if status is None or status.crashed_at is None:
            return False
        agent = self.fleet.agents.get(status.agent) if status.agent is not None else None
        if status.agent is None or agent is None or not agent.online:
            raise ConfigError(f"agent {status.agent or '?'} of {deployment}/{task} is offline: its crash notice "
                              "can be dismissed once it is back", field="agent")
        request = DismissRequest(v=PROTOCOL_REVISION, deployment=deployment, task=task, before=status.crashed_at)
        await self.bus.publish(self.topics.agent_dismiss(status.agent), encode_value(request.model_dump()), qos=1)
        return True

    async def inject(self, deployment: str, task: str, port: str, value: Any) -> str:
        """Send ``value`` as one frame into input ``port`` of a running task; returns the topic it went on.

        The frame goes on the inject topic of the task's agent (``Topics.inject``), which hands it to
        the task as the input's source would, wired or not; under ``edge acl`` only a controller and
        that agent may publish there.
        :class:`ConfigError` (one line) for a deployment, task or input that is not there, a task that
        is not running, or a value a frame cannot carry."""
        spec = self.fleet.deployments.get(validate_id(deployment, "deployment id"))
        if spec is None:
            raise ConfigError(f"{deployment} is not deployed: there is nothing to inject into", field="deployment")
        try:
            task_spec = spec.task(validate_id(task, "task id"))
        except KeyError:
            raise ConfigError(f"deployment {deployment} has no task {task!r}", field="task") from None
        entry = self.fleet.types(online_only=False).get(task_spec.type, {})
        inputs, _ = catalog_ports(entry, task_spec.config)
        if port not in inputs:
            have = ", ".join(inputs) or "none"
            raise ConfigError(f"{deployment}/{task} has no input {port!r} (its inputs: {have})", field="port")
        replicas = [self.fleet.statuses.get((deployment, key)) for key, _ in task_spec.instances()]
        status = next((s for s in replicas if s is not None and s.state == "running"), replicas[0])
        state = status.state if status is not None else "no status yet"
        if state != "running":
            raise ConfigError(f"{deployment}/{task} is not running ({state}): nothing would read the frame",
                              field="task")
        try:
            payload = encode_frame(value)
        except EdgeError as exc:
            raise ConfigError(f"cannot send that value as a frame: {exc}", field="value") from None
        if status is None or status.agent is None:
            raise ConfigError(f"{deployment}/{task} has no agent yet: nothing would read the frame", field="task")
        topic = self.topics.inject(status.agent, deployment, task, port)
        await self.bus.publish(topic, payload, qos=1)
        log.info("injected a frame into %s/%s.%s", deployment, task, port)
        return topic

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

