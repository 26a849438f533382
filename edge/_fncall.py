"""When an fn_task's function runs: the base class of generated task types.

Default: every new input frame stores its (converted) value and, once every input has a
value, calls the function with the latest value of each. With ``synchronized``, frames go
through a :class:`~edge.merge.Merger` first, which hands them on in timestamp order with a
bounded wait (the rule is spelled out in :mod:`edge.merge` and in ``docs/tasks.md``). A function with no
inputs is called every ``interval_ms``. Calls are serialized: one loop per instance makes them
and awaits each (a ``thread_safe`` call too), so a function and its ``state`` never run twice
at once.

The default path is the hot one (a relay makes it once per frame): the reader drains the
inbox in batches without a coroutine per frame, and the call's arguments come from a plan
made once per instance.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Final

from pydantic import BaseModel

from edge._fnconvert import Mismatch
from edge._fnsig import NO_DEFAULT, FnSignature, Role
from edge.errors import FrameError
from edge.frames import Frame, now_ms
from edge.merge import Merger, Pending, merge
from edge.task import Port, Task, TaskContext

if TYPE_CHECKING:
    from edge.protocol import CatalogEntry

__all__ = ["FnTaskBase"]

log = logging.getLogger("edge.fntask")

_SKIP: Final = object()


# -- the task -----------------------------------------------------------------------------------


class FnTaskBase(Task):
    """Base class of the task types :func:`edge.fn_task` generates; ``signature`` says what to call."""

    signature: ClassVar[FnSignature]
    logger = log

    def __init__(self, config: BaseModel | Mapping[str, Any] | None = None, *,
                 context: TaskContext | None = None) -> None:
        super().__init__(config, context=context)
        sig = self.signature
        #: The user's config object (dataclass or model) the function gets as ``config``.
        self.fn_config: Any = sig.build_config(self.config)
        #: The function's ``state``: built once, when the instance first runs.
        self.state: Any = None
        self._state_built = False
        self._values: dict[str, Any] = {i.name: i.default for i in sig.inputs if i.default is not NO_DEFAULT}
        self._ts: dict[str, int] = {}
        self._converters = {i.name: i.convert for i in sig.inputs}
        self._lock = asyncio.Lock()
        # the call, planned once: positional inputs only (the common case) need no dispatch per call
        self._positional: tuple[str, ...] | None = tuple(name for name, _, _ in sig.params) if all(
            role is Role.INPUT and not keyword for _, role, keyword in sig.params) else None
        self._single_output = sig.outputs[0].name if len(sig.outputs) == 1 and not sig.tuple_return else None

    # -- description -----------------------------------------------------------------------
    @classmethod
    def validate_config(cls, config: BaseModel | Mapping[str, Any] | None) -> BaseModel:
        flat = super().validate_config(config)
        cls.signature.build_config(flat)  # a dataclass __post_init__ may refuse what the schema allows
        return flat

    @classmethod
    def catalog_entry(cls) -> CatalogEntry:
        entry = super().catalog_entry()
        io_map = {
            "inputs": {i.name: dict(i.io_map) for i in cls.signature.inputs if i.io_map},
            "outputs": {o.name: dict(o.io_map) for o in cls.signature.outputs if o.io_map},
        }
        if io_map["inputs"] or io_map["outputs"]:  # metadata keys -> config fields, resolved per instance
            return type(entry).model_validate({**entry.dump(), "io_map": io_map})
        return entry

    def _mapped(self, port: Port, io_map: Mapping[str, str]) -> dict[str, Any]:
        meta = port.metadata()
        for key, field in io_map.items():
            value = getattr(self.config, field)
            if value is None:
                meta.pop(key, None)
            else:
                meta[key] = value
        return meta

    def output_metadata(self, port: str) -> dict[str, Any]:
        """The output's static metadata with the io_map fields taken from this instance's config."""
        spec = next(o for o in self.signature.outputs if o.name == port)
        return self._mapped(self.outputs[port], spec.io_map)

    def input_metadata(self, port: str) -> dict[str, Any]:
        """The input's static metadata with the io_map fields taken from this instance's config."""
        spec = next(i for i in self.signature.inputs if i.name == port)
        return self._mapped(self.inputs[port], spec.io_map)

    # -- running ---------------------------------------------------------------------------
    async def run(self) -> None:
        sig = self.signature
        ctx = self._ctx()
        if sig.state_factory is not None and not self._state_built:
            self.state = sig.state_factory()
            self._state_built = True
        if not sig.inputs:
            await self._run_source()
            return
        await self.open_inputs()
        wired = [i.name for i in sig.inputs if i.name in ctx.sources]
        unfed = [i.name for i in sig.inputs if i.name not in ctx.sources and i.name not in self._values]
        if unfed:
            log.warning("%s: input(s) %s not connected and without a default: %s will not be called%s",
                        ctx.instance_id, ", ".join(unfed), sig.name,
                        "" if not ctx.inject else " until each gets a frame injected")
        if not wired and not ctx.inject:  # nothing can feed it (an agent's instance can be injected into)
            await asyncio.Event().wait()
        if getattr(self.config, "synchronized", False) and len(wired) >= 2:
            merger: Merger[Any] = Merger(wired, timeout=self.config.sync_timeout_ms / 1000, maxlen=ctx.queue_size)
            await merge(self._converted(), merger, self._released, name=ctx.instance_id)
        else:  # one reader for all inputs: frames are handled in the order they arrived, across ports
            await self._read_latest()

    async def _run_source(self) -> None:
        loop = asyncio.get_running_loop()
        interval = self.config.interval_ms / 1000
        next_at = loop.time()
        while True:
            async with self._lock:
                await self._call(now_ms())
            next_at += interval
            delay = next_at - loop.time()
            if delay < 0:  # the function took longer than the interval: skip the missed ticks
                next_at -= delay
            await asyncio.sleep(max(delay, 0))

    async def _read_latest(self) -> None:
        # receive_any(), without an async generator step and a coroutine per frame: whatever is
        # queued is handled in one go. This loop is the only caller of _call, so no lock is needed.
        inbox = await self.open_inputs()
        decode, call = self._decode, self._call
        checks = {i.name: (i.convert.exact, i.convert.convert) for i in self.signature.inputs}
        values, stamps = self._values, self._ts
        count = len(self.signature.inputs)
        while True:
            item = inbox.pop_any()
            if item is None:
                await inbox.wait()
                continue
            port, message = item
            frame = decode(port, message)
            if frame is None:
                continue
            value = frame.value
            exact, convert = checks[port]
            if not exact(value):
                try:
                    value = convert(value)
                except Mismatch as exc:
                    self._mismatch(port, exc)
                    continue
            values[port] = value
            stamps[port] = frame.ts
            if len(values) == count:
                await call(frame.ts if count == 1 else max(stamps.values()))

    async def _converted(self) -> AsyncIterator[tuple[str, int, Any]]:
        async for port, frame in self.receive_any():
            value = self._convert(port, frame)
            if value is not _SKIP:
                yield port, frame.ts, value

    async def _released(self, pending: Pending[Any]) -> None:
        async with self._lock:
            self._values[pending.port] = pending.item
            self._ts[pending.port] = pending.ts
            if len(self._values) == len(self.signature.inputs):
                await self._call(max(self._ts.values()))

    def _convert(self, port: str, frame: Frame) -> Any:
        try:
            return self._converters[port](frame.value)
        except Mismatch as exc:
            self._mismatch(port, exc)
            return _SKIP

    def _mismatch(self, port: str, exc: Mismatch) -> None:
        self.count_error(self.in_metrics[port], f"in:{port}", "skipped a frame on input %r: %s", port, exc)

    async def _call(self, ts: int) -> None:
        """Call the function with the current values and send its result (one caller at a time)."""
        sig = self.signature
        if self._positional is not None and not sig.is_async and not sig.thread_safe:
            values = self._values
            try:
                result = sig.fn(*[values[name] for name in self._positional])
            except Exception:
                log.exception("%s: %s raised", self._ctx().instance_id, sig.name)
                raise
            port = self._single_output
            if port is None:
                await self._emit(result, ts)
            elif result is not None:  # _emit's one-output case, without its checks per frame
                await self._send(port, result, ts)
            return
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        for name, role, keyword in sig.params:
            if role is Role.INPUT:
                value = self._values[name]
            elif role is Role.TIMESTAMP:
                value = ts
            elif role is Role.CONFIG:
                value = self.fn_config
            else:
                value = self.state
            if keyword:
                kwargs[name] = value
            else:
                args.append(value)
        try:
            if sig.is_async:
                result = await sig.fn(*args, **kwargs)
            elif sig.thread_safe:
                result = await asyncio.to_thread(sig.fn, *args, **kwargs)
            else:
                result = sig.fn(*args, **kwargs)
        except Exception:
            log.exception("%s: %s raised", self._ctx().instance_id, sig.name)
            raise
        await self._emit(result, ts)

    async def _emit(self, result: Any, ts: int) -> None:
        sig = self.signature
        if not sig.outputs or result is None:
            return
        values: tuple[Any, ...] = (result,)
        if sig.tuple_return:
            if not isinstance(result, tuple) or len(result) != len(sig.outputs):
                message = (f"{sig.name} must return a tuple of {len(sig.outputs)} values (or None), "
                           f"got {type(result).__name__}" + (f" of {len(result)}" if isinstance(result, tuple) else ""))
                log.error("%s: %s", self._ctx().instance_id, message)
                raise TypeError(message)
            values = result
        for spec, value in zip(sig.outputs, values, strict=True):
            if value is not None:
                await self._send(spec.name, value, ts)

    async def _send(self, port: str, value: Any, ts: int) -> None:
        try:
            await self.send(port, value, ts=ts)
        except FrameError as exc:
            self.count_error(self.out_metrics[port], f"out:{port}", "could not send output %r: %s", port, exc)
