"""The controller's live model of the fleet, built only from what the broker says.

:class:`Fleet` subscribes to every agent's retained state and catalog, every deployment spec and
every task status of one namespace, and keeps them current: an agent is online from its birth
until its will (or its own offline message) arrives; a deployment exists while its retained spec
does; a task's status is the last one its agent published. Readers get the parsed models, a
change callback, and :meth:`Fleet.synced` to know the retained state has all arrived.

Brokers bound what one SUBSCRIBE brings back: rumqttd (the embedded broker) sends at most 100
retained messages for a QoS 1 subscription and drops the rest, so with 200 agents a fresh fleet
saw ~150 of them, most with only their state or only their catalog. So once the round trip on
our ``sync`` topic has come back, the fleet looks for what it knows to be missing (the catalog
of an agent whose state came, and the other way round; the status of a task a spec names; the
agent a spec or status names) and fetches each retained topic alone (``edge.retained``); it
does the same, a moment later, for whatever appears half-known at any time (an agent the first
SUBSCRIBE did not bring, whose next state arrives live). Every retained topic is subscribed at
QoS 0, for which the embedded broker's cap is ours to set (``edge.broker.embedded``) and Mosquitto
queues without its 1000-message bound of QoS 1: every deployment arrives, a removal record
(``edge.desired``) is "not deployed", never a spec, and a cold controller of 2,000 agents has them
all when :meth:`synced` returns.

An agent's catalog holds its task types, or (revision 2, ``EDGE_SHARED_CATALOG``) the hash of a
shared catalog on ``{root}/catalogs/{hash}``: the fleet keeps each document whose sha256 matches
its hash (a mismatch, garbage or one over :data:`~edge.protocol.MAX_CATALOG_BYTES` is refused and
said on the agents naming it, :attr:`AgentInfo.catalog_problem`), gives its entries to every agent
naming it, and fetches one it lacks as it fetches any missing retained topic. An agent whose
document has not come is listed with no types and :attr:`AgentInfo.catalog_pending` set. Agents
publish their document at their first connect, not at every reconnect (``edge.presence``): one
the fleet still lacks once it fetched it alone (the broker lost it, a prune cleared it, garbage
took its place) it asks an online agent naming it for (``{root}/agents/{id}/catalog/request``),
one agent per document every :data:`REQUEST_INTERVAL`, :data:`MAX_REQUESTS` times at most (again
after that agent's next connect); :meth:`synced` waits a moment for those answers.

A task's retained status is sent when what it says changes; its live metrics come in the
agents' metrics batches (``edge.reporting``), which the fleet merges into :attr:`Fleet.statuses`:
only from the agent the task is placed on (an agent speaks only for itself), only while that agent
is online in the life (boot id) that sent them, never older than the status (``ts``), and only
into a status whose state has metrics (running, starting, failed). Once synced, the fleet asks
the online agents with running tasks for a full batch (:meth:`Fleet.request_metrics`), so within
one report interval it holds every task's current metrics; :meth:`Fleet.fresh_metrics` waits
for those answers (``edge ls tasks`` does). Agents send batches only during a request's lease
(``edge.reporting``): while a reader shows live metrics (the panel, while a browser is connected) it
holds :meth:`Fleet.watch`, and the fleet renews the lease of every agent with running tasks every
third of it (a lost request, at QoS 0, leaves two more chances), and asks an agent at once when a
task of it starts running meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from edge._cancel import cancel_and_wait
from edge._lograte import LogLimiter
from edge.bus import Bus, Message, Subscription
from edge.desired import Removal, decode_record
from edge.errors import EdgeError, FrameError, SpecError, TopicError
from edge.frames import decode_value, encode_value, split_map_tail
from edge.graph import DeploymentSpec
from edge.presence import catalog_hash
from edge.protocol import (
    MAX_CATALOG_BYTES,
    PROTOCOL_REVISION,
    AgentState,
    Catalog,
    CatalogDocument,
    CatalogRequest,
    MetricsBatch,
    MetricsRequest,
    TaskStatusMsg,
    ValidationError,
    problem,
)
from edge.retained import Prober
from edge.topics import TopicKind, Topics

__all__ = ["AgentInfo", "Fleet", "TaskStatus"]

log = logging.getLogger("edge.controller")

HISTORY = 60  # metric samples kept per agent (5 minutes at the agents' 5 s)
PROBE_DELAY = 0.5  # s the other half of something half-known may take to arrive by itself before we fetch it
MAX_PROBES = 1000  # retained topics fetched one by one in one pass, at most
PROBE_TIMEOUT = 10.0  # s one pass of fetching may take (the bus may be disconnected meanwhile)
FRESH_MARGIN = 1.0  # s fresh_metrics waits for the agents' full batches beyond their report interval
WATCH = 30.0  # s of the metrics lease the fleet asks for
#: distinct catalogs (their ``types`` byte for byte) whose entries are kept to give the next agent sending the
#: same bytes: a fleet runs a few software versions, so a few of them serve every agent (see :meth:`Fleet._catalog`)
CATALOG_CACHE = 64
CATALOG_CACHE_MIN = 4096  # bytes of a catalog payload under which decoding it is cheaper than looking it up
NO_CATALOG = "its catalog has not come"  # an agent whose state has: its types are unknown, not "none"
REQUEST_INTERVAL = 5.0  # s between two requests for one shared catalog the fleet lacks
MAX_REQUESTS = 12  # requests for one shared catalog before giving up on it (until an agent naming it reconnects)
REQUEST_WAIT = 2.0  # s synced() waits for the shared catalogs it asked agents for
#: reported states whose metrics an agent keeps sending in its batches
METRIC_STATES = frozenset({"running", "starting", "failed"})


@dataclass(slots=True)
class AgentInfo:
    """What the fleet knows of one agent."""

    id: str
    online: bool = False
    epoch: int = 0
    ts: int = 0
    version: str = ""
    #: the random token of the agent's process (a new one at each start): see :meth:`Fleet._apply_state`
    boot: str = ""
    #: control messages the agent could not understand since it started (its own count)
    errors: int = 0
    #: the shared catalog its catalog names (None: its types came inline)
    catalog: str | None = None
    #: the shared catalog it names that has not come (or was refused): its types are empty meanwhile
    catalog_pending: str | None = None
    #: why that shared catalog could not be used (one line), None while it is only on its way
    catalog_problem: str | None = None
    #: s between its metrics batches (None: an agent that sends none, whose statuses carry its metrics)
    report_interval: float | None = None
    host: dict[str, Any] = field(default_factory=dict)
    #: its catalog's entries; one list shared by the agents whose catalogs are the same bytes: read, never change
    types: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    #: the newest ``ts`` (ms, the agent's clock) of any of its state messages: a will carries its
    #: connect time, so the last birth or metrics update says when it was last heard of
    last_seen: int = 0
    #: (ts, cpu_percent, rss_mb) samples, oldest first, for sparklines
    history: deque[tuple[int, float, float]] = field(default_factory=lambda: deque(maxlen=HISTORY))

    def offers(self, type_name: str) -> bool:
        return any(t.get("name") == type_name and t.get("available", True) for t in self.types)

    @property
    def catalog_note(self) -> str | None:
        """Why its types are unknown, one line as every view says it (``edge ls``, the panel); None when known:
        the shared catalog it names was refused (:attr:`catalog_problem`) or has not come."""
        if self.catalog_problem is not None:
            return self.catalog_problem
        return None if self.catalog_pending is None else f"shared catalog {self.catalog_pending} not received"


@dataclass(slots=True)
class TaskStatus:
    """The last retained status of one task instance."""

    deployment: str
    task: str
    state: str
    agent: str | None = None
    type: str | None = None
    version: int = 0
    ts: int = 0
    restarts: int = 0
    error: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    #: the crash notice: the last crash's error and time (ms), until dismissed or run clean for a while
    last_error: str | None = None
    crashed_at: int | None = None
    #: the last few crashes as (error, when in ms), oldest first; kept after a dismissal
    errors: list[tuple[str, int]] = field(default_factory=list)
    #: when (ms, the agent's clock) :attr:`metrics` were measured: the status's ts, or a later batch's
    metrics_ts: int = 0


class Fleet:
    """Agents, deployments and task statuses of a namespace; ``async with Fleet(bus, topics) as fleet``."""

    def __init__(self, bus: Bus, topics: Topics) -> None:
        self.bus = bus
        self.topics = topics
        self.agents: dict[str, AgentInfo] = {}
        self.deployments: dict[str, DeploymentSpec] = {}
        #: deployments removed by a removal record on the broker (their topic holds it, not a spec)
        self.removed: dict[str, Removal] = {}
        self.statuses: dict[tuple[str, str], TaskStatus] = {}
        #: deployment id -> why its retained spec was refused (one line); agents refuse it too and keep
        #: running the version they had, which stays in :attr:`deployments` if this fleet saw it
        self.rejected: dict[str, str] = {}
        #: messages on our topics that could not be understood (each logged)
        self.errors = 0
        self._bad = LogLimiter(log)
        self._listeners: list[Callable[[str, str], None]] = []
        self._changed = asyncio.Event()
        self._subs: list[Subscription] = []
        self._sync_topic = topics.sync(uuid.uuid4().hex[:16])
        self._synced = asyncio.Event()
        self._states: set[str] = set()  # agents whose state we have
        self._catalogs: set[str] = set()  # agents whose catalog we have
        self._probed: set[str] = set()  # topics fetched once already: one with nothing retained stays missing
        self._types_made: dict[bool, tuple[int, dict[str, dict[str, Any]]]] = {}  # online_only -> (generation, types)
        self._types_generation = 0  # moves when an agent comes, goes, goes on or offline, or changes its catalog
        #: sha256 of a catalog's ``types`` bytes -> (its valid entries as dumped, a problem line per invalid one)
        self._catalog_cache: OrderedDict[bytes, tuple[list[dict[str, Any]], list[str]]] = OrderedDict()
        #: shared catalogs verified against their hash: hash -> (valid entries as dumped, problem lines)
        self._documents: OrderedDict[str, tuple[list[dict[str, Any]], list[str]]] = OrderedDict()
        self._refused: dict[str, str] = {}  # hash -> why the document on its topic was refused (one line)
        #: hash -> bytes of the document retained on its topic, verified or not (edge.controller.catalogs)
        self.catalog_documents: dict[str, int] = {}
        self._asked: dict[str, tuple[float, int]] = {}  # hash -> (loop time, count) of the requests for it
        #: requests sent to agents for a shared catalog the fleet lacked (edge.presence.Presence.answer)
        self.catalog_requests = 0
        self._prober = Prober(bus, self._sync_topic)
        self._wake = asyncio.Event()
        #: the last metrics each task's agent sent in a batch: (agent, ts, metrics)
        self._live: dict[tuple[str, str], tuple[str, int, dict[str, Any]]] = {}
        self._placed: dict[str, tuple[DeploymentSpec | None, dict[str, str]]] = {}  # dep -> (spec, task -> agent)
        #: the request synced() sent (and when), until fresh_metrics() waits on it, if soon after
        self._requested: dict[str, int] | None = None
        self._requested_at = 0.0
        self._full_batches: dict[str, int] = {}  # agent -> full batches received whole
        self._parts: dict[str, tuple[int, set[int]]] = {}  # agent -> (seq, parts received) of its full batch
        #: metrics batches ignored as not current (an offline agent's, another life's)
        self.stale_batches = 0
        #: s of the metrics lease this fleet asks for, renewed every third of it while watched
        self.lease = WATCH
        self._watchers: set[object] = set()
        self._watch_wake = asyncio.Event()
        self._leased: dict[str, float] = {}  # agent -> loop time its lease was last asked for, while watched
        self._stack: contextlib.AsyncExitStack | None = None

    async def __aenter__(self) -> Fleet:
        # everything entered so far is undone if a later step fails: the bus may be shared and live on
        async with contextlib.AsyncExitStack() as stack:
            stack.callback(self._subs.clear)
            # QoS 0: states, catalogs, statuses and specs are retained state, sent again on every
            # (re)subscribe. At QoS 1 a broker bounds what it holds for a client beyond the messages in
            # flight and drops the rest: Mosquitto 1000 (max_queued_messages; a cold controller of 2,000
            # agents had 1,615 listed when synced() returned), rumqttd 100 retained (see edge.retained).
            # The sync topic too, so its round trip comes after the retained messages, in the same stream.
            # Catalogs last: a broker sends each SUBACK after the retained messages of the filters before it,
            # and behind 2,000 catalogs of 80 KB the next SUBACK took over the bus's 10 s.
            self._subs.append(await stack.enter_async_context(
                self.bus.subscribe(self._sync_topic, qos=0, callback=self._on_sync)))
            for pattern in (self.topics.all_agent_states, self.topics.all_task_statuses(),
                            self.topics.all_agent_metrics, self.topics.all_deployments,
                            self.topics.all_agent_catalogs, self.topics.all_catalog_documents):
                self._subs.append(await stack.enter_async_context(
                    self.bus.subscribe(pattern, qos=0, callback=self._on_message)))
            probe_task = asyncio.get_running_loop().create_task(self._probe_loop(), name="fleet-probes")
            stack.push_async_callback(cancel_and_wait, probe_task)
            watch_task = asyncio.get_running_loop().create_task(self._watch_loop(), name="fleet-metrics-lease")
            stack.push_async_callback(cancel_and_wait, watch_task)
            self.bus.on_connect(self._request_sync)
            stack.callback(self.bus.remove_on_connect, self._request_sync)
            if self.bus.is_connected:
                await self._request_sync(self.bus)
            self._stack = stack.pop_all()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.aclose()

    async def _request_sync(self, bus: Bus) -> None:
        await bus.publish(self._sync_topic, b"sync", qos=1)

    def _on_sync(self, message: Message) -> None:
        if message.payload == b"sync":
            self._synced.set()
        else:
            self._prober.received(message.payload)

    async def synced(self, timeout: float = 5.0) -> None:
        """Wait until the retained states, catalogs, specs and statuses have all arrived.

        After the round trip on the sync topic, fetch one by one what is known to be missing
        (see the module docstring); a fetched status or spec can name an agent not yet seen,
        hence a few passes. :class:`TimeoutError` only when the round trip does not come back
        within ``timeout``; fetching stops at the deadline and what has arrived stands.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        async with asyncio.timeout_at(deadline):
            await self._synced.wait()
        try:  # fetching is a bonus: out of time (a slow link, many pending tasks), what we have stands
            async with asyncio.timeout_at(deadline):
                for _ in range(3):
                    missing = self.missing()
                    if not missing:
                        break
                    await self._probe(missing)
                asking = self._request_documents()
                if asking:  # asked agents for shared catalogs: they answer within a round trip
                    with contextlib.suppress(TimeoutError):
                        await self.wait_for(lambda f: not asking & f._wanted_documents().keys(), REQUEST_WAIT)
        except TimeoutError:
            log.warning("synced: out of time fetching %d retained topics one by one", len(self.missing()))
        self._requested = await self.request_metrics()
        self._requested_at = asyncio.get_running_loop().time()

    def _metric_agents(self) -> set[str]:
        """The online agents that send metrics batches and report a task in a state with metrics."""
        return {s.agent for s in self.statuses.values() if s.agent is not None and s.state in METRIC_STATES
                and (agent := self.agents.get(s.agent)) is not None and agent.online
                and agent.report_interval is not None}

    async def request_metrics(self) -> dict[str, int]:
        """Ask the online agents with running tasks for a full metrics batch (they answer within one report
        interval) and a lease of :attr:`lease` s; agent -> full batches received so far, to tell their
        answers (:meth:`fresh_metrics`)."""
        asked = {agent: self._full_batches.get(agent, 0) for agent in sorted(self._metric_agents())}
        self._requested = None
        if self.bus.is_connected:
            for agent in asked:
                self._ask(agent)
        return asked

    def _ask(self, agent: str) -> None:
        """Send ``agent`` a metrics request with a lease of :attr:`lease` s (QoS 0: a lost one is renewed)."""
        try:
            payload = encode_value(MetricsRequest(v=PROTOCOL_REVISION, watch=self.lease).dump())
            self.bus.publish_nowait(self.topics.agent_metrics_request(agent), payload, qos=0)
        except EdgeError as exc:
            log.warning("could not ask agent %s for its metrics: %s", agent, exc)
            return
        self._leased[agent] = asyncio.get_running_loop().time()

    def watch(self, watcher: object) -> None:
        """``watcher`` shows live metrics: keep every agent with running tasks sending them (see the module
        docstring) until :meth:`unwatch`; watching twice with one watcher counts once."""
        self._watchers.add(watcher)
        self._watch_wake.set()

    def unwatch(self, watcher: object) -> None:
        """``watcher`` no longer shows live metrics; with no watcher left the leases run out (:attr:`lease`)."""
        self._watchers.discard(watcher)

    @property
    def watched(self) -> bool:
        return bool(self._watchers)

    async def _watch_loop(self) -> None:
        """While watched, renew the metrics lease of every agent with running tasks every third of it."""
        while True:
            await self._watch_wake.wait()
            self._watch_wake.clear()
            if not self._watchers:
                self._leased.clear()
                continue
            if self.bus.is_connected:
                for agent in sorted(self._metric_agents()):
                    self._ask(agent)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.lease / 3):
                    await self._watch_wake.wait()  # a new watcher: renew (harmless) and go on
            self._watch_wake.set()

    def _lease_for(self, agent: str | None, state: str) -> None:
        """A status of ``agent`` in ``state`` came while watched: ask it now if its lease was not asked for
        (a task of it started running since the last renewal)."""
        if not self._watchers or agent is None or state not in METRIC_STATES or agent in self._leased:
            return
        info = self.agents.get(agent)
        if info is not None and info.online and info.report_interval is not None and self.bus.is_connected:
            self._ask(agent)

    def _answered(self, agent: str, asked_at: int) -> bool:
        """``agent`` sent a full batch since it was asked (at ``asked_at`` of them), or is gone."""
        info = self.agents.get(agent)
        return self._full_batches.get(agent, 0) > asked_at or info is None or not info.online

    async def fresh_metrics(self, timeout: float | None = None) -> bool:
        """Ask for (:meth:`request_metrics`) and wait for every running task's current metrics; False if some
        agent did not answer within ``timeout`` (default: the longest report interval of those asked plus
        :data:`FRESH_MARGIN`); their tasks keep the metrics of their last status or batch."""
        # the request synced() just sent stands (asking again within an interval waits for the next report);
        # a later reader asks anew: the answer to that one says nothing of the counts since
        recent = asyncio.get_running_loop().time() - self._requested_at < FRESH_MARGIN
        asked = self._requested if self._requested is not None and recent else await self.request_metrics()
        self._requested = None
        if timeout is None:
            timeout = max((a.report_interval or 0.0 for n in asked if (a := self.agents.get(n))), default=0.0)
            timeout += FRESH_MARGIN
        try:
            await self.wait_for(lambda f: all(f._answered(a, n) for a, n in asked.items()), timeout)
        except TimeoutError:
            log.info("metrics: no full batch within %.1f s from %s", timeout,
                     ", ".join(a for a, n in asked.items() if self._full_batches.get(a, 0) <= n))
            return False
        return True

    def missing(self) -> list[str]:
        """Retained topics the fleet knows it lacks and has not fetched one by one yet (sorted, bounded)."""
        topics = self.topics
        wanted = {topics.agent_catalog(a) for a in self._states - self._catalogs}
        wanted |= {topics.agent_state(a) for a in self._catalogs - self._states}
        named = {s.agent for s in self.statuses.values() if s.agent is not None}
        for spec in self.deployments.values():
            for task in spec.tasks:
                for key, agent in task.instances():  # each replica has a status of its own
                    if agent is not None:
                        named.add(agent)
                    if (spec.id, key) not in self.statuses:
                        wanted.add(topics.task_status(spec.id, key))
        for agent in named - self._states - self._catalogs:
            wanted |= {topics.agent_state(agent), topics.agent_catalog(agent)}
        wanted |= {topics.catalog_document(a.catalog_pending) for a in self.agents.values()
                   if a.catalog_pending is not None and a.catalog_pending not in self._refused}
        return sorted(wanted - self._probed)[:MAX_PROBES]

    def _wanted_documents(self) -> dict[str, list[str]]:
        """Shared catalogs online agents name that the fleet lacks after fetching them alone, or refused: hash ->
        the online agents naming it."""
        wanted: dict[str, list[str]] = {}
        for agent in self.agents.values():
            digest = agent.catalog_pending
            if digest is not None and agent.online and (
                    digest in self._refused or self.topics.catalog_document(digest) in self._probed):
                wanted.setdefault(digest, []).append(agent.id)
        return wanted

    def _request_documents(self) -> set[str]:
        """Ask one online agent per wanted shared catalog to publish it again (each one every
        :data:`REQUEST_INTERVAL`, the agents naming it in turn); the hashes still being asked for."""
        if not self.bus.is_connected:
            return set()
        now = asyncio.get_running_loop().time()
        asking: set[str] = set()
        for digest, agents in self._wanted_documents().items():
            last, count = self._asked.get(digest, (-REQUEST_INTERVAL, 0))
            if count >= MAX_REQUESTS:
                continue
            asking.add(digest)
            if now - last < REQUEST_INTERVAL:
                continue
            agent = sorted(agents)[count % len(agents)]
            try:
                payload = encode_value(CatalogRequest(v=PROTOCOL_REVISION, catalog=digest).dump())
                self.bus.publish_nowait(self.topics.agent_catalog_request(agent), payload, qos=1)
            except EdgeError as exc:
                log.warning("could not ask agent %s for the shared catalog %s: %s", agent, digest, exc)
                continue
            self._asked[digest] = (now, count + 1)
            self.catalog_requests += 1
            if count + 1 == MAX_REQUESTS:
                log.warning("asked %d times for the shared catalog %s that agents %s name; none sent it (an agent "
                            "older than the request?): asking again when one of them reconnects", MAX_REQUESTS,
                            digest, ", ".join(sorted(agents)[:3]))
        return asking

    def catalog_note(self, agent: AgentInfo) -> str | None:
        """Why ``agent``'s types are unknown, one line (``edge ls agents``, the panel): its
        :attr:`AgentInfo.catalog_note`, or :data:`NO_CATALOG` while its state has come and its catalog has not."""
        note = agent.catalog_note
        if note is None and agent.id in self._states and agent.id not in self._catalogs:
            return NO_CATALOG
        return note

    def document_problem(self, digest: str) -> str | None:
        """Why the shared catalog retained under ``digest`` was refused (one line), None if it was not."""
        return self._refused.get(digest)

    @property
    def catalogs_unknown(self) -> list[str]:
        """The agents whose state came and whose catalog has not (sorted): what shared catalog they name is unknown."""
        return sorted(self._states - self._catalogs)

    async def round_trip(self) -> None:
        """A round trip on our sync topic: what the broker had for us when it got there has arrived on return."""
        await self._prober.round_trip()

    @property
    def probes(self) -> int:
        """Retained topics fetched one by one because a wildcard subscription did not bring them."""
        return self._prober.fetched

    async def _probe(self, topics: list[str]) -> None:
        self._probed.update(topics)
        await self._prober.fetch(topics, qos=0)  # that of the wildcards: see Prober.fetch

    async def _probe_loop(self) -> None:
        """Later on, fetch what shows up half-known (an agent the first SUBSCRIBE left out reports live), and
        ask for the shared catalogs still missing once fetched (every :data:`REQUEST_INTERVAL`)."""
        while True:
            if self._request_documents():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(REQUEST_INTERVAL):
                        await self._wake.wait()
            else:
                await self._wake.wait()
            await asyncio.sleep(PROBE_DELAY)  # its other half is usually on its way
            self._wake.clear()
            missing = self.missing()
            if not missing or not self.bus.is_connected:
                continue
            try:
                async with asyncio.timeout(PROBE_TIMEOUT):
                    await self._probe(missing)
            except (TimeoutError, EdgeError) as exc:
                log.warning("could not fetch %d retained topics: %s", len(missing), exc or type(exc).__name__)

    def on_change(self, listener: Callable[[str, str], None]) -> None:
        """Call ``listener(kind, key)`` on every change; kind is agent, deployment or status."""
        self._listeners.append(listener)

    # -- views -----------------------------------------------------------------------------------------
    @property
    def online(self) -> list[AgentInfo]:
        return [a for a in self.agents.values() if a.online]

    def types(self, *, online_only: bool = True) -> dict[str, dict[str, Any]]:
        """The catalog across agents: type name -> its entry plus ``agents`` offering it (a copy: the caller's).

        Merged again only when an agent's catalog or liveness changed since (10,000 agents of 72 types
        take ~130 ms to merge; the panel and the controller ask on every spec, status view and inject)."""
        made = self._types_made.get(online_only)
        if made is None or made[0] != self._types_generation:
            made = (self._types_generation, self._merge_types(online_only))
            self._types_made[online_only] = made
        return {name: {**entry, "agents": list(entry["agents"])} for name, entry in made[1].items()}

    def _merge_types(self, online_only: bool) -> dict[str, dict[str, Any]]:
        merged: dict[str, dict[str, Any]] = {}
        for agent in sorted(self.agents.values(), key=lambda a: a.id):
            if online_only and not agent.online:
                continue
            for entry in agent.types:
                name = entry.get("name")
                if not isinstance(name, str):
                    continue
                if name not in merged:
                    merged[name] = {**entry, "agents": []}
                if entry.get("available", True):
                    merged[name]["agents"].append(agent.id)
                    if merged[name].get("available") is False:  # available somewhere: show that entry
                        merged[name] = {**entry, "agents": merged[name]["agents"]}
        return merged

    def tasks_of(self, deployment: str) -> list[TaskStatus]:
        return [s for (dep, _), s in sorted(self.statuses.items()) if dep == deployment]

    def load(self) -> dict[str, int]:
        """Task instances per agent, from the specs (pinned or placed)."""
        counts = {a.id: 0 for a in self.agents.values()}
        for spec in self.deployments.values():
            for task in spec.tasks:
                for _, agent in task.instances():  # each replica of a task is an instance
                    if agent is not None:
                        counts[agent] = counts.get(agent, 0) + 1
        return counts

    async def wait_for(self, predicate: Callable[[Fleet], bool], timeout: float) -> None:
        """Wait until ``predicate(fleet)`` holds (:class:`TimeoutError` after ``timeout`` s)."""
        async with asyncio.timeout(timeout):
            while not predicate(self):
                self._changed.clear()
                await self._changed.wait()

    # -- updates ---------------------------------------------------------------------------------------
    def _on_message(self, message: Message) -> None:
        self._probed.discard(message.topic)
        try:
            parsed = self.topics.parse(message.topic)
            kind = parsed.kind
            if kind is TopicKind.CATALOG_DOCUMENT:
                assert parsed.catalog is not None
                if message.payload:
                    self.catalog_documents[parsed.catalog] = len(message.payload)
                else:
                    self.catalog_documents.pop(parsed.catalog, None)
                for agent_id in self._on_document(parsed.catalog, message.payload):
                    self._notify("agent", agent_id)
            elif kind in (TopicKind.AGENT_STATE, TopicKind.AGENT_CATALOG):
                assert parsed.agent_id is not None
                key = parsed.agent_id
                self._on_agent(kind, key, message.payload)
                self._notify("agent", key)
            elif kind is TopicKind.DEPLOYMENT:
                assert parsed.deployment_id is not None
                key = parsed.deployment_id
                try:
                    record = decode_record(key, message.payload)
                except SpecError as exc:  # agents refuse it too and keep running what they had
                    self.rejected[key] = _one_line(exc)
                    self._notify("deployment", key)
                    raise
                if isinstance(record, DeploymentSpec):
                    if self.deployments.get(key) != record:
                        self._wake.set()
                    self.deployments[key] = record
                    self.removed.pop(key, None)
                else:  # removed, or nothing there: not deployed
                    self.deployments.pop(key, None)
                    self._placed.pop(key, None)
                    if record is None:
                        self.removed.pop(key, None)
                    else:
                        self.removed[key] = record
                self.rejected.pop(key, None)
                self._notify("deployment", key)
            elif kind is TopicKind.TASK_STATUS:
                assert parsed.deployment_id is not None and parsed.task_id is not None
                self._on_status(parsed.deployment_id, parsed.task_id, message.payload)
                self._notify("status", f"{parsed.deployment_id}/{parsed.task_id}")
            elif kind is TopicKind.AGENT_METRICS:
                assert parsed.agent_id is not None
                for dep, task in self._on_metrics(parsed.agent_id, message.payload):
                    self._notify("status", f"{dep}/{task}")
        except (TopicError, FrameError, SpecError, AssertionError, ValidationError) as exc:
            self.errors += 1
            reason = problem(exc) if isinstance(exc, ValidationError) else _one_line(exc)
            self._bad.warning(message.topic, "ignored message on %r: %s", message.topic, reason)

    def _on_agent(self, kind: TopicKind, agent_id: str, payload: bytes) -> None:
        halves = self._states if kind is TopicKind.AGENT_STATE else self._catalogs
        if not payload:
            halves.discard(agent_id)
            agent = self.agents.pop(agent_id, None)
            if agent is not None:
                agent.online = False
                self._types_generation += 1
            return
        # validated before anything changes: garbage leaves the model as it was
        state = AgentState.model_validate(decode_value(payload)) if kind is TopicKind.AGENT_STATE else None
        types = self._catalog(payload) if kind is TopicKind.AGENT_CATALOG else None
        if agent_id not in halves:
            halves.add(agent_id)
            self._wake.set()
        known = self.agents.get(agent_id)
        agent = known or AgentInfo(id=agent_id)
        before = (agent.online, agent.types)
        if state is not None:
            life = (agent.boot, agent.epoch)
            self._apply_state(agent, state)
            if (agent.boot, agent.epoch) != life or not agent.online:
                self._leased.pop(agent_id, None)  # a new life (or connection) holds no lease: asked anew
        elif types is not None:
            entries, problems = types
            agent.catalog = agent.catalog_pending = agent.catalog_problem = None
            if isinstance(problems, str):  # a shared catalog's hash
                agent.catalog = problems
                entries, problems = self._documents.get(agent.catalog, ([], []))
                if agent.catalog in self._documents:
                    self._documents.move_to_end(agent.catalog)
                else:
                    agent.catalog_pending = agent.catalog
                    agent.catalog_problem = self._refused.get(agent.catalog)
                    if agent.catalog in self._asked:  # it connected again: worth asking again
                        self._asked[agent.catalog] = (self._asked[agent.catalog][0], 0)
                    self._wake.set()  # fetched alone if it does not come by itself, else asked for
            for line in problems:  # one bad type does not hide the agent's others
                self.errors += 1
                self._bad.warning(f"{agent_id}/catalog/{line.split(':', 1)[0]}",
                                  "ignored a catalog entry of agent %s: %s", agent_id, line)
            agent.types = entries
        if known is None or before[0] != agent.online or before[1] is not agent.types:
            self._types_generation += 1
        self.agents[agent_id] = agent

    def _catalog(self, payload: bytes) -> tuple[list[dict[str, Any]], list[str] | str]:
        """A catalog's valid entries (as dumped) and a problem line per invalid one, or (no entries and) the
        hash of the shared catalog it names; raises if it is garbage.

        Agents of one software version send the same entries byte for byte, only their id, epoch and
        boot differ (``types`` comes last: :class:`~edge.presence.Presence`). Decoding and validating
        80 KB of entries costs tens of ms, hashing them well under one: so the entries are made once
        per distinct ``types`` bytes (kept for :data:`CATALOG_CACHE` of them, least recently sent out
        first) and every agent sending those bytes shares the one list."""
        split = split_map_tail(payload, "types") if len(payload) >= CATALOG_CACHE_MIN else None
        key = b""
        if split is not None and "types" not in split[0]:
            head, tail = split
            key = hashlib.sha256(tail).digest()
            cached = self._catalog_cache.get(key)
            if cached is not None:
                Catalog.model_validate(head)  # its own keys, still checked
                self._catalog_cache.move_to_end(key)
                return cached
        catalog = Catalog.model_validate(decode_value(payload))
        if catalog.catalog is not None:
            return [], catalog.catalog
        entries, problems = catalog.entries()
        made = [entry.model_dump(exclude_unset=True) for entry in entries], problems
        if key:
            self._catalog_cache[key] = made
            while len(self._catalog_cache) > CATALOG_CACHE:
                self._catalog_cache.popitem(last=False)
        return made

    def _on_document(self, digest: str, payload: bytes) -> list[str]:
        """A shared catalog: verified against its hash and kept, its entries given to the agents naming it;
        the agents that changed. A refused one (with the reason) leaves a verified copy in place."""
        if not payload or digest in self._documents:
            return []  # cleared, or the same bytes again (a hash names one content): nothing new
        problem_line = None
        if len(payload) > MAX_CATALOG_BYTES:
            problem_line = f"{len(payload):,} bytes, over the limit of {MAX_CATALOG_BYTES:,}"
        elif catalog_hash(payload) != digest:
            problem_line = "its content does not match its hash"
        else:
            try:
                document = CatalogDocument.model_validate(decode_value(payload))
            except (FrameError, ValidationError) as exc:
                problem_line = problem(exc) if isinstance(exc, ValidationError) else _one_line(exc)
        waiting = [a for a in self.agents.values() if a.catalog_pending == digest]
        if problem_line is not None:
            reason = f"shared catalog {digest} refused: {problem_line}"
            self._refused[digest] = reason
            for agent in waiting:
                agent.catalog_problem = reason
            self.errors += 1
            self._bad.warning(f"catalogs/{digest}", "ignored the shared catalog %s: %s", digest, problem_line)
            return [a.id for a in waiting]
        entries, problems = document.entries()
        made = [entry.model_dump(exclude_unset=True) for entry in entries], problems
        self._refused.pop(digest, None)
        self._asked.pop(digest, None)
        self._documents[digest] = made
        named = {a.catalog for a in self.agents.values()}
        for old in [d for d in self._documents if d not in named][:max(0, len(self._documents) - CATALOG_CACHE)]:
            del self._documents[old]  # nobody names it: kept only among the last few
        for line in problems:
            self.errors += 1
            self._bad.warning(f"catalogs/{digest}/{line.split(':', 1)[0]}", "ignored an entry of the shared "
                              "catalog %s: %s", digest, line)
        for agent in waiting:
            agent.types, agent.catalog_pending, agent.catalog_problem = made[0], None, None
        if waiting:
            self._types_generation += 1
        return [a.id for a in waiting]

    @staticmethod
    def _apply_state(agent: AgentInfo, state: AgentState) -> None:
        """Liveness (docs/protocol.md): another boot id is another life of the agent, whatever its
        epoch; within one life a lower epoch is a stale message; an offline state counts only for
        the life it names, so a late will of an earlier life or a spoofed one does not hide a live agent."""
        same_life = state.boot == agent.boot
        if same_life and state.epoch < agent.epoch:
            return  # a stale message from an earlier connection of this life
        if not same_life and not state.online and agent.online:
            return  # the offline state of another life: not this one's
        agent.boot = state.boot
        agent.epoch = state.epoch
        agent.online = state.online
        agent.ts = state.ts or agent.ts
        agent.last_seen = max(agent.last_seen, agent.ts)
        agent.version = state.version
        agent.host = dict(state.host)
        agent.errors = state.errors
        agent.report_interval = state.report_interval
        metrics = state.metrics
        if metrics and agent.online:
            agent.metrics = dict(metrics)
            cpu, rss = metrics.get("cpu_percent"), metrics.get("rss_mb")
            if isinstance(cpu, int | float) and isinstance(rss, int | float):
                agent.history.append((agent.ts, float(cpu), float(rss)))

    def _on_status(self, dep: str, task: str, payload: bytes) -> None:
        if not payload:
            self.statuses.pop((dep, task), None)
            self._live.pop((dep, task), None)
            return
        status = TaskStatusMsg.model_validate(decode_value(payload))
        if (dep, task) not in self.statuses:
            self._wake.set()
        shown = TaskStatus(
            deployment=dep, task=task, state=status.state, agent=status.agent, type=status.type,
            version=status.version, ts=status.ts, restarts=status.restarts, error=status.error,
            metrics=status.metrics.model_dump(exclude_unset=True), last_error=status.last_error,
            crashed_at=status.crashed_at, errors=[(crash.error, crash.at) for crash in status.errors],
            metrics_ts=status.ts)
        live = self._live.get((dep, task))
        if live is not None and live[0] == shown.agent and live[1] > shown.ts and shown.state in METRIC_STATES:
            shown.metrics, shown.metrics_ts = live[2], live[1]  # a batch measured after this status
        self.statuses[(dep, task)] = shown
        self._lease_for(shown.agent, shown.state)

    def _placed_on(self, dep: str, task: str) -> str | None:
        """The agent the spec gives the task, else the one that reported its status."""
        placed = self._placed.get(dep)
        if placed is None or placed[0] is not self.deployments.get(dep):
            spec = self.deployments.get(dep)
            placed = (spec, {key: agent for t in spec.tasks for key, agent in t.instances() if agent is not None}
                            if spec is not None else {})
            self._placed[dep] = placed
        if task in placed[1]:
            return placed[1][task]
        status = self.statuses.get((dep, task))
        return status.agent if status is not None else None

    def _on_metrics(self, agent_id: str, payload: bytes) -> list[tuple[str, str]]:
        """Merge a metrics batch of ``agent_id`` (see the module docstring); the tasks whose metrics changed."""
        batch = MetricsBatch.model_validate(decode_value(payload))
        agent = self.agents.get(agent_id)
        if agent is None or not agent.online or batch.boot != agent.boot or batch.epoch < agent.epoch:
            self.stale_batches += 1
            return []
        entries, problems = batch.entries()
        for line in problems:  # one bad entry does not hide the others
            self.errors += 1
            self._bad.warning(f"{agent_id}/metrics/{line.split(':', 1)[0]}",
                              "ignored a metrics entry of agent %s: %s", agent_id, line)
        changed: list[tuple[str, str]] = []
        for entry in entries:
            key = (entry.deployment, entry.task)
            if self._placed_on(*key) != agent_id:
                continue  # not a task of this agent: it speaks only for itself
            metrics = entry.metrics.model_dump(exclude_unset=True)
            self._live[key] = (agent_id, batch.ts, metrics)
            status = self.statuses.get(key)
            if status is not None and status.agent == agent_id and status.state in METRIC_STATES \
                    and batch.ts >= status.metrics_ts:
                status.metrics, status.metrics_ts = metrics, batch.ts
                changed.append(key)
        if batch.full:
            seq, parts = self._parts.get(agent_id, (-1, set()))
            if seq != batch.seq:
                seq, parts = batch.seq, set()
            parts.add(batch.part)
            self._parts[agent_id] = (seq, parts)
            if len(parts) >= batch.parts:
                self._full_batches[agent_id] = self._full_batches.get(agent_id, 0) + 1
                self._parts.pop(agent_id, None)
                self._changed.set()
        return changed

    def _notify(self, kind: str, key: str) -> None:
        self._changed.set()
        for listener in self._listeners:
            try:
                listener(kind, key)
            except Exception:
                log.exception("fleet listener %r failed", listener)


def _one_line(exc: Exception) -> str:
    """An error as one line: a spec error's heading, its first problem and how many more."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()] or [type(exc).__name__]
    more = f" (and {len(lines) - 2} more)" if len(lines) > 2 else ""
    return " ".join(lines[:2])[:300] + more
