"""An in-memory broker for tests and docs: run a task without an MQTT broker, in milliseconds.

::

    from edge.testing import run_task

    async with run_task(Scale, {"factor": 3}) as run:
        await run.feed("in", 2)
        assert (await run.next("out")).value == 6

:class:`MemoryBus` has the part of :class:`~edge.bus.Bus`'s API tasks and the runtime use
(``subscribe``, ``publish``, ``publish_nowait``, ``dropped_offline``, ``on_connect``, ``stats``)
and is its own broker: a publish is handed at once, in the publisher's call, to every
subscription whose filter matches (edge's own filter matching, so ``+``, ``#``, ``$``-topics and
``$share/group/...`` behave as on our brokers: one member of a shared group gets each message,
in turn). Retained messages are kept per topic (an empty payload clears one) and delivered to
every later matching subscription with ``retain`` set; QoS 0, 1 and 2 are accepted and each
subscriber gets ``min(published QoS, its own)``. The subscriptions are the real
:class:`~edge.bus.Subscription` objects, so callbacks, bounded queues and drop counts behave as
on a bus. Like :class:`~edge.bus.Bus` it refuses invalid topics (:class:`~edge.errors.TopicError`),
payloads over ``max_payload`` (:class:`~edge.errors.BusError`) and other QoS values
(:class:`~edge.errors.ConfigError`).

:func:`run_task` wires one task instance to it as an agent would (inputs read
``{root}/streams/{deployment}/src/{port}``, outputs publish on
``{root}/streams/{deployment}/{task}/{port}``), subscribes its outputs before it starts, and gives
back a :class:`TaskRun` to feed inputs and read outputs. What is about MQTT itself (sessions,
reconnects, brokers' limits) is tested against the real brokers, not here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

from edge.bus import BusStats, Message, Overflow, Subscription
from edge.bus._hooks import Hooks
from edge.errors import BusError, ConfigError
from edge.frames import Frame, decode_frame, encode_frame
from edge.task import Task, TaskContext
from edge.topics import Topics, validate_topic

if TYPE_CHECKING:
    from edge.bus import Bus

__all__ = ["MEMORY_URL", "MemoryBus", "TaskRun", "run_task"]

log = logging.getLogger("edge.testing")

MEMORY_URL = "memory://"
"""The ``url`` of every :class:`MemoryBus` (there is no address: each instance is its own broker)."""

#: frames kept per output of a :func:`run_task` run that nobody has read yet (the oldest go first)
OUTPUT_QUEUE = 10_000

T = TypeVar("T", bound=Task)


class MemoryBus(Hooks["Bus"]):
    """A bus and its broker in one process; ``async with MemoryBus() as bus``."""

    def __init__(self, *, max_payload: int = 16 * 1024 * 1024, queue_size: int = 1000) -> None:
        if max_payload < 1 or queue_size < 1:
            raise ConfigError(f"max_payload and queue_size must be at least 1, not {max_payload!r} and "
                              f"{queue_size!r}", field="max_payload" if max_payload < 1 else "queue_size")
        self.url = MEMORY_URL
        self.client_id = "memory"
        self.max_payload = max_payload
        self.queue_size = queue_size
        self.stats = BusStats()
        self.session = 1
        self._subs: list[Subscription] = []
        self._retained: dict[str, bytes] = {}
        self._turns: dict[str, int] = {}  # shared subscription filter -> messages handed to its group
        self._hooks: list[Callable[[Bus], Awaitable[None]]] = []
        self._connected = asyncio.Event()

    def __repr__(self) -> str:
        return f"<MemoryBus {len(self._subs)} subscriptions, {len(self._retained)} retained>"

    async def __aenter__(self) -> MemoryBus:
        self._connected.set()
        for hook in list(self._hooks):  # "connected" at once, as a Bus runs its hooks after connecting
            await hook(self._as_bus)
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self._connected.clear()
        for sub in list(self._subs):
            await sub.aclose()

    @property
    def _as_bus(self) -> Bus:
        # what needs a Bus (a TaskContext, a Subscription) gets this: the API it uses is the same
        return cast("Bus", self)

    # -- the broker's state ----------------------------------------------------------------------
    def retained(self, topic: str) -> bytes | None:
        """The payload retained on ``topic``, if any."""
        return self._retained.get(topic)

    @property
    def retained_topics(self) -> list[str]:
        """Every topic holding a retained message, sorted."""
        return sorted(self._retained)

    @property
    def subscriptions(self) -> list[str]:
        """The filters of the open subscriptions, in the order they were opened."""
        return [sub.filter for sub in self._subs]

    # -- publishing ------------------------------------------------------------------------------
    def publish_nowait(self, topic: str, payload: bytes, *, qos: int = 0, retain: bool = False) -> None:
        """Hand a message to every matching subscription now; keep it if ``retain`` (empty: clear)."""
        validate_topic(topic)
        if len(payload) > self.max_payload:
            raise BusError(f"payload of {len(payload)} bytes for {topic!r} exceeds max_payload {self.max_payload}")
        if qos not in (0, 1, 2):
            raise ConfigError(f"qos must be 0, 1 or 2, not {qos!r}", field="qos")
        data = bytes(payload)
        if retain:
            if data:
                self._retained[topic] = data
            else:
                self._retained.pop(topic, None)
        self.stats.published += 1
        receivers = self._receivers(topic)
        if receivers:
            self.stats.received += 1
        else:
            self.stats.unmatched += 1
        for sub in receivers:
            sub.deliver(Message(topic, data, min(qos, sub.qos), False))

    async def publish(self, topic: str, payload: bytes, *, qos: int = 0, retain: bool = False) -> None:
        """As :meth:`publish_nowait` (like :meth:`Bus.publish <edge.bus.Bus.publish>`, it does not yield)."""
        self.publish_nowait(topic, payload, qos=qos, retain=retain)

    def dropped_offline(self, topic: str) -> int:
        """Always 0: a memory bus is never offline."""
        return 0

    def _receivers(self, topic: str) -> list[Subscription]:
        receivers: list[Subscription] = []
        groups: dict[str, list[Subscription]] = {}
        for sub in self._subs:
            if not sub.matches(topic):
                continue
            if sub.filter.startswith("$share/"):
                groups.setdefault(sub.filter, []).append(sub)
            else:
                receivers.append(sub)
        for name, members in groups.items():  # one member of each shared group, in turn
            turn = self._turns.get(name, 0)
            self._turns[name] = turn + 1
            receivers.append(members[turn % len(members)])
        return receivers

    # -- subscribing -----------------------------------------------------------------------------
    def subscribe(self, pattern: str, *, qos: int = 0, maxsize: int | None = None,
                  overflow: Overflow = Overflow.DROP_OLDEST,
                  callback: Callable[[Message], object] | None = None, hold: bool = False) -> Subscription:
        """A subscription to ``pattern``: ``async with bus.subscribe(...) as sub`` or ``await``.
        ``hold`` is accepted and means nothing here: no broker waits for an acknowledgement."""
        return Subscription(self, pattern, qos=qos, maxsize=maxsize or self.queue_size,
                            overflow=overflow, callback=callback, hold=hold)

    # the three calls a Subscription makes on its bus
    async def _add_subscription(self, sub: Subscription) -> None:
        self._subs.append(sub)
        if sub.filter.startswith("$share/"):
            return  # as on MQTT brokers: no retained messages for a shared subscription
        for topic, payload in list(self._retained.items()):
            if sub.matches(topic):
                sub.deliver(Message(topic, payload, sub.qos, True))

    async def _remove_subscription(self, sub: Subscription) -> None:
        if sub in self._subs:
            self._subs.remove(sub)

    def _log_callback_error(self, sub: Subscription, message: Message) -> None:
        log.exception("%s: callback of subscription %r failed on %r", self.client_id, sub.filter, message.topic)


@dataclass
class TaskRun(Generic[T]):
    """One task instance running on a :class:`MemoryBus` (see :func:`run_task`)."""

    task: T
    bus: MemoryBus
    #: input port -> the topic it reads; output port -> the topic it publishes on
    sources: dict[str, str]
    targets: dict[str, str]
    runner: asyncio.Task[None]
    _outputs: dict[str, Subscription] = field(default_factory=dict)
    _fed: dict[str, int] = field(default_factory=dict)  # frames fed per input: their seq

    def _check(self) -> None:
        """Raise what ``run()`` raised, if it has ended so."""
        if self.runner.done() and not self.runner.cancelled():
            error = self.runner.exception()
            if error is not None:
                raise error

    async def feed(self, port: str, value: Any, *, ts: int | None = None, paused: bool = False) -> None:
        """Publish ``value`` as a frame on input ``port``'s topic, as the task feeding it would."""
        if port not in self.sources:
            raise ConfigError(f"{self.task.type_name} has no input {port!r}", field="port")
        extra = {"paused": True} if paused else None
        seq = self._fed.get(port, 0)
        self._fed[port] = seq + 1
        await self.bus.publish(self.sources[port], encode_frame(value, ts=ts, seq=seq, extra=extra))
        await asyncio.sleep(0)  # the task takes it from its inbox at its next turn

    async def next(self, port: str, *, timeout: float = 5.0) -> Frame:
        """The next frame on output ``port``; what ``run()`` raised if it crashed; :class:`TimeoutError`
        if nothing comes within ``timeout`` s."""
        sub = self._output(port)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not sub.queued:
            self._check()
            if loop.time() >= deadline:
                raise TimeoutError(f"no frame on output {port!r} of {self.task.type_name} within {timeout:g} s")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(0.05, max(deadline - loop.time(), 0.001))):
                    await asyncio.wait({self.runner})  # ends early only if run() ends
        return decode_frame(sub.get_nowait().payload)

    def frames(self, port: str) -> list[Frame]:
        """Every frame on output ``port`` not read yet, oldest first (without waiting)."""
        sub = self._output(port)
        return [decode_frame(sub.get_nowait().payload) for _ in range(sub.queued)]

    def _output(self, port: str) -> Subscription:
        if port not in self._outputs:
            raise ConfigError(f"{self.task.type_name} has no output {port!r}", field="port")
        return self._outputs[port]


