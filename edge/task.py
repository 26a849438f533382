"""Full tasks: a class with declared inputs and outputs, a config model and an async ``run()``.

::

    from pydantic import BaseModel
    from edge.task import Port, Task

    class Scale(Task):
        \"\"\"Multiply numbers by a factor.\"\"\"

        class Config(BaseModel):
            factor: float = 2.0

        inputs = {"in": Port(content="number")}
        outputs = {"out": Port(content="number")}

        async def run(self) -> None:
            async for frame in self.receive("in"):
                await self.send("out", frame.value * self.config.factor, ts=frame.ts)

The runtime (``edge.host``) builds the instance with its validated config and a
:class:`TaskContext` (the bus, where each input comes from, where each output goes), calls
``run()``, and cancels it to stop. Everything a task learns about the outside world it learns
through the receive/send helpers here, so the same class runs on an agent, in a script, or in
a test with an in-memory context (:mod:`edge.testing`: no broker, milliseconds)::

    from edge.testing import run_task

    async def test_scale() -> None:
        async with run_task(Scale, {"factor": 3}) as run:
            await run.feed("in", 2)
            assert (await run.next("out")).value == 6.0
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict

from edge._inbox import QUEUE_BYTES, QUEUE_FRAMES, WAIT_STALL, Inbox, Lane, Limits, Policy
from edge._lograte import LogLimiter
from edge.bus import Message, Subscription
from edge.errors import ConfigError, FrameError
from edge.files import files_folder, resolve_file
from edge.frames import Frame, decode_frame, encode_frame, now_ms
from edge.local import LOCAL_ONLY_BYTES, LocalStreams, local_value, value_size
from edge.ports import PortRule, expand
from edge.topics import is_stream_topic, validate_id

if TYPE_CHECKING:
    from edge.bus import Bus  # loaded on first use (edge.bus): a task module needs no transport
    from edge.hass import HassSlot
    from edge.protocol import CatalogEntry
    from edge.settings import Settings

__all__ = ["IO_KEYS", "EmptyConfig", "Port", "PortMetrics", "PortRule", "Ports", "Task", "TaskContext",
           "type_name_of", "why_unavailable"]

log = logging.getLogger("edge.task")
_bad_frames = LogLimiter(log)  # a flood of bad frames on one input logs once a minute, all counted

WARN_EVERY = 10.0
"""Seconds between two of :meth:`Task.warn`'s warnings about the same thing."""

#: The IO metadata keys streamtasks uses; ports may carry others too.
IO_KEYS = ("content", "codec", "rate", "width", "height", "pixel_format", "sample_format", "channels")


@dataclass(frozen=True)
class Port:
    """An input or output with its IO metadata (``content``: number, text, bytes, video, audio, …)."""

    content: str | None = None
    codec: str | None = None
    rate: float | None = None
    width: int | None = None
    height: int | None = None
    pixel_format: str | None = None
    sample_format: str | None = None
    channels: int | None = None
    label: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    #: QoS of an output's frames: 1 for data that must survive a broker outage (kept in the bus's
    #: bounded offline buffer, sent after the reconnect); 0, the default, for live streams
    qos: int = 0
    #: what an input's full queue does: ``"oldest"`` (the default) drops the oldest frame, for live
    #: streams; ``"wait"`` holds QoS 1 frames unacknowledged so the broker slows down and keeps the
    #: rest queued, for a sink whose frames must not be lost (docs/reliability.md)
    overflow: Literal["oldest", "wait"] = "oldest"

    def __post_init__(self) -> None:
        if self.overflow not in ("oldest", "wait"):
            raise ConfigError(f"a port's overflow is 'oldest' or 'wait', not {self.overflow!r}", field="overflow")

    def metadata(self) -> dict[str, Any]:
        """The metadata that is set, as published in the catalog."""
        meta = {k: getattr(self, k) for k in IO_KEYS if getattr(self, k) is not None}
        meta.update(self.extra)
        return meta

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any], *, label: str | None = None) -> Port:
        known = {k: v for k, v in metadata.items() if k in IO_KEYS}
        extra = {k: v for k, v in metadata.items() if k not in IO_KEYS}
        return cls(**known, label=label, extra=extra)

    def with_metadata(self, metadata: Mapping[str, Any]) -> Port:
        """This port (label, QoS, overflow) with ``metadata`` instead of its own."""
        fields: dict[str, Any] = {k: metadata.get(k) for k in IO_KEYS}
        return replace(self, **fields, extra={k: v for k, v in metadata.items() if k not in IO_KEYS})


