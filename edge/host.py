"""The runtime that runs task instances for one agent id: the heart of an agent.

A :class:`Host` announces its agent (``edge.presence``), subscribes to the retained deployment
specs of its namespace and **reconciles** to them: for every task pinned to its agent id it
starts an instance (``edge.instance``), stops instances whose task left the spec, restarts
those whose type, config or wiring changed, and leaves the rest untouched. The specs it
applies are kept under its state dir (atomic writes), so after a reboot it resumes them at
once, before the broker is reachable again.

A controller asks it to clear a task's crash notice on ``{root}/agents/{id}/dismiss`` (a CBOR map
``{"deployment", "task", "before"}``, never retained); it clears it and republishes the status.

A deployment is removed only by a removal record retained on its topic (``edge.desired``):
absence proves nothing, since brokers lose retained messages. After each connect the agent makes
a round trip on its own ``sync`` topic: once that comes back, the broker has delivered the
retained specs its wildcard subscription brings (all of them at QoS 0 on our brokers; at most
100 at QoS 1 on the embedded one); each deployment the agent holds (on disk, spec or removal)
that did not come is fetched alone (``edge.retained``), and if the broker still has nothing, or
something older, the agent publishes its own copy again (highest version wins, a removal beats
a spec of the same version).

The agent daemon (``agent/``) is a Host with the task types it discovered and system metrics;
an ``@fn_task`` script is a Host offering its one type (:func:`run_agent`), or a single
instance wired straight to topics (:func:`run_wired`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import Any

from edge._cancel import cancel_and_wait
from edge._lograte import LogLimiter
from edge.bus import Bus, Message
from edge.desired import Record, Removal, decode_record, encode_record, supersedes
from edge.documents import HealthFile
from edge.errors import ConfigError, EdgeError, FrameError, IdError, SpecError, TopicError
from edge.files import files_folder
from edge.frames import decode_value, now_ms
from edge.graph import DeploymentSpec
from edge.hass import HassLink, availability_will
from edge.instance import Assignment, Instance
from edge.local import LocalStreams
from edge.presence import Presence
from edge.protocol import (
    DEFAULT_WATCH,
    CatalogEntry,
    DismissRequest,
    MetricsRequest,
    TaskMetrics,
    TaskState,
    ValidationError,
    Watch,
    problem,
)
from edge.reporting import MetricsBatcher, StatusPublisher
from edge.retained import Prober
from edge.secrets import Secrets
from edge.settings import Settings
from edge.storage import write_atomic
from edge.task import Ports, Task, TaskContext, why_unavailable
from edge.topics import TopicKind, Topics, is_valid_id, matches, validate_filter, validate_id
from edge.validation import answer_request, decode_request

__all__ = ["Host", "run_agent", "run_wired"]

log = logging.getLogger("edge.host")

STATUS_INTERVAL = 2.0
REPORT_SLICE = 250  # tasks whose metrics are gathered between two yields to the other tasks
STATE_INTERVAL = 5.0
RECOVER_TIMEOUT = 60.0  # s fetching and republishing after a connect may take, at most


class Host:
    """Runs the task instances deployments assign to ``agent_id``; an async context manager."""

    def __init__(self, settings: Settings, *, types: Sequence[type[Task]],
                 unavailable: Mapping[str, str] | None = None, agent_id: str | None = None,
                 metrics: Callable[[], dict[str, Any]] | None = None, persist: bool = True,
                 status_interval: float = STATUS_INTERVAL, state_interval: float = STATE_INTERVAL) -> None:
        self.settings = settings
        self.agent_id = agent_id or settings.agent_id
        self.topics = Topics(settings.namespace)
        self.types = {t.type_name: t for t in types}
        self.unavailable = dict(unavailable or {})
        self.state_dir = settings.data_dir / "agents" / self.agent_id if persist else None
        self.secrets = Secrets(settings.secrets_path, agent_id=self.agent_id)
        #: the only folder its tasks may read and write files in (edge.files)
        self.files_dir = settings.files_path
        for what, path in (("secrets file", settings.secrets_path), ("state", settings.data_dir / "agents")):
            if path.absolute().resolve().is_relative_to(self.files_dir.resolve()):
                raise ConfigError(f"EDGE_FILES_DIR {self.files_dir} holds the agent's {what} ({path}): tasks could "
                                  "read or overwrite it; choose a folder of its own (default {data_dir}/files)",
                                  field="EDGE_FILES_DIR")
        self._metrics = metrics
        self._last_metrics: dict[str, Any] = {}
        self.presence = Presence(topics=self.topics, agent_id=self.agent_id, state_dir=self.state_dir,
                                 catalog=self.catalog, metrics=self._measure if metrics else None,
                                 errors=lambda: self.errors,
                                 report_interval=status_interval, shared_catalog=settings.shared_catalog)
        # a persistent session: the broker keeps the inputs' subscriptions, and queues the QoS 1
        # frames they take, while this agent or the broker restarts (edge.bus, docs/reliability.md)
        self.bus = Bus.from_settings(settings, client_id=self.topics.client_id("agent", self.agent_id),
                                     will=self.presence.will, wait_connected=False, clean_start=False,
                                     session_expiry=settings.session_expiry)
        self.bus.on_connect(self._on_connect)
        #: the link to Home Assistant (EDGE_HASS_DISCOVERY), on a connection of its own: its will is
        #: the plain "offline" Home Assistant reads, where this bus's is our CBOR state (edge.hass)
        self.hass: HassLink | None = None
        self._hass_bus: Bus | None = None
        if settings.hass_discovery:
            self._hass_bus = Bus.from_settings(settings, client_id=self.topics.client_id("hass", self.agent_id),
                                               will=availability_will(self.topics, self.agent_id),
                                               wait_connected=False)
            self.hass = HassLink(bus=self._hass_bus, topics=self.topics, agent_id=self.agent_id,
                                 prefix=settings.hass_prefix, health=self._hass_health,
                                 health_keys=["tasks_running", "tasks_failed", "errors",
                                              *(["cpu_percent", "rss_mb"] if metrics else [])])
        #: the specs being applied, by deployment id
        self.specs: dict[str, DeploymentSpec] = {}
        #: deployments removed by a removal record, by id (kept, to publish again if the broker loses it)
        self.removed: dict[str, Removal] = {}
        #: records published again because the broker had lost them or held older ones
        self.republished = 0
        #: injected frames for tasks not running here (dropped, warned)
        self.injects_dropped = 0
        self.instances: dict[tuple[str, str], Instance] = {}
        #: frames between our tasks handed over in-process, and who watches those streams (edge.local)
        self.local = LocalStreams()
        #: retained messages on our control topics that could not be understood (each logged)
        self.errors = 0
        self._bad_specs = LogLimiter(log)
        self.started = asyncio.Event()
        self._runners: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._dirty = asyncio.Event()
        # deployment id -> the bus session it was last seen in
        self._seen: dict[str, int] = {}
        self._sync_token = ""
        self._prober = Prober(self.bus, self._sync_topic)
        self._recovering: asyncio.Task[None] | None = None
        self._closing = False
        self._status_interval = status_interval
        self._statuses = StatusPublisher(bus=self.bus, topics=self.topics, agent_id=self.agent_id)
        self._report_now = asyncio.Event()
        self._batcher = MetricsBatcher(bus=self.bus, topic=self.topics.agent_metrics(self.agent_id),
                                       interval=status_interval, max_payload=settings.max_payload,
                                       identity=lambda: (self.presence.boot, self.presence.epoch))
        self._state_interval = state_interval
        self._group: asyncio.TaskGroup | None = None
        self._stack: contextlib.AsyncExitStack | None = None
        self._loops: list[asyncio.Task[None]] = []

    @property
    def epoch(self) -> int:
        """Increases on every connect, across restarts."""
        return self.presence.epoch

    # -- catalog ---------------------------------------------------------------------------------
    def catalog(self) -> list[dict[str, Any]]:
        """The catalog's entries as published, each through :class:`edge.protocol.CatalogEntry`: a type whose
        ``describe()`` breaks the model (a third party's override) is offered as unavailable, with why."""
        entries = [self._entry(t) for t in self.types.values()]
        entries += [CatalogEntry(name=name, available=False, reason=reason).dump()
                    for name, reason in self.unavailable.items() if is_valid_id(name)]
        return sorted(entries, key=lambda e: str(e["name"]))

    def _entry(self, task_type: type[Task]) -> dict[str, Any]:
        try:
            entry = CatalogEntry.model_validate(task_type.describe())
            # what this agent lacks for it (its settings, its devices), whatever describe() found
            reason = why_unavailable(task_type, self.settings)
            return entry.model_copy(update={"available": reason is None, "reason": reason}).dump()
        except ValidationError as exc:
            why = f"its catalog entry breaks the protocol: {problem(exc)}"
            log.warning("agent %s: task type %s is not offered: %s", self.agent_id, task_type.type_name, why)
            return CatalogEntry(name=task_type.type_name, available=False, reason=why).dump()

    # -- lifecycle -------------------------------------------------------------------------------
    async def __aenter__(self) -> Host:
        self._load_persisted()
        try:
            self.files_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            log.warning("agent %s cannot create its files folder %s: %s", self.agent_id, self.files_dir, exc)
        # what is entered is left in reverse order, also when a later step fails: bus last
        async with contextlib.AsyncExitStack() as stack:
            await stack.enter_async_context(self.bus)
            if self.hass is not None and self._hass_bus is not None:  # left after the tasks removed their entities
                await stack.enter_async_context(self._hass_bus)
                await stack.enter_async_context(self.hass)
            self._group = group = asyncio.TaskGroup()
            await group.__aenter__()
            stack.push_async_callback(group.__aexit__, None, None, None)
            stack.push_async_callback(self._stop_all)
            # QoS 0: retained specs are state, sent again on every (re)subscribe; at QoS 1 rumqttd
            # sends at most 100 of them (see edge.retained), and what it leaves out we fetch alone
            await self.bus.subscribe(self.topics.all_deployments, qos=0, callback=self._on_spec)
            await self.bus.subscribe(self._sync_topic, qos=1, callback=self._on_sync)
            await self.bus.subscribe(self.topics.agent_validate(self.agent_id), qos=1, callback=self._on_validate)
            await self.bus.subscribe(self.topics.agent_dismiss(self.agent_id), qos=1, callback=self._on_dismiss)
            await self.bus.subscribe(self.topics.agent_injects(self.agent_id), qos=1, callback=self._on_inject)
            await self.bus.subscribe(self.topics.agent_metrics_request(self.agent_id), qos=0,
                                     callback=self._on_metrics_request)
            if self.presence.shared_catalog:
                await self.bus.subscribe(self.topics.agent_catalog_request(self.agent_id), qos=1,
                                         callback=lambda m: self.presence.answer(self.bus, m.payload))
            await self.bus.subscribe(self.topics.watch, qos=0, callback=self._on_watch)
            self._loops = [group.create_task(self._reconcile_loop(), name=f"reconcile-{self.agent_id}"),
                           group.create_task(self._report_loop(), name=f"report-{self.agent_id}")]
            self._dirty.set()
            self._stack = stack.pop_all()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.__aexit__(exc_type, exc, tb)
        log.info("agent %s stopped", self.agent_id)

    async def _stop_all(self) -> None:
        """Stop the loops, then every instance, then say we are offline (while the bus is still up)."""
        self._closing = True
        for task in [*self._loops, *([self._recovering] if self._recovering else [])]:
            await cancel_and_wait(task)  # first, so that reconciling starts nothing while we stop
        self.bus.keep_session()  # the inputs stay subscribed at the broker, for our next run
        for key in list(self._runners):
            await self._stop_instance(key, clear=False)
        if self.bus.is_connected:
            with contextlib.suppress(EdgeError, OSError, TimeoutError):
                async with asyncio.timeout(5):  # a stuck socket must not hang the shutdown
                    await self.presence.publish_state(self.bus, online=False)

    async def run(self) -> None:
        """Serve until cancelled."""
        await asyncio.Event().wait()

    @property
    def _sync_topic(self) -> str:
        return self.topics.agent_sync(self.agent_id)

    async def _on_connect(self, bus: Bus) -> None:
        try:
            await self.presence.announce(bus)
        except EdgeError as exc:  # e.g. a catalog over max_payload: say so, and still serve
            self.errors += 1
            log.error("agent %s could not announce itself fully: %s", self.agent_id, exc)
        for instance in self.instances.values():  # statuses published while offline were dropped
            self._statuses.publish(instance, force=True)
        self._batcher.want_full()  # readers missed the batches sent meanwhile
        self._sync_token = uuid.uuid4().hex
        await bus.publish(self._sync_topic, self._sync_token.encode(), qos=1)
        self.started.set()

    # -- specs in --------------------------------------------------------------------------------
    def _on_spec(self, message: Message) -> None:
        try:
            parsed = self.topics.parse(message.topic)
        except TopicError:
            return  # a status: deployments/+ does not match .../status/+, but be safe
        if parsed.kind is not TopicKind.DEPLOYMENT or parsed.deployment_id is None:
            return
        dep = parsed.deployment_id
        # retained specs arrive while the bus resubscribes, before our on_connect hook runs: the
        # bus's session number tells this connection's deliveries from an earlier one's
        self._seen[dep] = self.bus.session
        try:
            theirs = decode_record(dep, message.payload)
        except SpecError as exc:
            self.errors += 1
            self._bad_specs.error(message.topic, "ignored an invalid spec on %s: %s", message.topic, exc)
            return
        mine = self._held(dep)
        if mine is not None and supersedes(mine, theirs):
            self._republish(mine, theirs)
        elif isinstance(theirs, Removal):
            if self.removed.get(dep) != theirs:
                self.removed[dep] = theirs
                self._persist(theirs)
            if self.specs.pop(dep, None) is not None:
                log.info("deployment %s removed (version %d)", dep, theirs.version)
                self._dirty.set()
        elif theirs is not None and self.specs.get(dep) != theirs:
            self.specs[dep] = theirs
            self.removed.pop(dep, None)
            self._persist(theirs)
            self._dirty.set()

    def _held(self, dep: str) -> Record | None:
        return self.specs.get(dep) or self.removed.get(dep)

    def _republish(self, mine: Record, theirs: Record | None, *, level: int = logging.WARNING) -> None:
        """The broker lost our record or holds an older one: publish ours again (``edge.desired``)."""
        what = "nothing" if theirs is None else f"version {theirs.version}"
        kind = "removal" if isinstance(mine, Removal) else "spec"
        log.log(level, "the broker holds %s for deployment %s: publishing this agent's %s (version %d) again",
                what, mine.id, kind, mine.version)
        try:
            self.bus.publish_nowait(self.topics.deployment(mine.id), encode_record(mine), qos=1, retain=True)
        except EdgeError as exc:
            log.warning("could not publish deployment %s again: %s", mine.id, exc)
            return
        self.republished += 1

    def _on_sync(self, message: Message) -> None:
        if self._prober.received(message.payload):
            return
        if message.payload.decode(errors="replace") != self._sync_token or self._group is None or self._closing:
            return
        if self._recovering is not None and not self._recovering.done():
            self._recovering.cancel()  # a new connection: its own pass starts over
        self._recovering = self._group.create_task(self._recover(self.bus.session), name=f"recover-{self.agent_id}")

    async def _recover(self, session: int) -> None:
        """Fetch alone what we hold that the wildcard did not bring; publish ours where the broker has nothing."""
        missing = sorted(d for d in {*self.specs, *self.removed} if self._seen.get(d) != session)
        if not missing:
            return
        try:
            async with asyncio.timeout(RECOVER_TIMEOUT):
                await self._prober.fetch([self.topics.deployment(d) for d in missing], qos=0)  # as subscribed
        except (TimeoutError, EdgeError) as exc:
            log.warning("agent %s could not fetch %d deployments one by one (%s): it keeps its copies",
                        self.agent_id, len(missing), exc or type(exc).__name__)
            return
        if self.bus.session != session:
            return  # reconnected meanwhile: that connection does its own pass
        lost = [d for d in missing if self._seen.get(d) != session]
        if lost:
            log.warning("agent %s: the broker has nothing for %d deployments it holds (%s): publishing them again",
                        self.agent_id, len(lost), ", ".join(lost[:5]) + (", ..." if len(lost) > 5 else ""))
        for dep in lost:
            if (mine := self._held(dep)) is not None:
                self._republish(mine, None, level=logging.INFO)

    def _on_inject(self, message: Message) -> None:
        """A frame a controller injects into an input of one of our tasks: to that task's inbox."""
        try:
            parsed = self.topics.parse(message.topic)
        except TopicError:
            return
        key = (parsed.deployment_id or "", parsed.task_id or "")
        instance = self.instances.get(key) or next(  # a task with replicas: the first of them here
            (i for k, i in sorted(self.instances.items()) if k[0] == key[0] and i.assignment.task == key[1]), None)
        task = instance.task if instance is not None else None
        if task is None or parsed.port is None:
            self.injects_dropped += 1
            self._bad_specs.warning(f"inject {key}", "dropped a frame injected into %s/%s: the task is not running "
                                    "on agent %s", *key, self.agent_id)
            return
        task.take_injected(parsed.port, message)

    def _on_watch(self, message: Message) -> None:
        """Someone looks at streams: those of ours handed over in-process go to the broker meanwhile."""
        try:
            watch = Watch.model_validate(decode_value(message.payload))
            validate_filter(watch.filter)
        except (FrameError, ValidationError, TopicError) as exc:
            self.errors += 1
            reason = problem(exc) if isinstance(exc, ValidationError) else str(exc)
            self._bad_specs.warning("watch", "ignored a watch message: %s", reason)
            return
        self.local.watch(watch.filter, watch.lease)

    def _on_validate(self, message: Message) -> None:
        """Answer a controller's validation request with the types' own checks (``edge.validation``)."""
        try:
            request = decode_request(message.payload)
            reply_kind = self.topics.parse(request.reply_to).kind
            if reply_kind is not TopicKind.REPLY:
                raise ConfigError(f"reply_to {request.reply_to!r} is not a replies topic", field="reply_to")
        except (ConfigError, TopicError) as exc:
            self.errors += 1
            log.warning("agent %s ignored a validation request on %s: %s", self.agent_id, message.topic, exc)
            return
        with files_folder(self.files_dir):
            reply = answer_request(request, agent_id=self.agent_id, types=self.types, resolve=self.secrets.resolve)
        try:
            self.bus.publish_nowait(request.reply_to, reply, qos=1)
        except EdgeError as exc:
            log.warning("agent %s could not answer the validation request %s: %s", self.agent_id, request.id, exc)
    def _on_dismiss(self, message: Message) -> None:
        """Clear a task's crash notice (see :meth:`Instance.dismiss`) and say so in its status."""
        try:
            request = DismissRequest.model_validate(decode_value(message.payload))
        except (FrameError, ValidationError) as exc:
            self.errors += 1
            why = problem(exc) if isinstance(exc, ValidationError) else str(exc)
            log.warning("agent %s ignored a dismissal on %s: %s", self.agent_id, message.topic, why)
            return
        dep, task, before = request.deployment, request.task, request.before
        instance = self.instances.get((dep, task))
        if instance is not None and instance.dismiss(before):
            log.info("crash notice of %s dismissed", instance.instance_id)
            self._publish_status(instance)

    # -- persistence -----------------------------------------------------------------------------
    def _spec_path(self, dep: str) -> Path | None:
        return None if self.state_dir is None else self.state_dir / "deployments" / f"{dep}.cbor"

    def _persist(self, record: Record) -> None:
        """Keep the spec, or the removal record, of a deployment on disk (see ``edge.desired``)."""
        path = self._spec_path(record.id)
        if path is not None:
            try:
                write_atomic(path, encode_record(record))
            except OSError as exc:
                self.errors += 1
                log.error("could not save deployment %s to %s: %s", record.id, path, exc)

    def _load_persisted(self) -> None:
        if self.state_dir is None:
            return
        for path in sorted((self.state_dir / "deployments").glob("*.cbor")):
            try:
                record = decode_record(validate_id(path.stem, "deployment id"), path.read_bytes())
            except (SpecError, IdError, OSError) as exc:
                self.errors += 1
                log.error("ignored the unreadable saved spec %s: %s", path, exc)
                continue
            if isinstance(record, Removal):
                self.removed[record.id] = record
            elif record is not None:
                self.specs[record.id] = record
                log.info("resuming deployment %s (version %d) from %s", record.id, record.version, path)

    # -- reconciling -----------------------------------------------------------------------------
    def desired(self) -> dict[tuple[str, str], Assignment]:
        """The instances this agent should run, from the specs it has (and which of their inputs are fed
        in-process: :meth:`_local_streams`)."""
        wanted: dict[tuple[str, str], Assignment] = {}
        waiting: dict[tuple[str, str], set[str]] = {}  # (deployment, task) -> its inputs that wait for QoS 1
        for spec in self.specs.values():
            for task in spec.tasks:
                mine = [i for i, (_, agent) in enumerate(task.instances()) if agent == self.agent_id]
                if not mine:
                    continue
                task_type = self.types.get(task.type)
                outputs: list[str] = []
                if task_type is not None:
                    ports = self._ports(task_type, task.config)
                    outputs = list(ports.outputs)
                    waiting[(spec.id, task.id)] = {*task.wait, *(name for name, port in ports.inputs.items()
                                                                 if port.overflow == "wait")}
                sources = spec.sources(task.id, self.topics)
                if task.replicas > 1:  # each frame to one replica: a shared subscription per input
                    sources = {port: self.topics.shared(spec.id, task.id, source) for port, source in sources.items()}
                for index in mine:
                    assignment = Assignment(
                        deployment=spec.id, task=task.id, type=task.type, config=dict(task.config),
                        sources=sources, targets=spec.targets(task.id, outputs, self.topics),
                        version=spec.version, inject=True, wait=task.wait,
                        replica=index if task.replicas > 1 else None, merged=spec.merged(task.id))
                    wanted[assignment.key] = assignment
        if not self.settings.local_streams:
            return wanted
        local = self._local_streams(wanted, waiting)
        for key, a in wanted.items():
            fed = tuple(sorted(port for port, source in a.sources.items() if source in local))
            if fed:
                wanted[key] = replace(a, local=fed)
        return wanted

    def _local_streams(self, wanted: Mapping[tuple[str, str], Assignment],
                       waiting: Mapping[tuple[str, str], set[str]]) -> set[str]:
        """The stream topics of our tasks whose every consumer, in every spec, is a task of ours that reads
        that very topic (no wildcard, no shared subscription) on an input that does not wait for QoS 1
        (``waiting``: those of each of our tasks of a known type)."""
        produced = {topic for a in wanted.values() for topics in a.targets.values() for topic in topics[:1]}
        exact: dict[str, bool] = {}  # stream topic -> all its consumers so far can be fed in-process
        filters: list[str] = []  # the sources that are filters: a stream one of them matches goes to the broker
        for spec in self.specs.values():
            agents = {task.id: task.agent for task in spec.tasks}
            replicated = {task.id for task in spec.tasks if task.replicas > 1}
            for edge in spec.edges:
                target, source = edge.target, edge.source
                if target.task is None or target.port is None:
                    continue
                topic = spec.source_topic(edge, self.topics)
                if "+" in topic or "#" in topic or topic.startswith("$"):
                    filters.append(topic.split("/", 2)[2] if topic.startswith("$share/") else topic)
                    continue
                if topic not in produced or source.task in replicated:
                    continue  # a task with replicas: its stream has producers on other agents too
                mine = agents.get(target.task) == self.agent_id and target.task not in replicated  # (a replica
                # reads through a shared subscription)
                waits = waiting.get((spec.id, target.task))  # None: not ours, or of a type we do not have
                exact[topic] = exact.get(topic, True) and mine and waits is not None and target.port not in waits
        return {topic for topic, fed in exact.items() if fed and not any(matches(f, topic) for f in filters)}

    def _ports(self, task_type: type[Task], config: dict[str, Any]) -> Ports:
        """The ports of an instance of ``task_type`` with ``config``; the declared ones if the config is
        invalid (the instance then reports ``invalid`` and publishes nothing)."""
        try:
            with files_folder(self.files_dir):
                valid = task_type.validate_config(self.secrets.resolve(config))
            return task_type.ports(valid)
        except EdgeError:  # an invalid config or an unknown secret: the instance says so itself
            pass
        except Exception:  # a bug in a type's ports() must not stop the agent reconciling
            log.exception("the ports of type %r failed on agent %s", task_type.type_name, self.agent_id)
        return Ports(inputs=task_type.inputs, outputs=task_type.outputs)

    async def _reconcile_loop(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            try:
                await self.reconcile()
            except Exception:  # a bug must not stop the agent from applying later specs
                log.exception("reconciling failed on agent %s", self.agent_id)

    async def reconcile(self) -> None:
        wanted = self.desired()
        # the streams whose readers are all fed in-process: set before an instance starts or is rewired
        self.local.set_local({a.sources[port] for a in wanted.values() for port in a.local})
        for key in [k for k in self.instances if k not in wanted]:
            log.info("stopping %s/%s: no longer in its deployment", *key)
            await self._stop_instance(key, clear=key[0] not in self.specs or self._task_removed(key))
        for key, assignment in wanted.items():
            current = self.instances.get(key)
            if current is not None and current.assignment.same_as(assignment):
                if current.assignment.local != assignment.local:  # who else reads a stream changed: no restart
                    await current.rewire(assignment)
                if current.assignment.version != assignment.version:
                    current.assignment = assignment
                    self._publish_status(current)
                continue
            if current is not None:
                log.info("restarting %s/%s: its spec changed", *key)
                await self._stop_instance(key, clear=False)
            self._start_instance(assignment)

    def _task_removed(self, key: tuple[str, str]) -> bool:
        spec = self.specs.get(key[0])
        return spec is None or all(key[1] not in dict(t.instances()) for t in spec.tasks)

    def _start_instance(self, assignment: Assignment) -> None:
        task_type = self.types.get(assignment.type)
        reason = self.unavailable.get(assignment.type)
        if task_type is not None and (why := why_unavailable(task_type, self.settings)) is not None:
            task_type, reason = None, why  # a device, a permission it lacks: refused like an unknown type, with why
        if task_type is None and reason is None:
            offered = ", ".join(sorted(self.types)) or "none"
            reason = f"unknown task type {assignment.type!r} on agent {self.agent_id} (it offers: {offered})"
        elif reason is not None:
            reason = f"task type {assignment.type!r} is unavailable on agent {self.agent_id}: {reason}"
        if task_type is not None:  # wires the controller would refuse, in a spec published around it
            unknown = sorted(set(assignment.sources) - set(self._ports(task_type, assignment.config).inputs))
            if unknown:
                log.warning("%s/%s: input(s) %s wired in the spec are not ports of this %s with its config: "
                            "nothing is read from them", *assignment.key, ", ".join(unknown), assignment.type)
            not_inputs = sorted(set(assignment.wait) - set(self._ports(task_type, assignment.config).inputs))
            if not_inputs:
                log.warning("%s/%s: wait names %s, not input(s) of this %s with its config: ignored",
                            *assignment.key, ", ".join(not_inputs), assignment.type)
        instance = Instance(assignment, task_type, bus=self.bus, on_status=self._publish_status, unavailable=reason,
                            resolve=self.secrets.resolve, max_payload=self.settings.max_payload,
                            queue_size=self.settings.queue_size, queue_bytes=self.settings.queue_bytes,
                            queue_age=self.settings.queue_age, files_dir=self.files_dir, hass=self.hass,
                            queue_stall=self.settings.queue_stall, local=self.local)
        self.instances[assignment.key] = instance
        assert self._group is not None
        run = instance.supervise() if assignment.replica is None or task_type is None else self._run_replica(instance)
        self._runners[assignment.key] = self._group.create_task(run, name=f"task-{instance.instance_id}")

    async def _run_replica(self, instance: Instance) -> None:
        """A replica on a connection of its own: its inputs' shared subscriptions must be the only ones
        of that client (a broker sends a client one copy per matching subscription, and the agent's bus
        routes each copy to every local subscriber matching it), so two replicas on one agent, or a
        replica and another task reading the same stream, each get exactly their frames."""
        key = instance.assignment.key
        client_id = self.topics.replica_client_id(self.agent_id, key[0], key[1])
        connected = asyncio.Event()

        async def on_connect(bus: Bus) -> None:
            connected.set()

        bus = Bus.from_settings(self.settings, client_id=client_id, wait_connected=False)
        bus.on_connect(on_connect)
        async with bus:
            await connected.wait()  # subscribed when it says it runs: frames from then on reach it
            instance.bus = bus
            await instance.supervise()

    async def _stop_instance(self, key: tuple[str, str], *, clear: bool) -> None:
        runner = self._runners.pop(key, None)
        instance = self.instances.pop(key, None)
        if runner is not None:
            await cancel_and_wait(runner)
        self._batcher.forget(key)
        if instance is None or clear:
            self._statuses.forget(key)
        if instance is None:
            return
        if clear:  # the task is gone from its deployment: so is its status
            with contextlib.suppress(EdgeError):
                await self.bus.publish(self.topics.task_status(*key), b"", qos=1, retain=True)
            return
        if instance.state not in ("invalid",):
            instance.state, instance.error = "stopped", None
        self._statuses.publish(instance)  # at once, not coalesced: the final state, also when the agent stops

    # -- reporting -------------------------------------------------------------------------------
    def _measure(self) -> dict[str, Any]:
        """The metrics callable's map, kept for Home Assistant's sensors (one call per state: CPU % is
        over the interval since the last call)."""
        assert self._metrics is not None
        self._last_metrics = self._metrics()
        return self._last_metrics

    def _hass_health(self) -> dict[str, Any]:
        """The agent's health for Home Assistant's sensors (``edge.hass.HEALTH_SENSORS``)."""
        states = [instance.state for instance in self.instances.values()]
        return {"tasks_running": states.count("running"), "tasks_failed": states.count("failed"),
                "errors": self.errors, **self._last_metrics}

    def _publish_status(self, instance: Instance) -> None:
        """``instance`` changed state: its retained status goes within ``edge.reporting.COALESCE`` s.

        Statuses are published when what they say changes, metrics in batches (``edge.reporting``):
        a broker that saves every retained change (the managed Mosquitto) is not kept busy by busy
        tasks. Liveness comes from the agent's state.
        """
        self._statuses.changed(instance)

    async def _report(self, *, full: bool) -> None:
        """Check every running task's status (a crash notice expires) and send the metrics batch.

        In slices of :data:`REPORT_SLICE` tasks, letting the others run between them: 10,000 tasks'
        metrics take a few hundred ms to gather."""
        current: dict[tuple[str, str], TaskMetrics] = {}
        for i, (key, instance) in enumerate(list(self.instances.items())):
            if i and i % REPORT_SLICE == 0:
                await asyncio.sleep(0)
            if self.instances.get(key) is instance and instance.state in ("running", "failed", "starting"):
                status = instance.status_msg(agent=self.agent_id)  # one metrics call per report: rates over 1 interval
                self._statuses.publish(instance, status=status)
                if "metrics" in status.model_fields_set:
                    current[key] = status.metrics
        self._batcher.publish({k: m for k, m in current.items() if k in self.instances}, full=full)

    def _on_metrics_request(self, message: Message) -> None:
        """A reader wants every task's metrics: a full batch now, or at the next report if one went
        less than an interval ago; then the changed ones for the request's lease (``edge.reporting``).
        A payload that is not a :class:`~edge.protocol.MetricsRequest` asks for the default lease."""
        watch = DEFAULT_WATCH
        if message.payload:
            try:
                watch = MetricsRequest.model_validate(decode_value(message.payload)).watch
            except (FrameError, ValidationError) as exc:
                self._bad_specs.warning("metrics-request", "agent %s: a metrics request it cannot read (%s): "
                                           "answered with the default lease of %.0f s", self.agent_id,
                                           problem(exc) if isinstance(exc, ValidationError) else exc, watch)
        self._batcher.watch(watch)
        self._batcher.want_full()
        if self._batcher.full_allowed:
            self._report_now.set()

    def _write_health(self) -> None:
        """``health.json`` in the state dir, for ``edge health`` (a container's HEALTHCHECK).

        Replaced by a rename, so a reader never sees half of it, but not synced: it is a heartbeat
        (after a power cut a stale one is what ``edge health`` reports anyway), and the two fsyncs
        of write_atomic every 2 s stalled the event loop, so every task's frames, for ~9 ms here
        (more on an SD card, which they also wear)."""
        if self.state_dir is None:
            return
        health = HealthFile(agent=self.agent_id, connected=self.bus.is_connected, ts=now_ms(), pid=os.getpid(),
                            tasks={"/".join(key): TaskState(i.state) for key, i in self.instances.items()},
                            errors=self.errors, epoch=self.presence.epoch, boot=self.presence.boot)
        path = self.state_dir / "health.json"
        try:
            write_atomic(path, health.model_dump_json().encode(), durable=False)
        except OSError as exc:
            log.warning("could not write %s: %s", path, exc)

    async def _report_loop(self) -> None:
        """Metrics of running instances every few seconds (sooner when asked for all), and the agent's
        state with its own."""
        loop = asyncio.get_running_loop()
        next_state = loop.time() + self._state_interval
        next_report = loop.time() + self._status_interval
        while True:
            self._write_health()
            if self.hass is not None:  # Home Assistant sees the agent as its tasks' connection is
                self.hass.set_available(self.bus.is_connected)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(next_report):
                    await self._report_now.wait()  # a request for all metrics
            self._report_now.clear()
            due = loop.time() >= next_report
            if due:
                next_report = max(next_report + self._status_interval, loop.time())
            if not self.bus.is_connected:
                continue
            await self._report(full=self._batcher.full_wanted)
            if not due:
                continue
            if loop.time() >= next_state:
                next_state = loop.time() + self._state_interval
                with contextlib.suppress(EdgeError):
                    await self.presence.publish_state(self.bus)
                if self.hass is not None:
                    self.hass.publish_health()


async def run_agent(settings: Settings, *, types: Sequence[type[Task]], agent_id: str | None = None,
                    unavailable: Mapping[str, str] | None = None) -> None:
    """Announce an agent offering ``types`` and run what deployments assign to it, until cancelled."""
    async with Host(settings, types=types, agent_id=agent_id, unavailable=unavailable) as host:
        await host.run()


async def run_wired(settings: Settings, task_type: type[Task], *, config: Mapping[str, Any],
                    sources: Mapping[str, str], targets: Mapping[str, list[str]], instance_id: str) -> None:
    """Run one instance wired straight to topics, without a controller, until cancelled or it ends."""
    with files_folder(settings.files_path):
        validated = task_type.validate_config(config)
    async with Bus.from_settings(settings, client_id=Topics(settings.namespace).client_id("fn", instance_id)) as bus:
        context = TaskContext(bus=bus, instance_id=instance_id, sources=sources, targets=targets,
                              max_payload=settings.max_payload, queue_size=settings.queue_size,
                              queue_bytes=settings.queue_bytes, queue_age=settings.queue_age,
                              files_dir=settings.files_path, queue_stall=settings.queue_stall)
        task = task_type(validated, context=context)
        try:
            await task.open_inputs()
            log.info("%s running: inputs %s, outputs %s", instance_id, dict(sources), dict(targets))
            await task.run()
        finally:
            await task.close()
