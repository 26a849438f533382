"""A value into frames and frames back into values: split, join (by parts, count, time or key), batch."""

from __future__ import annotations

import asyncio
import math
import uuid
from collections.abc import Hashable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from edge.frames import Frame, now_ms
from tasks.base import ANY, BuiltinTask, is_array, is_pause
from tasks.deadline import Deadline
from tasks.parts import MAX_ITEMS, Held, Part

__all__ = ["Batch", "Join", "Split"]

DAY_MS = 86_400_000
MAX_BYTES = 64 * 1024 * 1024
MaxItems = Field(default=1000, ge=1, le=MAX_ITEMS, description="the most items held (or sent, for split); the "
                                                                "oldest go first and are counted as dropped")
MaxBytes = Field(default=1024 * 1024, ge=1, le=MAX_BYTES,
                 description="the most bytes of values held; the oldest go first and are counted as dropped")


class _Counting(BuiltinTask):
    """A task that leaves out values by its bounds: they count in its ``dropped`` metric."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.held = Held(max_items=self.config.max_items, max_bytes=self.config.max_bytes) \
            if hasattr(self.config, "max_bytes") else None
        #: values left out other than by the buffer's bounds (items beyond split's max_items, an incomplete group)
        self.left_out = 0

    def dropped(self) -> int:
        return super().dropped() + self.left_out + (self.held.overflowed if self.held is not None else 0)


class Split(_Counting):
    """Send each item of a list, each piece of a text, or each entry of a map as a frame of its own.

    A list (or an array, along its first axis) gives its items; a text its pieces between
    `separator`s (all of them: a text ending in the separator gives an empty last piece); a map
    one frame `{"key": k, "value": v}` per entry. Each frame keeps the input's timestamp and
    carries a `part` field (`{id, index, count, kind}`) from which `join` puts the value back
    together. At most `max_items` items of one value are sent; the rest are counted as dropped.
    Other values (numbers, null, bytes) are input errors; pause frames pass.
    """

    category = "data"

    class Config(BaseModel):
        model_config = ConfigDict(extra="forbid")

        separator: str = Field(default="\n", min_length=1, max_length=100, description="where a text is cut")
        max_items: int = MaxItems

    inputs = {"in": ANY("value")}
    outputs = {"out": ANY("item")}

    async def run(self) -> None:
        config: Split.Config = self.config
        async for frame in self.receive("in"):
            if is_pause(frame):
                await self.send("out", frame.value, ts=frame.ts, paused=True)
                continue
            value = frame.value
            kind: Literal["list", "text", "map"] = "list"
            items: list[Any]
            if isinstance(value, list | tuple) or (is_array(value) and value.ndim >= 1):
                items = list(value)
            elif isinstance(value, str):
                kind, items = "text", value.split(config.separator)
            elif isinstance(value, dict):
                kind, items = "map", [{"key": k, "value": v} for k, v in value.items()]
            else:
                self.reject("in", f"expected a list, text or map, got {_kind(value)}")
                continue
            if len(items) > config.max_items:
                self.left_out += len(items) - config.max_items
                self.warn("in:long", "split a value of %d items into its first %d (max_items)", len(items),
                          config.max_items)
                items = items[: config.max_items]
            ident = uuid.uuid4().hex[:16]
            for index, item in enumerate(items):
                part = Part(ident, index, len(items), kind, config.separator if kind == "text" else "")
                await self.send_or_count("in", "out", item, ts=frame.ts, extra=part.field())


def _kind(value: Any) -> str:
    return "null" if value is None else "bytes" if isinstance(value, bytes) else type(value).__name__


class Join(_Counting):
    """Put frames back together: the items of a split, every `count` frames, a time window, or by key.

    `mode: parts` (with `split`): the items of one split value, by their `part` field, in their
    order: a list, the text joined with its separator, or the map of `{key, value}` items. A frame
    without a `part` field is an input error; a value whose items do not all come (a new split
    value starts first) is dropped and counted, or sent as far as it came after `timeout_ms`.

    `mode: count`: a list of every `count` frames (with `timeout_ms`, what came is sent that long
    after the first). `mode: time`: a list of the frames of `interval_ms` from the first one.
    `mode: key`: a map of the newest value per key: each frame's value is a map whose
    `key_field` (text or a number) names the key and whose `value_field` (empty: the whole map) is
    the value; the map is sent after each frame once it holds `min_keys` keys.

    Every buffer holds at most `max_items` values and `max_bytes` bytes: the oldest go (in key
    mode the key updated longest ago), counted as dropped. Pause frames are ignored.
    """

    category = "data"

    class Config(BaseModel):
        model_config = ConfigDict(extra="forbid")

        mode: Literal["parts", "count", "time", "key"] = Field(
            default="parts", description="how frames are grouped: split's parts, a count, a time window, or by key")
        count: int = Field(default=10, ge=1, le=MAX_ITEMS, description="count: frames per list")
        interval_ms: int = Field(default=1000, ge=1, le=DAY_MS, description="time: the window, from its first frame")
        timeout_ms: int = Field(default=0, ge=0, le=DAY_MS,
                                description="parts, count: send an incomplete group this long after its first "
                                            "frame (0: never)")
        key_field: str = Field(default="key", min_length=1, max_length=200, description="key: the field naming the key")
        value_field: str = Field(default="value", max_length=200,
                                 description="key: the field holding the value (empty: the whole map)")
        min_keys: int = Field(default=1, ge=1, le=MAX_ITEMS, description="key: send once the map holds this many keys")
        max_items: int = MaxItems
        max_bytes: int = MaxBytes

        @model_validator(mode="after")
        def _fits(self) -> Join.Config:
            if self.mode == "count" and self.count > self.max_items:
                raise ValueError(f"count ({self.count}) is more than max_items ({self.max_items}) holds")
            if self.mode == "key" and self.min_keys > self.max_items:
                raise ValueError(f"min_keys ({self.min_keys}) is more than max_items ({self.max_items}) holds")
            return self

    inputs = {"in": ANY("item")}
    outputs = {"out": ANY("joined")}

    async def run(self) -> None:
        config: Join.Config = self.config
        held = self.held
        assert held is not None
        window = Deadline()
        group: Part | None = None  # parts: the split value being joined
        counter = 0
        newest = 0

        async def flush() -> None:
            nonlocal group
            window.clear()
            if not len(held):
                return
            value = self.assemble(group, held.items()) if config.mode == "parts" else held.values()
            group = None
            held.clear()
            if value is not None:
                await self.send_or_count("in", "out", value, ts=newest)

        async def read() -> None:
            nonlocal group, counter, newest
            async for frame in self.receive("in"):
                if is_pause(frame):
                    continue
                if config.mode == "key":
                    await self.by_key(frame)
                    continue
                newest = frame.ts
                if config.mode == "parts":
                    part = Part.of(frame)
                    if part is None:
                        self.reject("in", "no part field (frames of split have one): use mode count, time or key "
                                          "for other frames")
                        continue
                    if group is not None and (part.id != group.id or part.count != group.count):
                        await (flush() if config.timeout_ms else self.drop_incomplete(group))
                    group = part
                    key: Hashable = part.index
                else:
                    counter += 1
                    key = counter
                starts = not len(held)
                held.put(key, frame.value)
                if starts and (config.mode == "time" or config.timeout_ms):
                    window.after((config.interval_ms if config.mode == "time" else config.timeout_ms) / 1000)
                if (config.mode == "parts" and group is not None and len(held) == group.count) \
                        or (config.mode == "count" and len(held) >= config.count):
                    await flush()

        async def expire() -> None:
            while True:
                await window.passed()
                await flush()

        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(read())
            tasks.create_task(expire())

    async def drop_incomplete(self, group: Part) -> None:
        """Leave out the items of a split value whose other items never came (counted, warned)."""
        held = self.held
        assert held is not None
        self.left_out += len(held)
        self.warn("in:incomplete", "dropped an incomplete split value (%d of %d items came)", len(held), group.count)
        held.clear()

    def assemble(self, group: Part | None, items: list[tuple[Hashable, Any]]) -> Any:
        """The split value from its items (in index order); None (counted) if they do not make one."""
        values = [value for _, value in sorted(items, key=lambda item: item[0])]  # type: ignore[arg-type, return-value]
        if group is None or group.kind == "list":
            return values
        if group.kind == "text":
            if not all(isinstance(v, str) for v in values):
                self.reject("in", "the pieces of a split text are not all text")
                return None
            return group.sep.join(values)
        result: dict[Any, Any] = {}
        for value in values:
            if not (isinstance(value, dict) and "key" in value and "value" in value
                    and isinstance(value["key"], Hashable)):
                self.reject("in", "an item of a split map is not a {key, value} map")
                return None
            result[value["key"]] = value["value"]
        return result

    async def by_key(self, frame: Frame) -> None:
        config: Join.Config = self.config
        held = self.held
        assert held is not None
        value = frame.value
        if not isinstance(value, dict) or config.key_field not in value:
            self.reject("in", f"expected a map with a {config.key_field!r} field, got {_kind(value)}")
            return
        key = value[config.key_field]
        if not (isinstance(key, str) or (type(key) is int) or (type(key) is float and not math.isnan(key))):
            self.reject("in", f"the key ({config.key_field!r}) is {_kind(key)}, not text or a number")
            return
        if config.value_field and config.value_field not in value:
            self.reject("in", f"the map has no {config.value_field!r} field")
            return
        held.put(key, value[config.value_field] if config.value_field else value)
        if len(held) >= config.min_keys:
            await self.send_or_count("in", "out", dict(held.items()), ts=frame.ts)


class Batch(_Counting):
    """Group frames into lists: every `count` frames (overlapping by `overlap`), or every interval.

    `mode: count`: a list of `count` values each time that many have come; with `overlap` the
    newest `overlap` of them start the next list as well (a sliding window: `count: 5, overlap: 4`
    sends the last five values on every frame from the fifth on). `mode: time`: every
    `interval_ms` from the start, the list of values that came in it (nothing for an empty one,
    or `[]` with `send_empty`). At most `max_items` values and `max_bytes` bytes are held; the
    oldest go, counted as dropped. Pause frames are ignored.
    """

    category = "data"

    class Config(BaseModel):
        model_config = ConfigDict(extra="forbid")

        mode: Literal["count", "time"] = Field(default="count", description="a list every count values, or every "
                                                                            "interval")
        count: int = Field(default=10, ge=1, le=MAX_ITEMS, description="count: values per list")
        overlap: int = Field(default=0, ge=0, le=MAX_ITEMS - 1,
                             description="count: values of one list that start the next as well")
        interval_ms: int = Field(default=1000, ge=1, le=DAY_MS, description="time: how often a list is sent")
        send_empty: bool = Field(default=False, description="time: send [] for an interval without values")
        max_items: int = MaxItems
        max_bytes: int = MaxBytes

        @model_validator(mode="after")
        def _fits(self) -> Batch.Config:
            if self.overlap >= self.count:
                raise ValueError(f"overlap ({self.overlap}) must be less than count ({self.count})")
            if self.mode == "count" and self.count > self.max_items:
                raise ValueError(f"count ({self.count}) is more than max_items ({self.max_items}) holds")
            return self

    inputs = {"in": ANY("value")}
    outputs = {"out": ANY("list")}

    async def run(self) -> None:
        config: Batch.Config = self.config
        held = self.held
        assert held is not None
        counter = 0

        async def read() -> None:
            nonlocal counter
            async for frame in self.receive("in"):
                if is_pause(frame):
                    continue
                counter += 1
                held.put(counter, frame.value)
                if config.mode == "count" and len(held) >= config.count:
                    values = held.values()
                    held.keep_newest(config.overlap)
                    await self.send_or_count("in", "out", values, ts=frame.ts)

        async def tick() -> None:
            loop = asyncio.get_running_loop()
            interval = config.interval_ms / 1000
            next_at = loop.time() + interval
            while True:
                await asyncio.sleep(max(0.0, next_at - loop.time()))
                next_at += interval
                if next_at < loop.time():  # a busy machine: skip the intervals missed
                    next_at = loop.time() + interval
                values = held.values()
                held.clear()
                if values or config.send_empty:
                    await self.send_or_count("in", "out", values, ts=now_ms())

        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(read())
            if config.mode == "time":
                tasks.create_task(tick())