@dataclass(frozen=True)
class Ports:
    """The inputs and outputs of one instance, with their IO metadata (:meth:`Task.ports`)."""

    inputs: Mapping[str, Port]
    outputs: Mapping[str, Port]

    def metadata(self) -> dict[str, dict[str, dict[str, Any]]]:
        """``{"inputs": {port: metadata}, "outputs": {...}}``, as a validation answer carries them."""
        return {"inputs": {name: port.metadata() for name, port in self.inputs.items()},
                "outputs": {name: port.metadata() for name, port in self.outputs.items()}}


class EmptyConfig(BaseModel):
    """The config of a task that has none."""

    model_config = ConfigDict(extra="forbid")


def type_name_of(cls: type) -> str:
    """``VideoEncoder`` -> ``video_encoder``."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", cls.__name__).lower()


@dataclass
class PortMetrics:
    frames: int = 0
    errors: int = 0
    last_ts: int | None = None
    paused: bool = False
    #: frames of the producer's stream that never arrived (holes in its ``seq``), and copies of
    #: frames that arrived twice (QoS 1 redelivery, dropped): inputs fed by one task's output only
    gaps: int = 0
    duplicates: int = 0


_SEQ_WINDOW = 1024  # how far back a redelivered frame is recognised as a copy
REWIRE_QUIET = 5.0  # s after an input goes from in-process to the broker during which copies are not counted


class _StreamOrder:
    """The ``seq`` of one producer's stream as one input sees it: holes and copies.

    A frame one past the last is the common case. A higher one leaves a hole of the frames in
    between. A lower or equal one is a copy when the frame with that ``seq`` in the last
    :data:`_SEQ_WINDOW` had the same ``ts`` (a QoS 1 redelivery is the same bytes); otherwise the
    producer started over (its counter begins at 0 on every run) and the frames of the new run
    before this one are the hole. A ``seq`` of 0 is never taken for a copy: producers that do not
    count (every frame 0, as ``edge pub`` and the panel's controls send) lose nothing to the rule,
    at the price of a redelivered first frame going through twice.
    """

    __slots__ = ("last", "stamps")

    def __init__(self) -> None:
        self.last = -1
        self.stamps: list[int | None] = [None] * _SEQ_WINDOW

    def see(self, seq: int, ts: int) -> int:
        """Frames missing before this one (0 for none), or -1 if it is a copy of one seen."""
        last = self.last
        slot = seq % _SEQ_WINDOW
        if 0 < seq <= last and last - seq < _SEQ_WINDOW and self.stamps[slot] == ts:
            return -1
        missing = 0 if last < 0 else seq - last - 1 if seq > last else seq
        self.last = seq
        self.stamps[slot] = ts
        return missing


class TaskContext:
    """What the runtime gives one task instance: its bus, input sources and output targets."""

    def __init__(self, *, bus: Bus, instance_id: str, sources: Mapping[str, str],
                 targets: Mapping[str, list[str]], inject: bool = False,
                 max_payload: int = 16 * 1024 * 1024,
                 queue_size: int = QUEUE_FRAMES, queue_bytes: int | None = QUEUE_BYTES,
                 queue_age: float | None = None, files_dir: Path | None = None,
                 hass: HassSlot | None = None, queue_stall: float = WAIT_STALL,
                 wait: Iterable[str] = (), merged: Iterable[str] = (), local: LocalStreams | None = None,
                 local_inputs: Iterable[str] = ()) -> None:
        self.bus = bus
        #: the agent's in-process switchboard (:mod:`edge.local`); None: every frame through the broker
        self.local = local
        #: inputs fed in-process by a task of the same agent (through ``local``), not by the broker
        self.local_inputs = frozenset(local_inputs) if local is not None else frozenset()
        #: where the task's Home Assistant entity goes (:mod:`edge.hass`); None: the agent has no link
        self.hass = hass
        #: the only folder the task may read and write files in (:mod:`edge.files`); None: no files
        self.files_dir = files_dir
        self.instance_id = instance_id
        self.sources = dict(sources)
        self.targets = {port: list(topics) for port, topics in targets.items()}
        #: whether a controller can inject frames into its inputs (``Topics.inject``: the agent hands them
        #: to :meth:`Task.take_injected`); False in a run without an agent
        self.inject = inject
        self.max_payload = max_payload
        #: the bounds of each input's queue: frames, bytes (None: no byte bound), age in seconds
        #: after which a queued frame is stale (None: never); see :mod:`edge._inbox`
        self.queue_size = queue_size
        self.queue_bytes = queue_bytes
        self.queue_age = queue_age
        #: s an input that waits may hold frames while its task takes none before it drops instead
        self.queue_stall = queue_stall
        #: inputs that wait whatever their port says (a deployment spec's ``wait``)
        self.wait = frozenset(wait)
        #: inputs fed by several producers on one stream (the replicas of a task): their ``seq``
        #: counters interleave, so no holes or copies are told from them
        self.merged = frozenset(merged)

    @property
    def limits(self) -> Limits:
        """The bounds of one input's queue."""
        return Limits(frames=self.queue_size, bytes=self.queue_bytes, age=self.queue_age, stall=self.queue_stall)


class Task:
    """Base class of full tasks. Subclasses declare ``inputs``, ``outputs``, ``Config`` and ``run()``.

    Ports that follow the config: declare ``ports_from`` rules (:mod:`edge.ports`), or override
    :meth:`ports` (and :meth:`metadata_for` for output metadata that depends on the config). On
    the class, ``inputs`` and ``outputs`` are the ports of the default config; on an instance,
    its own ports.
    """

    #: Name in catalogs and specs; default: the class name in snake_case.
    type_name: ClassVar[str] = ""
    label: ClassVar[str] = ""
    #: The group the editor's type picker and the Task types page list it under ("" is "other").
    category: ClassVar[str] = ""
    #: the declared ports (those of the default config); an instance's own ports shadow them
    inputs: Mapping[str, Port] = MappingProxyType({})
    outputs: Mapping[str, Port] = MappingProxyType({})
    #: ports made from the config by rules the controller evaluates too (edge.ports)
    ports_from: ClassVar[tuple[PortRule, ...]] = ()
    Config: ClassVar[type[BaseModel]] = EmptyConfig
    #: each frame's result depends on that frame (and the config) alone, never on frames before it:
    #: a spec may then give a task of this type ``replicas`` (docs/deployments.md#replicas)
    stateless: ClassVar[bool] = False
    #: Where :meth:`warn` logs.
    logger: ClassVar[logging.Logger] = log
    #: a line the agent shows as the running instance's ``error`` in its status while it holds
    #: (a device it waits for); None: nothing to report
    problem: str | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.__dict__.get("type_name"):
            cls.type_name = type_name_of(cls)
        validate_id(cls.type_name, "task type")
        for port in (*cls.inputs, *cls.outputs):
            validate_id(port, f"port of task type {cls.type_name!r}")
        if not cls.__dict__.get("label"):
            cls.label = cls.type_name.replace("_", " ").capitalize()
        cls.ports_from = tuple(_with_default(cls, rule) for rule in cls.ports_from)

    def __init__(self, config: BaseModel | Mapping[str, Any] | None = None, *,
                 context: TaskContext | None = None) -> None:
        with files_folder(context.files_dir if context is not None else None):
            self.config: Any = self.validate_config(config)
        self.context = context
        ports = type(self).ports(self.config)
        for port in (*ports.inputs, *ports.outputs):
            validate_id(port, f"port of task type {self.type_name!r}")
        #: this instance's ports, from its config
        self.inputs = MappingProxyType(dict(ports.inputs))
        self.outputs = MappingProxyType(dict(ports.outputs))
        self.in_metrics = {port: PortMetrics() for port in self.inputs}
        self.out_metrics = {port: PortMetrics() for port in self.outputs}
        self._subs: dict[str, Subscription] = {}  # input port -> its subscription at the broker
        self._detach: dict[str, Callable[[], None]] = {}  # input port -> the end of its in-process feed (edge.local)
        self._rewired: dict[str, float] = {}  # input port -> until when copies of frames are not counted (rewire)
        self._inbox: Inbox[Any] | None = None
        self._seq = dict.fromkeys(self.outputs, 0)
        self._order: dict[str, _StreamOrder] = {}  # inputs fed by one producer's stream
        self._topic_seq: dict[str, int] = {}  # the seq of each topic publish() sent to, like an output's
        self._warnings = LogLimiter(self.logger, every=WARN_EVERY)

    # -- description --------------------------------------------------------------------------
    @classmethod
    def validate_config(cls, config: BaseModel | Mapping[str, Any] | None) -> BaseModel:
        """The config as the task's model; :class:`ConfigError` with pydantic's message if invalid."""
        from pydantic import ValidationError

        if isinstance(config, cls.Config):
            return config
        try:
            return cls.Config.model_validate(dict(config or {}))
        except ValidationError as exc:
            details = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'config'}: {e['msg']}" for e in exc.errors())
            raise ConfigError(f"invalid config for {cls.type_name}: {details}", field="config") from None
        except TypeError as exc:
            raise ConfigError(f"invalid config for {cls.type_name}: {exc}", field="config") from None

    @classmethod
    def check(cls, config: Mapping[str, Any]) -> list[str]:
        """Every problem of ``config`` for this type, one line each naming its field
        (``config.formula: ...``); empty when it is valid.

        The agent runs this before it starts an instance (and marks the task ``invalid`` with
        these lines), and to answer the controller's validation requests, so the panel and
        ``edge deploy`` show the same lines before anything is published. The default runs the
        ``Config`` model's validation (its field validators are where the type's own rules live:
        a formula that parses, a file that stays in its folder); override it, calling ``super()``,
        for checks a model cannot express.
        """
        from pydantic import ValidationError

        try:
            cls.Config.model_validate(dict(config))
        except ValidationError as exc:
            return [f"{'.'.join(['config', *map(str, e['loc'])])}: {e['msg'].removeprefix('Value error, ')}"
                    for e in exc.errors()]
        except (TypeError, ValueError) as exc:
            return [f"config: {exc}"]
        return []

    @classmethod
    def unavailable_reason(cls, settings: Settings | None = None) -> str | None:
        """Why an agent with ``settings`` (None: what this process's environment says) cannot offer
        this type now (a device, a library or a permission it lacks), or None if it can.

        The agent lists a type with a reason as unavailable, with the reason (its catalog entry
        otherwise whole, so the panel still shows its ports and config), and refuses its instances:
        their status is ``invalid`` and says why. Override it for types that need a device or a
        permission; keep it quick (a look at a file, a setting), it runs when the catalog is built."""
        return None

    @classmethod
    def describe(cls) -> dict[str, Any]:
        """This type's catalog entry as published (:meth:`catalog_entry`)."""
        return cls.catalog_entry().dump()

    @classmethod
    def catalog_entry(cls) -> CatalogEntry:
        """This type's catalog entry: name, label, description, category, ports with metadata, config schema.

        Override it, calling ``super()``, to add what the entry says of a kind of type (``dashboard``)."""
        from edge.protocol import CatalogEntry  # not at import: it loads the spec model, which a task needs not

        rules: dict[str, Any] = {"ports_from": [rule.to_dict() for rule in cls.ports_from]} if cls.ports_from else {}
        if cls.stateless:  # only then: catalogs of types without replicas stay as they were
            rules["stateless"] = True
        if (reason := why_unavailable(cls, None)) is not None:
            rules["reason"] = reason
        return CatalogEntry(
            name=cls.type_name,
            label=cls.label,
            description=(cls.__doc__ or "").strip().split("\n\n")[0],
            category=cls.category,
            inputs={name: port.metadata() for name, port in cls.inputs.items()},
            outputs={name: port.metadata() for name, port in cls.outputs.items()},
            config_schema=cls.Config.model_json_schema(),
            config_default=cls.Config().model_dump(mode="json") if _has_defaults(cls.Config) else None,
            available=reason is None,
            **rules,
        )

    @classmethod
    def ports(cls, config: BaseModel) -> Ports:
        """The inputs and outputs, with their IO metadata, of an instance with the validated ``config``.

        The default: the declared ports and those of the ``ports_from`` rules, each output's
        metadata from :meth:`metadata_for`. Runs no task code beyond the class's: agents answer
        validation requests with it (how the controller learns ports no rule expresses).
        """
        values = config.model_dump(mode="json")

        def make(rule: PortRule, name: str) -> Port:
            return Port.from_metadata(rule.metadata, label=rule.label.format(name))

        inputs = expand(cls.inputs, (r for r in cls.ports_from if r.side == "inputs"), values, make)
        outputs = expand(cls.outputs, (r for r in cls.ports_from if r.side == "outputs"), values, make)
        return Ports(inputs=inputs, outputs={name: port.with_metadata(cls.metadata_for(config, name, port))
                                             for name, port in outputs.items()})

    @classmethod
    def metadata_for(cls, config: BaseModel, port: str, declared: Port) -> dict[str, Any]:
        """IO metadata of output ``port`` for the validated ``config`` (a video encoder's codec and
        size); the default: ``declared``'s. Override it, calling ``super()``, where it depends on the config."""
        return declared.metadata()

    def output_metadata(self, port: str) -> dict[str, Any]:
        """IO metadata of an output of this instance (from its config: :meth:`metadata_for`)."""
        return self.outputs[port].metadata()

    # -- running ------------------------------------------------------------------------------
    async def run(self) -> None:
        """The task's work; runs until it returns or is cancelled."""
        raise NotImplementedError(f"{type(self).__name__} must implement run()")

    def file_path(self, value: str) -> Path:
        """The resolved path of a file named in the config, inside the runtime's files folder
        (:mod:`edge.files`), checked again now; :class:`ConfigError` if it is outside or there is none."""
        folder = self.context.files_dir if self.context is not None else None
        if folder is None:
            raise ConfigError(f"{self.type_name}: no files folder from the runtime, so no file may be used "
                              f"({value!r})", field="config")
        return resolve_file(value, folder=folder)

    @property
    def instance_id(self) -> str:
        """The instance's id, as the runtime names it (the type's name without a runtime)."""
        return self.context.instance_id if self.context is not None else self.type_name

    def warn(self, key: str, message: str, *args: object) -> None:
        """Log ``"{instance_id}: " + message % args`` as a warning, the first time then at most every
        :data:`WARN_EVERY` s per ``key`` (a port, a reason): a flood of bad frames costs one line per
        interval, saying how many were held back; count them where they happen."""
        self._warnings.warning(key, "%s: " + message, self.instance_id, *args)

    def count_error(self, metrics: PortMetrics, key: str, message: str, *args: object) -> None:
        """Count an error in a port's ``metrics`` and :meth:`warn`, saying how many there were so far."""
        metrics.errors += 1
        self.warn(key, message + " (%d error(s) so far; repeats logged at most every %g s)", *args, metrics.errors,
                  WARN_EVERY)

    def _ctx(self) -> TaskContext:
        if self.context is None:
            raise RuntimeError(f"{type(self).__name__} is not running: it has no context")
        return self.context

    async def open_inputs(self) -> Inbox[Any]:
        """Subscribe every connected input (the runtime does this before ``run()``; idempotent)."""
        if self._inbox is None:
            ctx = self._ctx()
            inbox: Inbox[Any] = Inbox({port: self.input_lane(port) for port in self.inputs}, on_stall=self._stalled)
            self._inbox = inbox
            for port in self.inputs:
                source = ctx.sources.get(port)
                if source is None:
                    continue
                if is_stream_topic(source) and port not in ctx.merged:
                    self._order[port] = _StreamOrder()
                # QoS 1: the broker sends each frame at the lower of this and its publisher's QoS,
                # so QoS 1 outputs arrive acknowledged (and wait in an agent's persistent session
                # while it is away) and live QoS 0 streams cost nothing more. A lane that waits
                # holds the subscription's QoS 1 messages unacknowledged while it is full.
                if self._fed_in_process(port):
                    assert ctx.local is not None
                    self._detach[port] = ctx.local.attach(source, self.local_taker(inbox, port))
                else:
                    self._subs[port] = await self._subscribe(inbox, port, source)
        return self._inbox

    def _fed_in_process(self, port: str) -> bool:
        ctx = self._ctx()
        assert self._inbox is not None
        return ctx.local is not None and port in ctx.local_inputs and self._inbox[port].policy is not Policy.WAIT

    async def _subscribe(self, inbox: Inbox[Any], port: str, source: str) -> Subscription:
        hold = inbox[port].policy is Policy.WAIT
        return await self._ctx().bus.subscribe(source, qos=1, callback=self.taker(inbox, port), hold=hold)

    async def rewire(self, local_inputs: Iterable[str]) -> None:
        """Feed the inputs in ``local_inputs`` in-process and the others from the broker, from now on, without a
        restart (the agent's specs changed who else reads a stream: :mod:`edge.local`). To the broker: subscribed
        before the in-process feed ends, the copies of the overlap dropped uncounted; to in-process: the
        subscription ends first, so nothing comes out of order (a frame sent in between is a counted gap)."""
        ctx = self._ctx()
        ctx.local_inputs = frozenset(local_inputs) if ctx.local is not None else frozenset()
        inbox = self._inbox
        if inbox is None:
            return
        for port in self.inputs:
            source = ctx.sources.get(port)
            if source is None:
                continue
            local = self._fed_in_process(port)
            if local and port in self._subs:
                await self._subs.pop(port).aclose()
                assert ctx.local is not None
                self._detach[port] = ctx.local.attach(source, self.local_taker(inbox, port))
            elif not local and port in self._detach:
                self._subs[port] = await self._subscribe(inbox, port, source)
                self._rewired[port] = time.monotonic() + REWIRE_QUIET
                self._detach.pop(port)()

    def take_injected(self, port: str, message: Message) -> object:
        """A frame a controller injected into input ``port`` (``Topics.inject``, handed over by the agent):
        queued as a frame from the input's own source would be, wired or not; dropped (warned) when
        the task has no such input or has not opened its inputs."""
        inbox = self._inbox
        if inbox is None or port not in self.inputs:
            why = "no input of this task" if port not in self.inputs else "its inputs are not open yet"
            self.warn("inject", "dropped a frame injected into %r: %s", port, why)
            return None
        return self.taker(inbox, port)(message)

    def _stalled(self, port: str, count: int) -> None:
        self.warn(f"stall.{port}", "input %r held %d frame(s) for %g s while the task took none: it lets them "
                  "in and drops the oldest from now on (counted), so the agent's other QoS 1 inputs flow again, "
                  "until the task takes a frame", port, count, self._ctx().queue_stall)

    def input_lane(self, port: str) -> Lane[Any]:
        """The queue of input ``port``: the context's bounds; when full, the oldest frame is dropped,
        or, for a port declared with ``overflow="wait"``, QoS 1 frames wait (:mod:`edge._inbox`)."""
        ctx = self._ctx()
        wait = self.inputs[port].overflow == "wait" or port in ctx.wait
        return ctx.limits.lane(Policy.WAIT if wait else Policy.OLDEST)

    def taker(self, inbox: Inbox[Any], port: str) -> Callable[[Message], object]:
        """What input ``port``'s subscription does with each message, at once and without waiting:
        queue it as it is (``recv`` decodes it); a wait lane also takes its acknowledgement."""
        if inbox[port].policy is Policy.WAIT:
            push = inbox.push
            return lambda message: push(port, message, size=len(message.payload),
                                        ack=message.ack if message.held else None)
        put = inbox.feeder(port)
        return lambda message: put(message, len(message.payload))

    def local_taker(self, inbox: Inbox[Any], port: str) -> Callable[[Frame, int], object]:
        """What input ``port`` does with each frame a task of this agent hands over in-process
        (:mod:`edge.local`; with its size in bytes): queue it as it is (``recv`` counts it)."""
        return inbox.feeder(port)

    def _decode(self, port: str, message: Message | Frame) -> Frame | None:
        metrics = self.in_metrics[port]
        if isinstance(message, Frame):  # handed over in-process by a task of this agent (edge.local)
            frame, from_source = message, True
        else:
            try:
                frame = decode_frame(message.payload, max_size=self._ctx().max_payload)
            except FrameError as exc:
                metrics.errors += 1
                _bad_frames.warning(f"{self._ctx().instance_id}/{port}", "%s: dropped a bad frame on input %r "
                                    "(%s): %s", self._ctx().instance_id, port, message.topic, exc)
                return None
            from_source = message.topic == self._ctx().sources.get(port)  # not an injected frame
        order = self._order.get(port)
        if order is not None and from_source:
            seq = frame.seq
            if seq == order.last + 1:
                order.last = seq
                order.stamps[seq % _SEQ_WINDOW] = frame.ts
            else:
                missing = order.see(seq, frame.ts)
                if missing < 0:
                    if not self._rewired or time.monotonic() >= self._rewired.get(port, 0.0):
                        metrics.duplicates += 1  # (not a copy of the overlap of a rewire: see rewire())
                    return None
                metrics.gaps += missing
        metrics.frames += 1
        metrics.last_ts = frame.ts
        metrics.paused = frame.paused
        return frame

    async def recv(self, port: str) -> Frame:
        """The next frame on ``port``; waits forever on an input that nothing feeds."""
        if port not in self.inputs:
            raise ConfigError(f"{self.type_name} has no input {port!r}", field="port")
        inbox = await self.open_inputs()
        while True:  # an input that is not connected waits forever in get()
            frame = self._decode(port, await inbox.get(port))
            if frame is not None:
                return frame

    async def receive(self, port: str) -> AsyncIterator[Frame]:
        """Every frame on ``port``, in arrival order; malformed frames are counted and skipped."""
        while True:
            yield await self.recv(port)

    async def receive_any(self) -> AsyncIterator[tuple[str, Frame]]:
        """``(port, frame)`` for every frame on any input, in the order they arrived.

        Read a port either here or with ``receive``/``recv``, not both: they share its queue.
        """
        inbox = await self.open_inputs()
        while True:  # with no input connected, get_any() waits forever
            port, message = await inbox.get_any()
            frame = self._decode(port, message)
            if frame is not None:
                yield port, frame

    def paused(self, port: str) -> bool:
        """Whether the newest frame on input ``port`` said its producer is paused."""
        return self.in_metrics[port].paused

    async def send(self, port: str, value: Any, *, ts: int | None = None, paused: bool = False,
                   qos: int | None = None, retain: bool = False, extra: Mapping[str, Any] | None = None) -> None:
        """Publish ``value`` as a frame on output ``port`` (timestamp: now unless given; QoS: the port's).

        ``extra``: more fields of the frame (a media frame's ``pixel_format``); ``retain``: the broker
        keeps the last frame for late subscribers (a dashboard's ``view``). :class:`FrameError` if the
        value cannot be encoded or the frame is larger than the payload limit: then nothing is sent
        and the port's ``seq`` stays where it was, so consumers count no hole.
        """
        if port not in self.outputs:
            raise ConfigError(f"{self.type_name} has no output {port!r}", field="port")
        ctx = self._ctx()
        level = self.outputs[port].qos if qos is None else qos
        await self._publish(self._seq, port, self.out_metrics[port], ctx.targets.get(port, []), value, ts=ts,
                            paused=paused, qos=level, retain=retain, extra=extra)

    async def publish(self, topic: str, value: Any, *, ts: int | None = None, paused: bool = False,
                      qos: int = 0, retain: bool = False, extra: Mapping[str, Any] | None = None) -> None:
        """:meth:`send` to a topic that is no output's (a named stream); its ``seq`` counts per topic."""
        await self._publish(self._topic_seq, topic, None, [topic], value, ts=ts, paused=paused, qos=qos,
                            retain=retain, extra=extra)

    async def _publish(self, counters: dict[str, int], stream: str, metrics: PortMetrics | None,
                       topics: list[str], value: Any, *, ts: int | None, paused: bool, qos: int, retain: bool,
                       extra: Mapping[str, Any] | None) -> None:
        # the one send path: one seq counter per output port (or topic), +1 per frame that goes out
        ctx = self._ctx()
        stamp = now_ms() if ts is None else ts
        fields = {**extra, "paused": True} if extra and paused else {"paused": True} if paused else extra
        seq = counters.get(stream, 0)
        local = ctx.local
        in_process = local is not None and not retain and local.feeds(topics)
        # a task of this agent takes it in-process (edge.local); a large array goes to the broker only if
        # another agent reads it or someone watches it, so it is not even encoded for nothing
        shared = local_value(value) if in_process else None
        size = value_size(value) if in_process else 0
        if shared is not None and size >= LOCAL_ONLY_BYTES:
            assert local is not None
            broker = [topic for topic in topics if local.needs_broker(topic)]
        else:
            broker = topics
        payload = self._encode(stream, value, stamp, seq, fields) if broker or shared is None else None
        if payload is None and size > ctx.max_payload:
            raise FrameError(f"a {size}-byte value on {stream!r} exceeds the {ctx.max_payload}-byte "
                             "payload limit (EDGE_MAX_PAYLOAD)")
        counters[stream] = seq + 1
        if metrics is not None:
            metrics.frames += 1
            metrics.last_ts = stamp
        if in_process:
            assert local is not None
            # an array as the sender's read-only view; anything else as the broker would have given it
            if shared is not None:
                frame = Frame(shared, stamp, seq, fields or {})
            else:
                assert payload is not None
                frame = decode_frame(payload)
            for topic in topics:
                local.deliver(topic, frame, size)
        for topic in broker:
            assert payload is not None
            await ctx.bus.publish(topic, payload, qos=qos, retain=retain)

    def _encode(self, stream: str, value: Any, stamp: int, seq: int, fields: Mapping[str, Any] | None) -> bytes:
        limit = self._ctx().max_payload
        payload = encode_frame(value, ts=stamp, seq=seq, extra=fields)
        if len(payload) > limit:
            raise FrameError(f"a {len(payload)}-byte frame on {stream!r} exceeds the {limit}-byte "
                             "payload limit (EDGE_MAX_PAYLOAD)")
        return payload

    async def close(self) -> None:
        """Release the inputs' subscriptions (the runtime calls this after ``run()`` ends)."""
        if self._inbox is not None:  # first, and at once: held frames must not outlive the task
            self._inbox.close()  # (acknowledged, as is whatever still comes before the unsubscribe)
        for sub in self._subs.values():
            await sub.aclose()
        self._subs.clear()
        for detach in self._detach.values():
            detach()
        self._detach.clear()
        self._inbox = None

    def dropped_offline(self, port: str) -> int:
        """Frames of output ``port`` lost while the broker was unreachable."""
        ctx = self._ctx()
        return sum(ctx.bus.dropped_offline(topic) for topic in ctx.targets.get(port, ()))

    def dropped(self) -> int:
        """Frames the inputs' bounded queues dropped (full: the oldest go first; stale)."""
        return self._inbox.dropped if self._inbox is not None else 0

    def held_frames(self) -> int:
        """Frames the inputs that wait hold unacknowledged now (each takes a slot of the broker's window)."""
        return self._inbox.held if self._inbox is not None else 0


