"""Light simulated agents for ``bench/scale.py --light N``: thousands per process, each on its own MQTT connection.

A real ``edge.host.Host`` per simulated agent costs a few ms of CPU to come up and a task group of
loops to keep; 10,000 of them in 8 processes starved on a 2-core machine and timed the simulators,
not the controller (docs/benchmarks.md, "10,000 live agents: what this machine held"). A
:class:`LightAgent` is what the broker and the controller see of an idle ``edge agent`` and
nothing more, on the cheapest client we have:

* **its own connection**: an ``edge.bus`` MQTT 5 connection (``Mqtt5Transport``: the sans-I/O
  session of ``edge.bus._mqtt5_session`` in an asyncio protocol), with the CONNECT of a real
  agent's bus (made by a :class:`~edge.bus.Bus` built as ``Host`` builds it and never entered: the
  same client id, keep-alive, persistent session and session expiry, receive maximum, packet limit);
* **the same bytes**: the will is :meth:`Presence.will` (the offline state of a new epoch), then
  the subscriptions a ``Host`` makes (specs, its sync, validate, dismiss, inject and metrics-request
  topics, watch, and with shared catalogs its catalog-request topic; one SUBACK, as the bus
  resubscribes), the retained birth state
  (:meth:`Presence.state`, with ``edge agent``'s process metrics), the catalog (inline, or naming
  the shared catalog: :class:`~edge.protocol.Catalog`) and the round trip on its sync topic;
  the state again on the ``Host``'s report schedule (every :data:`~edge.host.STATE_INTERVAL` s,
  on its :data:`~edge.host.STATUS_INTERVAL` s ticks: every 6 s); on leaving, the offline state
  then DISCONNECT. Messages it receives (the deployment specs every agent reads, its sync echo)
  are counted and acknowledged, not acted on: it runs no task; a request for its shared catalog
  is answered as :meth:`Presence.answer` does (the document again, at most every
  :data:`~edge.presence.REQUEST_INTERVAL` s).
* **one difference, by default**: with shared catalogs a real agent publishes the ~80 KB
  catalog document at its first connect, the same bytes as every other agent of its version; here
  the first agent of each process does (``--document once``), unless ``--document each``.

The task types are ``bench/scale.py``'s (``edge agent``'s, plus the sample counter the real agents
of the run need), their catalog worked out once per process, so a light agent's shared catalog
names the same document as the real agents of the run.

Births are paced: the process starts its agents at ``--rate`` per second (``bench/scale.py``
gives each process its share of ``--birth-rate``), so the controller is timed per agent rather
than against a herd the simulators could not deliver; how late the process fell behind that
schedule is reported, as are connection losses (none, unless the simulators starve).

Run by ``bench/scale.py`` as a child process (stdin: ``go`` then ``stop``; stdout: ``ready``, then
one JSON line of :class:`Counts` once all have left)::

    python bench/light_agents.py --url URL --ns NS --first 0 --count 5000 --rate 500 --catalog shared
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import math
import random
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))
SAMPLES = HERE.parent / "tests" / "agent" / "sample_tasks.py"
RECONNECT = (0.1, 10.0)  # s, as the bus's reconnect_delay: first, largest
LEAVE_TIMEOUT = 5.0  # s an agent's offline state may take to be acknowledged when it leaves (the bus's flush)


def light_id(i: int) -> str:
    return f"light-{i:05d}"


def fleet_types(catalog: str) -> tuple[list[Any], dict[str, str]]:
    """The task types the run's agents offer, and those unavailable: ``full``/``shared``, what ``edge agent``
    offers plus the sample counter (the deployment's type); ``sample``, the three sample types."""
    spec = importlib.util.spec_from_file_location("sample_tasks", SAMPLES)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if catalog == "sample":
        return [module.Counter, module.Scale, module.Ticker], {}
    from agent.registry import discover

    registry = discover()
    return [*registry.types.values(), module.Counter], registry.unavailable


@dataclass
class Counts:
    """What one process's light agents did."""

    agents: int = 0
    started: int = 0  # births begun (all of them, unless stopped first)
    connects: int = 0
    losses: int = 0  # connections lost (keep-alive missed, reset): a starved simulator
    connect_failures: int = 0
    states: int = 0  # heartbeats sent (births and leavings not counted)
    received: int = 0
    received_mb: float = 0.0
    late_max_s: float = 0.0  # how far behind its schedule the process began a birth, at most
    cpu_s: float = 0.0  # the process's CPU from go until it was told to stop


class SharedDocument:
    """The shared catalog's document and its hash, worked out once per process as ``Presence.shared`` does."""

    def __init__(self, entries: list[dict[str, Any]], *, each: bool) -> None:
        from edge.frames import encode_value
        from edge.presence import catalog_hash
        from edge.protocol import PROTOCOL_REVISION, CatalogDocument

        self.payload = encode_value(CatalogDocument(v=PROTOCOL_REVISION, types=entries).dump())
        self.digest = catalog_hash(self.payload)
        self.each = each  # every agent publishes it at its first connect (a real agent does), or the first one once
        self.published = False

    def due(self, first_connect: bool) -> bool:
        if (self.each and first_connect) or not self.published:
            self.published = True
            return True
        return False


class LightAgent:
    """One simulated idle agent (see the module docstring): :meth:`run` until :meth:`leave`."""

    def __init__(self, settings: Any, *, agent_id: str, entries: list[dict[str, Any]],
                 metrics: Callable[[], dict[str, Any]] | None, document: SharedDocument | None, counts: Counts) -> None:
        from edge.bus import Bus
        from edge.bus._mqtt5 import Mqtt5Transport
        from edge.host import STATE_INTERVAL, STATUS_INTERVAL
        from edge.presence import Presence
        from edge.topics import Topics

        self.agent_id = agent_id
        self.topics = topics = Topics(settings.namespace)
        self.presence = Presence(topics=topics, agent_id=agent_id, state_dir=None, catalog=lambda: entries,
                                 metrics=metrics, errors=lambda: 0, report_interval=STATUS_INTERVAL,
                                 shared_catalog=document is not None)
        # never entered: the connect options (and so the CONNECT bytes) of the bus a Host makes
        self._bus = Bus.from_settings(settings, client_id=topics.client_id("agent", agent_id),
                                      will=self.presence.will, wait_connected=False, clean_start=False,
                                      session_expiry=settings.session_expiry)
        self._transport = Mqtt5Transport()
        self._document = document
        self._counts = counts
        # the broker's filters of a Host's subscriptions (edge.host.Host.__aenter__), as its bus resubscribes them
        self._filters = sorted([(topics.all_deployments, 0), (topics.agent_sync(agent_id), 1),
                                (topics.agent_validate(agent_id), 1), (topics.agent_dismiss(agent_id), 1),
                                (topics.agent_injects(agent_id), 1), (topics.agent_metrics_request(agent_id), 0),
                                (topics.watch, 0)]
                               + ([(topics.agent_catalog_request(agent_id), 1)] if document is not None else []))
        self._request_topic = topics.agent_catalog_request(agent_id)
        self._connected_before = False
        self._answered_at = -float("inf")
        self._state_topic = topics.agent_state(agent_id)
        self.conn: Any = None
        self._leaving = False
        self._timer: asyncio.TimerHandle | None = None
        self._t0 = 0.0
        self._status_interval, self._state_interval = STATUS_INTERVAL, STATE_INTERVAL

    # -- the connection -----------------------------------------------------------------------------
    async def run(self) -> None:
        """Connect, announce, serve the heartbeat; again after a lost connection (with the bus's backoff)."""
        from edge.errors import EdgeError

        loop = asyncio.get_running_loop()
        self._t0 = loop.time()  # the Host's report loop starts when it is entered
        self._schedule(self._t0 + self._state_interval)
        delay = RECONNECT[0]
        while not self._leaving:
            try:
                conn = await self._transport.connect(self._bus._options(), self._on_message)
            except (EdgeError, OSError) as exc:
                self._counts.connect_failures += 1
                print(f"{self.agent_id}: {exc}", file=sys.stderr, flush=True)
            else:
                delay = RECONNECT[0]
                try:
                    await conn.subscribe(self._filters)
                    if self._leaving:  # told to leave while it was connecting
                        await conn.disconnect()
                        break
                    self.conn = conn
                    self._counts.connects += 1
                    self._announce(conn)
                    cause = await conn.wait_closed()
                except (EdgeError, OSError, TimeoutError) as exc:
                    cause = exc
                    conn.abort()
                self.conn = None
                if cause is None or self._leaving:
                    break
                self._counts.losses += 1
                print(f"{self.agent_id} lost its connection: {cause}", file=sys.stderr, flush=True)
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, RECONNECT[1])

    def _on_message(self, topic: str, payload: bytes, qos: int, retain: bool) -> None:
        counts = self._counts
        counts.received += 1
        counts.received_mb += len(payload) / 2**20
        if topic == self._request_topic:
            self._answer(payload)

    def _answer(self, payload: bytes) -> None:
        """A controller lacks a shared catalog: publish the document again if it is this agent's (Presence.answer)."""
        from pydantic import ValidationError

        from edge.errors import FrameError
        from edge.frames import decode_value
        from edge.presence import REQUEST_INTERVAL
        from edge.protocol import CatalogRequest

        document, conn = self._document, self.conn
        try:
            digest = CatalogRequest.model_validate(decode_value(payload)).catalog
        except (FrameError, ValidationError):
            return
        now = asyncio.get_running_loop().time()
        if document is None or conn is None or digest != document.digest or now - self._answered_at < REQUEST_INTERVAL:
            return
        self._answered_at = now
        conn.publish(self.topics.catalog_document(digest), document.payload, 1, True)

    def _announce(self, conn: Any) -> None:
        """What ``Host._on_connect`` publishes: ``Presence.announce`` (state, [document,] catalog), then the sync."""
        from edge.frames import encode_value
        from edge.protocol import PROTOCOL_REVISION, Catalog

        presence = self.presence
        conn.publish(self._state_topic, encode_value(presence.state(online=True)), 1, True)
        document = self._document
        if document is not None:
            if document.due(first_connect=not self._connected_before):
                conn.publish(self.topics.catalog_document(document.digest), document.payload, 1, True)
            catalog = Catalog(v=PROTOCOL_REVISION, agent=self.agent_id, epoch=presence.epoch, boot=presence.boot,
                              catalog=document.digest).dump()  # Presence.shared()'s, without re-encoding the document
        else:
            catalog = presence.catalog()
        conn.publish(self.topics.agent_catalog(self.agent_id), encode_value(catalog), 1, True)
        conn.publish(self.topics.agent_sync(self.agent_id), uuid.uuid4().hex.encode(), 1, False)
        self._connected_before = True

    # -- the heartbeat ------------------------------------------------------------------------------
    def _schedule(self, after: float) -> None:
        """At the first tick of the Host's report loop (every STATUS_INTERVAL s from its start) from ``after``."""
        ticks = max(1, math.ceil((after - self._t0) / self._status_interval - 1e-9))
        self._timer = asyncio.get_running_loop().call_at(self._t0 + ticks * self._status_interval, self._beat)

    def _beat(self) -> None:
        from edge.errors import EdgeError
        from edge.frames import encode_value

        now = asyncio.get_running_loop().time()
        conn = self.conn
        if conn is None or conn.closed:  # the Host skips its report while disconnected, and sends it when back
            self._schedule(now + self._status_interval / 2)
            return
        with contextlib.suppress(EdgeError):
            conn.publish(self._state_topic, encode_value(self.presence.state(online=True)), 1, True)
            self._counts.states += 1
        self._schedule(now + self._state_interval)

    async def leave(self) -> None:
        """As a Host leaves: the offline state, its acknowledgement awaited (bounded), then DISCONNECT."""
        from edge.errors import EdgeError
        from edge.frames import encode_value

        self._leaving = True
        if self._timer is not None:
            self._timer.cancel()
        conn = self.conn
        if conn is None or conn.closed:
            return
        with contextlib.suppress(EdgeError, OSError):
            conn.publish(self._state_topic, encode_value(self.presence.state(online=False)), 1, True)
            await conn.flush(LEAVE_TIMEOUT)
            await conn.disconnect()