@contextlib.asynccontextmanager
async def run_task(task_type: type[T], config: Mapping[str, Any] | None = None, *, bus: MemoryBus | None = None,
                   deployment: str = "test", task_id: str = "task", namespace: str = "test",
                   files_dir: Path | None = None) -> AsyncIterator[TaskRun[T]]:
    """Run an instance of ``task_type`` with ``config`` on ``bus`` (a new :class:`MemoryBus` if None).

    Every input is wired, every output subscribed (up to :data:`OUTPUT_QUEUE` unread frames each)
    before ``run()`` starts. Leaving the block cancels ``run()`` and closes its subscriptions; if
    ``run()`` raised and the block did not, leaving raises that error.
    """
    topics = Topics(namespace)
    ports = task_type.ports(task_type.validate_config(config))  # the instance's: they may follow the config
    sources = {port: topics.stream(deployment, "src", port) for port in ports.inputs}
    targets = {port: topics.stream(deployment, task_id, port) for port in ports.outputs}
    async with contextlib.AsyncExitStack() as stack:
        if bus is None:
            bus = await stack.enter_async_context(MemoryBus())
        outputs = {port: await stack.enter_async_context(bus.subscribe(topic, maxsize=OUTPUT_QUEUE))
                   for port, topic in targets.items()}
        context = TaskContext(bus=bus._as_bus, instance_id=f"{deployment}/{task_id}", sources=sources,
                              targets={port: [topic] for port, topic in targets.items()}, files_dir=files_dir)
        task = task_type(config, context=context)
        stack.push_async_callback(task.close)
        await task.open_inputs()
        runner = asyncio.get_running_loop().create_task(task.run(), name=f"edge.testing:{task_type.type_name}")
        run = TaskRun(task, bus, sources, targets, runner, outputs)
        try:
            yield run
        finally:
            runner.cancel()
            await asyncio.wait({runner})
        run._check()