def _with_default(cls: type[Task], rule: PortRule) -> PortRule:
    """``rule`` with its field's default (JSON) from ``cls.Config``; TypeError at class definition if
    the field does not exist or the rule makes, from the default, ports the class does not declare."""
    model_field = cls.Config.model_fields.get(rule.field)
    if model_field is None:
        raise TypeError(f"{cls.__name__}.ports_from: {cls.Config.__name__} has no field {rule.field!r}")
    default = rule.default
    if not model_field.is_required():
        from pydantic import TypeAdapter

        value = model_field.get_default(call_default_factory=True)
        default = TypeAdapter(Any).dump_python(value, mode="json")
    rule = replace(rule, default=default)
    declared = cls.inputs if rule.side == "inputs" else cls.outputs
    undeclared = [name for name in rule.names({}) if name not in declared]
    if undeclared:
        raise TypeError(f"{cls.__name__}.ports_from: the default config makes {rule.side} {undeclared} "
                        f"that {cls.__name__}.{rule.side} does not declare")
    return rule


def _has_defaults(model: type[BaseModel]) -> bool:
    return all(not f.is_required() for f in model.model_fields.values())


def why_unavailable(task_type: type[Task], settings: Settings | None) -> str | None:
    """``task_type.unavailable_reason(settings)``; a check that breaks (a third party's) is a reason too."""
    try:
        return task_type.unavailable_reason(settings)
    except Exception as exc:
        log.warning("task type %s is not offered: its availability check failed: %s", task_type.type_name, exc)
        return f"its availability check failed: {type(exc).__name__}: {exc}"[:500]