# -- a process of them ------------------------------------------------------------------------------
async def run_light(url: str, ns: str, *, first: int, count: int, rate: float, catalog: str, document: str,
                    data_dir: Path) -> Counts:
    """Build ``count`` light agents, say ``ready``, begin their births at ``rate``/s on ``go``, leave on ``stop``."""
    from agent.metrics import ProcessMetrics
    from edge.host import Host
    from edge.settings import load_settings

    settings = load_settings(broker=url, namespace=ns, agent_id=light_id(first), data_dir=data_dir,
                             log_level="WARNING", shared_catalog=catalog == "shared")
    types, unavailable = fleet_types(catalog)
    # the catalog a real agent works out on its own device: once here, for all of this process's agents
    entries = Host(settings, types=types, unavailable=unavailable, persist=False).catalog()
    shared = SharedDocument(entries, each=document == "each") if catalog == "shared" else None
    counts = Counts(agents=count)
    metrics = ProcessMetrics()  # what `edge agent` puts in its state (this process's CPU and RSS)
    agents = [LightAgent(settings, agent_id=light_id(i), entries=entries, metrics=metrics, document=shared,
                         counts=counts) for i in range(first, first + count)]
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    print("ready", flush=True)
    if (await stdin.readline()).strip() != b"go":
        return counts
    cpu = time.process_time()

    async def births(group: asyncio.TaskGroup) -> None:
        start = loop.time()
        for i, agent in enumerate(agents):
            at = start + i / rate
            now = loop.time()
            if at > now:
                await asyncio.sleep(at - now)
            else:
                counts.late_max_s = max(counts.late_max_s, now - at)
            counts.started += 1
            group.create_task(agent.run(), name=f"light-{agent.agent_id}")

    async with asyncio.TaskGroup() as group:
        pacing = group.create_task(births(group), name="births")
        await stdin.readline()  # "stop", or EOF when the parent went away
        counts.cpu_s = time.process_time() - cpu
        pacing.cancel()
        await asyncio.gather(*(agent.leave() for agent in agents))
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True)
    parser.add_argument("--ns", required=True)
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--rate", type=float, default=1000.0, help="births per second")
    parser.add_argument("--catalog", choices=("full", "shared", "sample"), default="shared")
    parser.add_argument("--document", choices=("once", "each"), default="once",
                        help="shared catalogs: the document from the first agent (once) or every agent (each)")
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/light-agents"))
    args = parser.parse_args()
    if args.rate <= 0 or args.count < 0:
        parser.error("--rate must be positive and --count at least 0")
    counts = asyncio.run(run_light(args.url, args.ns, first=args.first, count=args.count, rate=args.rate,
                                   catalog=args.catalog, document=args.document, data_dir=args.data_dir))
    print(json.dumps(asdict(counts)), flush=True)


if __name__ == "__main__":
    main()
