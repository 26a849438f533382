"""Tasks about frame timestamps: put streams in timestamp order, delay them, restamp them."""

from __future__ import annotations

import asyncio
import heapq
from collections import deque
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from edge.frames import Frame, now_ms
from edge.ports import PortRule
from tasks.base import ANY, BuiltinTask, is_pause
from tasks.ordering import handle_inputs

__all__ = ["STREAMS", "Synchronizer", "TimeBuffer", "TimestampUpdater"]

STREAMS = 4  # the default count of a synchronizer's streams
MAX_STREAMS = 32
HOUR_MS = 3_600_000


class Synchronizer(BuiltinTask):
    """Put several streams in timestamp order: `in<k>` goes to `out<k>`, all in one merged order.

    The config's `streams` (default 4) is how many pairs `in<k>`, `out<k>` it has (k from 0).

    Frames are released oldest first across the connected inputs, by the rule of the
    `synchronized` option (docs/tasks.md): a frame waits until every connected input has a frame,
    for at most `timeout_ms`. Downstream tasks that read several of the outputs then see them in
    timestamp order. Values and timestamps are unchanged; pause frames pass through.
    """

    category = "timing"

    class Config(BaseModel):
        model_config = ConfigDict(extra="forbid")

        streams: int = Field(default=STREAMS, ge=1, le=MAX_STREAMS, description="how many inputs in<k>, "
                                                                                "each to its output out<k>")
        timeout_ms: int = Field(default=500, ge=1, le=60_000,
                                description="the longest a frame waits for the other inputs")

    inputs = {f"in{k}": ANY(f"input {k}") for k in range(STREAMS)}
    outputs = {f"out{k}": ANY(f"output {k}") for k in range(STREAMS)}
    ports_from = (PortRule(side="inputs", field="streams", kind="count", name="in{}", label="input {}",
                           metadata=ANY("").metadata()),
                  PortRule(side="outputs", field="streams", kind="count", name="out{}", label="output {}",
                           metadata=ANY("").metadata()))

    async def run(self) -> None:
        async def forward(port: str, frame: Frame) -> None:
            await self.send(f"out{port[2:]}", frame.value, ts=frame.ts, paused=is_pause(frame))

        await handle_inputs(self, forward, synchronized=True, timeout_ms=self.config.timeout_ms)


class TimeBuffer(BuiltinTask):
    """Delay a stream by `delay_ms`, frames unchanged, in arrival order or (`order: timestamp`) in timestamp order.

    With `reference: clock` a frame goes out `delay_ms` after its timestamp (after its arrival
    if its timestamp lies in the future), so with synchronized clocks the total latency from the
    producer is constant. With `reference: message` no clock is used: a frame goes out once a
    frame at least `delay_ms` newer (by timestamp) has arrived, and a pause frame flushes the
    buffer. At most `max_frames` wait; when full, the oldest goes out early.

    With `order: timestamp` the frames held go out oldest timestamp first: the stream of a task
    with replicas (docs/deployments.md#replicas), whose frames come out in the order the
    replicas finish them, is put back in order, as long as no frame is more than `delay_ms` late.
    """

    category = "timing"

    class Config(BaseModel):
        model_config = ConfigDict(extra="forbid")

        delay_ms: int = Field(default=1000, ge=0, le=HOUR_MS, description="how long frames are held")
        reference: Literal["clock", "message"] = Field(
            default="clock", description="measure the delay on the wall clock, or by the frames' own timestamps")
        max_frames: int = Field(default=10_000, ge=1, le=1_000_000, description="most frames held at once")
        order: Literal["arrival", "timestamp"] = Field(
            default="arrival", description="release the frames held in arrival order, or oldest timestamp first")

    inputs = {"in": ANY("input")}
    outputs = {"out": ANY("output")}

    async def run(self) -> None:
        config: TimeBuffer.Config = self.config
        if config.order == "timestamp":
            await self._in_timestamp_order(config)
            return
        loop = asyncio.get_running_loop()
        delay = config.delay_ms
        held: deque[tuple[float, Frame]] = deque()  # (release time on the loop clock, frame)

        async def release(frame: Frame) -> None:
            await self.send("out", frame.value, ts=frame.ts, paused=is_pause(frame))

        while True:
            clock = config.reference == "clock"
            try:
                async with asyncio.timeout_at(held[0][0] if clock and held else None):
                    frame = await self.recv("in")
            except TimeoutError:
                frame = None
            if frame is not None:
                now = now_ms()
                due = loop.time() + (min(frame.ts, now) + delay - now) / 1000
                held.append((due, frame))
                if len(held) > config.max_frames:
                    await release(held.popleft()[1])
            if clock:
                while held and held[0][0] <= loop.time():
                    await release(held.popleft()[1])
            elif frame is not None and is_pause(frame):
                while held:
                    await release(held.popleft()[1])
            elif frame is not None:
                while held and frame.ts - held[0][1].ts >= delay:
                    await release(held.popleft()[1])

    async def _in_timestamp_order(self, config: TimeBuffer.Config) -> None:
        """``run`` with ``order: timestamp``: the frames held in a heap by (timestamp, arrival), the oldest
        timestamp released first, when the rule of ``reference`` says so for it."""
        loop = asyncio.get_running_loop()
        delay = config.delay_ms
        clock = config.reference == "clock"
        held: list[tuple[int, int, float, Frame]] = []  # (timestamp, arrival number, release time, frame)
        arrivals = 0
        newest: int | None = None

        async def release() -> None:
            frame = heapq.heappop(held)[3]
            await self.send("out", frame.value, ts=frame.ts, paused=is_pause(frame))

        while True:
            try:
                async with asyncio.timeout_at(held[0][2] if clock and held else None):
                    frame = await self.recv("in")
            except TimeoutError:
                frame = None
            if frame is not None:
                now = now_ms()  # as in arrival order: delay_ms after its timestamp, or its arrival if later
                heapq.heappush(held, (frame.ts, arrivals, loop.time() + (min(frame.ts, now) + delay - now) / 1000,
                                      frame))
                arrivals += 1
                newest = frame.ts if newest is None else max(newest, frame.ts)
                if len(held) > config.max_frames:
                    await release()
            if clock:
                while held and held[0][2] <= loop.time():
                    await release()
            elif frame is not None and is_pause(frame):
                while held:
                    await release()
            elif frame is not None and newest is not None:
                while held and newest - held[0][0] >= delay:
                    await release()


class TimestampUpdater(BuiltinTask):
    """Restamp frames: the time of arrival (`clock`) or their own timestamp (`message`), plus an offset.

    Values pass unchanged; pause frames pass too, restamped. Use it to feed a stream from a
    device with a wrong clock into timestamp-ordered tasks, or to shift one stream against another.
    """

    category = "timing"
    stateless = True  # each frame on its own: a spec may give it replicas

    class Config(BaseModel):
        model_config = ConfigDict(extra="forbid")

        reference: Literal["clock", "message"] = Field(
            default="clock", description="the new timestamp is the arrival time, or the frame's own timestamp")
        offset_ms: int = Field(default=0, ge=-HOUR_MS * 24, le=HOUR_MS * 24,
                               description="added to the reference (may be negative)")

    inputs = {"in": ANY("input")}
    outputs = {"out": ANY("output")}

    async def run(self) -> None:
        config: TimestampUpdater.Config = self.config
        async for frame in self.receive("in"):
            reference = now_ms() if config.reference == "clock" else frame.ts
            await self.send("out", frame.value, ts=reference + config.offset_ms, paused=is_pause(frame))
