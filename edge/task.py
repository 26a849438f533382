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

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict

from edge._inbox import Inbox
from edge._lograte import LogLimiter
from edge.bus import Message, Subscription
from edge.errors import ConfigError, FrameError
from edge.files import files_folder, resolve_file
from edge.frames import Frame, decode_frame, encode_frame, now_ms
from edge.topics import validate_id

if TYPE_CHECKING:
    from edge.bus import Bus  # loaded on first use (edge.bus): a task module needs no transport

__all__ = ["IO_KEYS", "EmptyConfig", "Port", "PortMetrics", "Task", "TaskContext", "type_name_of"]

log = logging.getLogger("edge.task")
_bad_frames = LogLimiter(log)  # a flood of bad frames on one input logs once a minute, all counted

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


class TaskContext:
    """What the runtime gives one task instance: its bus, input sources and output targets."""

    def __init__(self, *, bus: Bus, instance_id: str, sources: Mapping[str, str],
                 targets: Mapping[str, list[str]], max_payload: int = 16 * 1024 * 1024,
                 queue_size: int = 100, files_dir: Path | None = None) -> None:
        self.bus = bus
        #: the only folder the task may read and write files in (:mod:`edge.files`); None: no files
        self.files_dir = files_dir
        self.instance_id = instance_id
        self.sources = dict(sources)
        self.targets = {port: list(topics) for port, topics in targets.items()}
        self.max_payload = max_payload
        self.queue_size = queue_size


class Task:
    """Base class of full tasks. Subclasses declare ``inputs``, ``outputs``, ``Config`` and ``run()``."""

    #: Name in catalogs and specs; default: the class name in snake_case.
    type_name: ClassVar[str] = ""
    label: ClassVar[str] = ""
    #: The group the editor's type picker and the Task types page list it under ("" is "other").
    category: ClassVar[str] = ""
    inputs: ClassVar[Mapping[str, Port]] = {}
    outputs: ClassVar[Mapping[str, Port]] = {}
    Config: ClassVar[type[BaseModel]] = EmptyConfig

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.__dict__.get("type_name"):
            cls.type_name = type_name_of(cls)
        validate_id(cls.type_name, "task type")
        for port in (*cls.inputs, *cls.outputs):
            validate_id(port, f"port of task type {cls.type_name!r}")
        if not cls.__dict__.get("label"):
            cls.label = cls.type_name.replace("_", " ").capitalize()

    def __init__(self, config: BaseModel | Mapping[str, Any] | None = None, *,
                 context: TaskContext | None = None) -> None:
        with files_folder(context.files_dir if context is not None else None):
            self.config: Any = self.validate_config(config)
        self.context = context
        self.in_metrics = {port: PortMetrics() for port in self.inputs}
        self.out_metrics = {port: PortMetrics() for port in self.outputs}
        self._subs: list[Subscription] = []
        self._inbox: Inbox | None = None
        self._seq = dict.fromkeys(self.outputs, 0)

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
    def describe(cls) -> dict[str, Any]:
        """This type's catalog entry: name, label, description, category, ports with metadata, config schema."""
        return {
            "name": cls.type_name,
            "label": cls.label,
            "description": (cls.__doc__ or "").strip().split("\n\n")[0],
            "category": cls.category,
            "inputs": {name: port.metadata() for name, port in cls.inputs.items()},
            "outputs": {name: port.metadata() for name, port in cls.outputs.items()},
            "config_schema": cls.Config.model_json_schema(),
            "config_default": cls.Config().model_dump(mode="json") if _has_defaults(cls.Config) else None,
            "available": True,
        }

    def output_metadata(self, port: str) -> dict[str, Any]:
        """IO metadata of an output for this instance (may depend on the config)."""
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

    def _ctx(self) -> TaskContext:
        if self.context is None:
            raise RuntimeError(f"{type(self).__name__} is not running: it has no context")
        return self.context

    async def open_inputs(self) -> Inbox:
        """Subscribe every connected input (the runtime does this before ``run()``; idempotent)."""
        if self._inbox is None:
            ctx = self._ctx()
            connected = [port for port in self.inputs if port in ctx.sources]
            inbox = Inbox(connected, maxsize=ctx.queue_size)
            self._inbox = inbox
            for port in connected:
                self._subs.append(await ctx.bus.subscribe(ctx.sources[port], callback=_pusher(inbox, port)))
        return self._inbox

    def _decode(self, port: str, message: Message) -> Frame | None:
        metrics = self.in_metrics[port]
        try:
            frame = decode_frame(message.payload, max_size=self._ctx().max_payload)
        except FrameError as exc:
            metrics.errors += 1
            _bad_frames.warning(f"{self._ctx().instance_id}/{port}", "%s: dropped a bad frame on input %r (%s): %s",
                                self._ctx().instance_id, port, message.topic, exc)
            return None
        metrics.frames += 1
        metrics.last_ts = frame.ts
        metrics.paused = frame.paused
        return frame

    async def recv(self, port: str) -> Frame:
        """The next frame on ``port``; waits forever on an input that nothing feeds."""
        if port not in self.inputs:
            raise ConfigError(f"{self.type_name} has no input {port!r}", field="port")
        inbox = await self.open_inputs()
        if port not in inbox.dropped:  # not connected
            await asyncio.Event().wait()
        while True:
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
        if not inbox.dropped:
            await asyncio.Event().wait()
        while True:
            port, message = await inbox.get_any()
            frame = self._decode(port, message)
            if frame is not None:
                yield port, frame

    def paused(self, port: str) -> bool:
        """Whether the newest frame on input ``port`` said its producer is paused."""
        return self.in_metrics[port].paused

    async def send(self, port: str, value: Any, *, ts: int | None = None, paused: bool = False,
                   qos: int | None = None) -> None:
        """Publish ``value`` as a frame on output ``port`` (timestamp: now unless given; QoS: the port's)."""
        if port not in self.outputs:
            raise ConfigError(f"{self.type_name} has no output {port!r}", field="port")
        ctx = self._ctx()
        seq = self._seq[port]
        self._seq[port] = seq + 1
        payload = encode_frame(value, ts=now_ms() if ts is None else ts, seq=seq,
                               extra={"paused": True} if paused else None)
        metrics = self.out_metrics[port]
        metrics.frames += 1
        metrics.last_ts = ts
        level = self.outputs[port].qos if qos is None else qos
        for topic in ctx.targets.get(port, ()):
            await ctx.bus.publish(topic, payload, qos=level)

    async def close(self) -> None:
        """Release the inputs' subscriptions (the runtime calls this after ``run()`` ends)."""
        for sub in self._subs:
            await sub.aclose()
        self._subs.clear()
        self._inbox = None

    def dropped_offline(self, port: str) -> int:
        """Frames of output ``port`` lost while the broker was unreachable."""
        ctx = self._ctx()
        return sum(ctx.bus.dropped_offline(topic) for topic in ctx.targets.get(port, ()))

    def dropped(self) -> int:
        """Frames the inputs' bounded queues dropped (the oldest go first)."""
        return sum(self._inbox.dropped.values()) if self._inbox is not None else 0


def _pusher(inbox: Inbox, port: str) -> Callable[[Message], None]:
    return lambda message: inbox.push(port, message)


def _has_defaults(model: type[BaseModel]) -> bool:
    return all(not f.is_required() for f in model.model_fields.values())
