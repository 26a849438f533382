"""When an fn_task's function runs: the base class of generated task types, and the input merger.

Default: every new input frame stores its (converted) value and, once every input has a
value, calls the function with the latest value of each. With ``synchronized``, frames go
through a :class:`Merger` first, which hands them on in timestamp order with a bounded wait
(the rule is spelled out on :class:`Merger` and in ``docs/tasks.md``). A function with no
inputs is called every ``interval_ms``. Calls are serialized: one loop per instance makes them
and awaits each (a ``thread_safe`` call too), so a function and its ``state`` never run twice
at once.

The default path is the hot one (a relay makes it once per frame): the reader drains the
inbox in batches without a coroutine per frame, and the call's arguments come from a plan
made once per instance.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import logging
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Final

from pydantic import BaseModel

from edge._fnconvert import Mismatch
from edge._fnsig import NO_DEFAULT, FnSignature, Role
from edge._lograte import LogLimiter
from edge.errors import FrameError
from edge.frames import Frame, now_ms
from edge.task import Port, Task, TaskContext

__all__ = ["FnTaskBase", "Merger"]

log = logging.getLogger("edge.fntask")

_WARN_EVERY: Final = 10.0  # seconds between repeated warnings about the same port
_SKIP: Final = object()


# -- the synchronized merge -------------------------------------------------------------------


@dataclass(slots=True)
class Pending:
    """A frame waiting in the merger."""

    port: str
    ts: int
    value: Any
    arrived: float
    order: int
    done: bool = False


def _key(item: Pending) -> tuple[int, int]:
    return item.ts, item.order


class Merger:
    """Buffers the frames of several inputs and releases them in timestamp order, with a bounded wait.

    Each input has a buffer of at most ``maxlen`` frames, kept sorted by timestamp (ties: arrival
    order). The oldest buffered frame of all (smallest ``ts``) is released as soon as

    1. every input has a buffered frame (nothing older can still come, if each input's own
       timestamps increase), or
    2. some buffered frame has waited ``timeout`` seconds since it arrived (a quiet input stalls
       the others at most that long; older frames go first, so order among the buffered ones is
       kept), or
    3. some input's buffer is full, or
    4. it is older than a frame already released (it came too late to be put in order).
    """

    def __init__(self, ports: Iterable[str], *, timeout: float, maxlen: int) -> None:
        self._buffers: dict[str, list[Pending]] = {port: [] for port in ports}
        self._arrivals: deque[Pending] = deque()  # arrival order, released ones skipped lazily
        self._timeout = timeout
        self._maxlen = max(1, maxlen)
        self._order = itertools.count()
        self._released: int | None = None

    def full(self, port: str) -> bool:
        return len(self._buffers[port]) >= self._maxlen

    def push(self, port: str, ts: int, value: Any, now: float) -> None:
        item = Pending(port, ts, value, now, next(self._order))
        bisect.insort(self._buffers[port], item, key=_key)
        self._arrivals.append(item)

    def deadline(self) -> float | None:
        """When the longest-waiting buffered frame has waited ``timeout`` (None if none is buffered)."""
        while self._arrivals and self._arrivals[0].done:
            self._arrivals.popleft()
        return self._arrivals[0].arrived + self._timeout if self._arrivals else None

    def pop(self, now: float) -> Pending | None:
        """The next frame to release at time ``now``, or None if the rules say wait."""
        heads = [buffer[0] for buffer in self._buffers.values() if buffer]
        if not heads:
            return None
        oldest = min(heads, key=_key)
        deadline = self.deadline()
        ready = (
            len(heads) == len(self._buffers)
            or (deadline is not None and deadline <= now)
            or any(len(buffer) >= self._maxlen for buffer in self._buffers.values())
            or (self._released is not None and oldest.ts < self._released)
        )
        if not ready:
            return None
        self._buffers[oldest.port].pop(0)
        oldest.done = True
        self._released = oldest.ts if self._released is None else max(self._released, oldest.ts)
        return oldest


# -- the task -----------------------------------------------------------------------------------


class FnTaskBase(Task):
    """Base class of the task types :func:`edge.fn_task` generates; ``signature`` says what to call."""

    signature: ClassVar[FnSignature]

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
        self._warnings = LogLimiter(log, every=_WARN_EVERY)
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
    def describe(cls) -> dict[str, Any]:
        entry = super().describe()
        io_map = {
            "inputs": {i.name: dict(i.io_map) for i in cls.signature.inputs if i.io_map},
            "outputs": {o.name: dict(o.io_map) for o in cls.signature.outputs if o.io_map},
        }
        if io_map["inputs"] or io_map["outputs"]:
            entry["io_map"] = io_map  # metadata keys -> config fields, resolved per instance
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
            log.warning("%s: input(s) %s not connected and without a default: %s will not be called",
                        ctx.instance_id, ", ".join(unfed), sig.name)
        if not wired:
            await asyncio.Event().wait()
        # one reader for all inputs: frames are handled in the order they arrived, across ports
        if getattr(self.config, "synchronized", False) and len(wired) >= 2:
            merger = Merger(wired, timeout=self.config.sync_timeout_ms / 1000, maxlen=ctx.queue_size)
            changed = asyncio.Condition()
            loops = {"read": self._read_synchronized(merger, changed), "merge": self._release(merger, changed)}
        else:
            loops = {"read": self._read_latest()}
        try:
            async with asyncio.TaskGroup() as group:
                for name, loop in loops.items():
                    group.create_task(loop, name=f"{ctx.instance_id}.{name}")
        except BaseExceptionGroup as failed:
            if len(failed.exceptions) == 1:  # the function's own exception, not a group, is what the runtime shows
                raise failed.exceptions[0] from None
            raise

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

    async def _read_synchronized(self, merger: Merger, changed: asyncio.Condition) -> None:
        loop = asyncio.get_running_loop()
        async for port, frame in self.receive_any():
            value = self._convert(port, frame)
            if value is _SKIP:
                continue
            async with changed:
                # A full buffer is released by the merge loop; meanwhile the bounded subscription queue holds the rest.
                await changed.wait_for(lambda port=port: not merger.full(port))  # type: ignore[misc]
                merger.push(port, frame.ts, value, loop.time())
                changed.notify_all()

    async def _release(self, merger: Merger, changed: asyncio.Condition) -> None:
        loop = asyncio.get_running_loop()
        count = len(self.signature.inputs)
        while True:
            async with changed:
                while (item := merger.pop(loop.time())) is None:
                    deadline = merger.deadline()
                    try:
                        async with asyncio.timeout_at(deadline):
                            await changed.wait()
                    except TimeoutError:
                        pass
                changed.notify_all()
            async with self._lock:
                self._values[item.port] = item.value
                self._ts[item.port] = item.ts
                if len(self._values) == count:
                    await self._call(max(self._ts.values()))

    def _convert(self, port: str, frame: Frame) -> Any:
        try:
            return self._converters[port](frame.value)
        except Mismatch as exc:
            self._mismatch(port, exc)
            return _SKIP

    def _mismatch(self, port: str, exc: Mismatch) -> None:
        metrics = self.in_metrics[port]
        metrics.errors += 1
        self._warn(f"in:{port}", f"skipped a frame on input {port!r}: {exc}", metrics.errors)

    def _warn(self, key: str, message: str, count: int) -> None:
        self._warnings.warning(key, "%s: %s (%d error(s) on this port so far; repeats logged at most every %g s)",
                               self._ctx().instance_id, message, count, _WARN_EVERY)

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
            metrics = self.out_metrics[port]
            metrics.errors += 1
            self._warn(f"out:{port}", f"could not send output {port!r}: {exc}", metrics.errors)
